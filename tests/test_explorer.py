"""The explorer's engine (captum_explorer.engine) on tiny models, without a widget or a server:
settings checked with messages in both languages, the package's size, several inputs,
several models and extra forward arguments, attributions that are captum's own, and heat maps
scaled as captum's ``visualize_image_attr`` scales them. The widget is tested in
test_insights.py, the command line's server in test_insights_server.py."""
from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, Occlusion, Saliency
from matplotlib import colormaps
from PIL import Image
from torch import nn

from captum_explorer import (AttributionVisualizer, Batch, ImageFeature,
                             InsightsError, InsightsExplorer, Refused, check_settings)
from captum_explorer import engine
from captum_explorer.engine import IMAGE_PX, magnitude, png
from explorers import IG_FAST, TinyNet, labels_of, tiny_batches, tiny_visualizer

BLUES_WHITE, BLUES_DARKEST = [247, 251, 255], [8, 48, 107]  # #f7fbff and #08306b


def pixels(uri: str) -> np.ndarray:
    """The pixels of a ``data:image/png;base64,...`` URI."""
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:40]
    picture = Image.open(io.BytesIO(base64.b64decode(uri[len(prefix):], validate=True)))
    assert picture.format == "PNG"
    return np.asarray(picture)


def blues(scaled) -> np.ndarray:
    """Colours of values already scaled to [0, 1] on captum's absolute-value scale (Blues)."""
    return (colormaps["Blues"](np.asarray(scaled, dtype=float))[..., :3] * 255).astype(np.uint8)


# --- check_settings ---------------------------------------------------------------------------


IG = "Integrated Gradients"
BAD_SETTINGS = [  # (settings, a piece of the English message, a piece of the Chinese one)
    ({"attribution_method": "Magic"},
     "attribution_method must be one of ['Deconvolution', ", "attribution_method 必须是以下之一："),
    (None, "attribution_method must be one of", "attribution_method 必须是以下之一"),
    ({"attribution_method": "Saliency", "arguments": {"n_steps": 5}},
     "Saliency takes the arguments none", "Saliency 接受的参数是 无"),
    ({"attribution_method": IG, "arguments": {"n_stepz": 5}},
     "Integrated Gradients takes the arguments ['method', 'n_steps']",
     "Integrated Gradients 接受的参数是 ['method', 'n_steps']"),
    ({"attribution_method": IG, "arguments": {"n_steps": 1}},
     "Integrated Gradients: n_steps must be at least 2", "n_steps 必须至少为 2"),
    ({"attribution_method": "Occlusion", "arguments": {"perturbations_per_eval": 101}},
     "Occlusion: perturbations_per_eval must be from 1 to 100",
     "perturbations_per_eval 必须在 1 到 100 之间"),
    ({"attribution_method": IG, "arguments": {"n_steps": "many"}},
     "Integrated Gradients: n_steps: invalid literal", "n_steps 无法转换"),
    ({"attribution_method": IG, "arguments": {"method": "simpson"}},
     "Integrated Gradients: method must be one of ['riemann_right'",
     "Integrated Gradients：method 必须是以下之一：['riemann_right'"),
    ({"attribution_method": IG, "classes": "espresso"},
     "classes is a list of names", "classes 是一个类别名称的列表"),
    ({"attribution_method": IG, "prediction": "maybe"},
     "prediction is all, correct or incorrect", "prediction 是 all、correct 或 incorrect"),
    ({"attribution_method": "Occlusion", "arguments": {"strides": "3 0 8"}},
     "Occlusion: strides must be whole numbers of 1 or more", "strides 必须是大于等于 1 的整数"),
    ({"attribution_method": "Occlusion", "arguments": {"sliding_window_shapes": "3 -8 8"}},
     "sliding_window_shapes must be whole numbers of 1 or more, one per dimension, such as 3 32 32",
     "sliding_window_shapes 必须是大于等于 1 的整数，每个维度一个，例如 3 32 32"),
]


@pytest.mark.parametrize("language", ["en", "zh"])
@pytest.mark.parametrize("body, english, chinese", BAD_SETTINGS,
                         ids=[json.dumps(b)[:50] for b, _, _ in BAD_SETTINGS])
def test_bad_settings_are_refused_saying_what_to_change(body, english, chinese, language):
    with pytest.raises(InsightsError) as raised:
        check_settings(body, language)
    message = str(raised.value)
    if language == "en":
        assert english in message
    else:
        assert chinese in message and "must" not in message


def test_the_language_of_check_settings_is_the_editions_by_default(monkeypatch):
    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", "zh")
    with pytest.raises(InsightsError, match="必须是以下之一"):
        check_settings({"attribution_method": "Magic"})
    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", "en")
    with pytest.raises(InsightsError, match="must be one of"):
        check_settings({"attribution_method": "Magic"})


def test_good_settings_get_the_pages_defaults_for_the_rest():
    assert check_settings({"attribution_method": IG}, "en") == {
        "attribution_method": IG, "prediction": "all", "classes": [],
        "arguments": {"n_steps": 25, "method": "gausslegendre", "internal_batch_size": 10}}
    # typed on the page, or given from Python
    checked = check_settings({"attribution_method": "Occlusion", "prediction": "correct",
                              "classes": ["cat", 7],
                              "arguments": {"strides": "3 8 8", "perturbations_per_eval": "4",
                                            "sliding_window_shapes": [3, 16, 16]}}, "en")
    assert checked == {"attribution_method": "Occlusion", "prediction": "correct",
                       "classes": ["cat", "7"],
                       "arguments": {"sliding_window_shapes": (3, 16, 16), "strides": (3, 8, 8),
                                     "perturbations_per_eval": 4}}
    assert check_settings({"attribution_method": "Saliency", "arguments": None}, "en")[
        "arguments"] == {}


# --- what a row holds ----------------------------------------------------------------------


def test_the_explorer_stays_within_its_size():
    """At most 600 lines of Python in the package and 800 of front end: a reader can take it in."""
    root = Path(__file__).resolve().parent.parent / "captum_explorer"
    python = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in root.glob("*.py"))
    front_end = len((root / "explorer.js").read_text(encoding="utf-8").splitlines())
    assert python <= 600 and front_end <= 800, (python, front_end)


class TwoPhotos(nn.Module):
    """A 10-class model of two images: an RGB one and a grey one of another size."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.left, self.right = nn.Conv2d(3, 4, 3), nn.Conv2d(1, 4, 3)
        self.head = nn.Linear(8, 10)
        self.eval()

    def forward(self, left, right):
        features = [torch.relu(conv(x)).mean((2, 3)) for conv, x in
                    ((self.left, left), (self.right, right))]
        return self.head(torch.cat(features, 1))


def test_a_model_of_two_inputs_gets_one_feature_output_each():
    torch.manual_seed(3)
    model, left, right = TwoPhotos(), torch.rand(2, 3, 16, 16), torch.rand(2, 1, 8, 8)
    visualizer = AttributionVisualizer(
        models=[model], classes=[f"class {i}" for i in range(10)],
        features=[ImageFeature("Left", None, None), ImageFeature("Right", None, None)],
        dataset=[Batch((left, right), labels=[1, 2])])
    settings = check_settings(IG_FAST, "en")
    rows = InsightsExplorer(visualizer).fetch(settings)
    assert labels_of(rows) == [1, 2]
    for k, row in enumerate(rows):
        first, second = row["feature_outputs"]
        assert (first["name"], second["name"]) == ("Left", "Right")
        assert abs(first["contribution"]) + abs(second["contribution"]) == pytest.approx(1.0)
        # captum's own attribution of both inputs at once, for the predicted class, zero baselines
        inputs = (left[k:k + 1], right[k:k + 1])
        target = row["predicted"][0]["index"]
        attributions = IntegratedGradients(model).attribute(
            inputs, baselines=tuple(torch.zeros_like(t) for t in inputs), target=target,
            **settings["arguments"])
        sums = [float(a.sum()) for a in attributions]
        total = abs(sums[0]) + abs(sums[1])
        assert [first["contribution"], second["contribution"]] == pytest.approx(
            [sums[0] / total, sums[1] / total], rel=1e-5)
        assert np.array_equal(pixels(first["modified"]), magnitude(attributions[0]))
        assert np.array_equal(pixels(second["modified"]), magnitude(attributions[1]))
        # each picture is its own input: 16 x 16 RGB, 8 x 8 grey
        assert np.array_equal(pixels(first["base"]),
                              (left[k] * 255).round().byte().permute(1, 2, 0).numpy())
        assert np.array_equal(pixels(second["base"]), (right[k, 0] * 255).round().byte().numpy())


class Offsets(nn.Module):
    """TinyNet's logits times ``scale``, plus ``offsets``: extra forward arguments."""

    def __init__(self) -> None:
        super().__init__()
        self.net, self.seen = TinyNet(), []

    def forward(self, x, offsets, scale):
        self.seen.append((tuple(offsets.shape), scale))
        return self.net(x) * scale + offsets


def test_additional_args_reach_the_model_one_example_at_a_time():
    model, examples = Offsets(), torch.rand(3, 3, 16, 16)
    offsets = torch.zeros(3, 10)
    offsets[0, 7], offsets[1, 3], offsets[2, 5] = 100.0, 100.0, 100.0  # each its own top class
    visualizer = tiny_visualizer([Batch(examples, labels=[7, 0, 5],
                                        additional_args=(offsets, 2.0))], model=model)
    rows = InsightsExplorer(visualizer).fetch(check_settings(
        {"attribution_method": "Saliency"}, "en"))
    assert [row["predicted"][0]["index"] for row in rows] == [7, 3, 5]
    assert model.seen and set(model.seen) == {((1, 10), 2.0)}
    # the attribution is of the model with those arguments: scale 2 doubles Saliency's gradient
    for k, row in enumerate(rows):
        direct = Saliency(model).attribute(
            examples[k:k + 1].clone().requires_grad_(), target=row["predicted"][0]["index"],
            additional_forward_args=(offsets[k:k + 1], 2.0))
        assert np.array_equal(pixels(row["feature_outputs"][0]["modified"]), magnitude(direct))
    # correct: only the first (7) and the third (5)
    explorer = InsightsExplorer(visualizer)
    assert labels_of(explorer.fetch(check_settings(
        {"attribution_method": "Saliency", "prediction": "correct"}, "en"))) == [7, 5]


class Score(nn.Module):
    """One score per example, shape (N,): no class to pick, so no target."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(4)
        self.weights = nn.Parameter(torch.randn(3, 16, 16))

    def forward(self, x):
        return torch.tanh((x * self.weights).sum((1, 2, 3)))


def test_use_label_for_attr_false_attributes_without_a_target(monkeypatch):
    targets = []

    class Spy(Saliency):
        def attribute(self, inputs, target=None, **kwargs):
            targets.append(target)
            return super().attribute(inputs, target=target, **kwargs)
    monkeypatch.setitem(engine.METHODS, "Saliency", (Spy, {}))
    torch.manual_seed(5)
    model, example = Score(), torch.rand(1, 3, 16, 16)
    settings = check_settings({"attribution_method": "Saliency"}, "en")

    def explorer(use_label_for_attr: bool) -> InsightsExplorer:
        return InsightsExplorer(AttributionVisualizer(
            models=[model], classes=["score"], use_label_for_attr=use_label_for_attr,
            features=[ImageFeature("Photo", None, None)],
            dataset=[Batch(example, labels=[0])]))
    (row,) = explorer(False).fetch(settings)
    assert targets == [None]
    direct = Saliency(model).attribute(example.clone().requires_grad_())  # without a target
    assert np.array_equal(pixels(row["feature_outputs"][0]["modified"]), magnitude(direct))
    # with the label passed on, captum is asked for class 0 of a model that has no classes
    with pytest.raises((AssertionError, IndexError)):  # "Cannot choose target column"
        explorer(True).fetch(settings)
    assert targets == [None, 0]


# --- captum's own attributions, captum's own scale --------------------------------------------


@pytest.mark.parametrize("settings", [
    {"attribution_method": "Saliency"},
    {"attribution_method": IG, "arguments": {"n_steps": 6, "method": "riemann_middle"}},
    {"attribution_method": "Occlusion",
     "arguments": {"sliding_window_shapes": "3 6 6", "strides": "3 4 4"}},
], ids=["saliency", "integrated-gradients", "occlusion"])
def test_the_map_is_captums_own_attribution_of_the_transformed_input(settings):
    """The row's heat map is captum's method called directly on the input after the feature's
    input transforms, with the baseline its baseline transform makes of that, for the predicted
    class: pixel for pixel."""
    method = {"Saliency": Saliency, IG: IntegratedGradients, "Occlusion": Occlusion}[
        settings["attribution_method"]]
    model, batches = TinyNet(), tiny_batches(2)
    visualizer = AttributionVisualizer(
        models=[model], classes=[f"class {i}" for i in range(10)],
        score_func=lambda o: torch.softmax(o, 1),
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0 + 0.25],
                               input_transforms=[lambda x: x * 2 - 1])],
        dataset=batches)
    checked = check_settings(settings, "en")
    rows = InsightsExplorer(visualizer).fetch(checked)
    assert len(rows) == 2
    for row, batch in zip(rows, batches):
        photo = batch.inputs
        model_input = photo * 2 - 1
        with torch.no_grad():
            scores = torch.softmax(model(model_input), 1)[0]
        target = int(scores.argmax())
        assert row["predicted"][0] == {"score": pytest.approx(float(scores[target])),
                                       "index": target, "label": f"class {target}"}
        arguments = dict(checked["arguments"])
        if method is not Saliency:
            arguments["baselines"] = model_input * 0 + 0.25
        direct = method(model).attribute(model_input.clone().requires_grad_(method is Saliency),
                                         target=target, **arguments)
        heat = pixels(row["feature_outputs"][0]["modified"])
        assert heat.shape == (16, 16, 3) and np.array_equal(heat, magnitude(direct))
        # the picture is the stored photo, before the input transforms
        assert np.array_equal(pixels(row["feature_outputs"][0]["base"]),
                              (photo[0] * 255).round().byte().permute(1, 2, 0).numpy())


def test_the_map_saturates_the_top_2_percent_of_the_total_as_captum_does():
    """captum's heat map, sign "absolute_value": the channels' sum, its absolute value, divided by
    the value at which the sorted values' running total first reaches 98 % of the total,
    clipped to 1, on Blues. Pixel k (1..100) holds k: the total is 5050, 98 % is 4949, reached
    at 1 + ... + 99 = 4950, so the scale is 99: pixels 99 and 100 are the darkest blue."""
    values = torch.arange(1, 101, dtype=torch.float32).reshape(10, 10)
    attribution = torch.stack([values * 3, -values, -values])[None]  # channels sum to values
    heat = magnitude(attribution)
    assert heat.shape == (10, 10, 3) and heat.dtype == np.uint8
    flat = heat.reshape(100, 3)
    assert flat[99].tolist() == flat[98].tolist() == BLUES_DARKEST
    assert flat[97].tolist() != BLUES_DARKEST
    assert np.array_equal(flat, blues([min(k / 99, 1.0) for k in range(1, 101)]))
    # not scaled by the largest value (100), as a plain max would
    assert not np.array_equal(flat, blues([k / 100 for k in range(1, 101)]))
    # negative maps look the same: the absolute value
    assert np.array_equal(magnitude(-attribution), heat)


def test_a_pixel_holding_half_the_total_sets_the_scale():
    """One pixel holds 99 of a total of 198 (the other 99 hold 1 each): the running total
    reaches 98 % (194.04) only at that pixel, so it is 1.0 and the others 1/99."""
    values = torch.ones(1, 1, 10, 10)
    values[0, 0, 3, 4] = 99.0
    heat = magnitude(values)
    assert heat[3, 4].tolist() == BLUES_DARKEST
    expected = np.full((10, 10), 1 / 99)
    expected[3, 4] = 1.0
    assert np.array_equal(heat, blues(expected))
    assert heat[0, 0].tolist() != BLUES_WHITE  # 1/99: light, but not nothing


def test_channels_are_summed_before_the_absolute_value_and_zero_is_white():
    # pixel 0: +1 and -1 cancel; pixel 1: -2 in one channel
    attribution = torch.tensor([[[1.0, -2.0]], [[-1.0, 0.0]], [[0.0, 0.0]]])
    assert magnitude(attribution).tolist() == [[BLUES_WHITE, BLUES_DARKEST]]
    with np.errstate(all="raise"):  # no division by zero
        assert magnitude(torch.zeros(1, 3, 4, 5)).tolist() == [[BLUES_WHITE] * 5] * 4


def test_pictures_are_pngs_of_at_most_image_px_a_side():
    wide = torch.rand(3, 2 * IMAGE_PX + 50, IMAGE_PX + 25)
    picture = pixels(png(wide))
    assert picture.shape == (IMAGE_PX, IMAGE_PX // 2, 3)  # 498 x 249 kept to 2:1
    grey = pixels(png(torch.tensor([[[-1.0, 0.5, 2.0]]])))  # clipped to [0, 1]
    assert grey.tolist() == [[0, 128, 255]]
    small = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    assert np.array_equal(pixels(png(small)), small)  # lossless, never enlarged


# --- fetching --------------------------------------------------------------------------------


def test_a_page_ends_at_the_datasets_end_but_a_filter_looks_through_all_of_it():
    model, batches = TinyNet(), tiny_batches(5)
    with torch.no_grad():
        predicted = [model(batch.inputs).argmax(1).item() for batch in batches]
    labels = [(p + 1) % 10 for p in predicted]  # every prediction wrong but the second's
    labels[1] = predicted[1]
    for batch, label in zip(batches, labels):
        batch.labels = [label]
    explorer = InsightsExplorer(tiny_visualizer(batches, model=model))
    fast = check_settings(IG_FAST, "en")
    assert labels_of(explorer.fetch(fast)) == labels[:4]
    # from the fifth on: it is wrong, and the one right photo is back at the start
    assert labels_of(explorer.fetch({**fast, "prediction": "correct"})) == [labels[1]]
    # that Fetch looked at every photo once and stopped where it began
    assert labels_of(explorer.fetch(fast)) == [labels[4]]
    assert labels_of(explorer.fetch(fast)) == labels[:4]


def test_a_refused_fetch_shows_the_same_photos_next_time():
    explorer = InsightsExplorer(tiny_visualizer(tiny_batches(6)), max_passes=4 * 3 * 20)
    with pytest.raises(Refused, match="lower n_steps"):
        explorer.fetch(check_settings({**IG_FAST, "arguments": {"n_steps": 21}}, "en"))
    assert labels_of(explorer.fetch(check_settings(IG_FAST, "en"))) == [0, 1, 2, 3]
    assert labels_of(explorer.fetch(check_settings(IG_FAST, "en"))) == [4, 5]


def test_two_models_give_a_row_each_and_a_click_names_its_model():
    first, second = TinyNet(), TinyNet()
    with torch.no_grad():
        second[-1].bias[6] += 100.0  # the second always says class 6
    visualizer = tiny_visualizer(tiny_batches(2), model=first)
    visualizer.models.append(second)
    explorer = InsightsExplorer(visualizer)
    rows = explorer.fetch(check_settings(IG_FAST, "en"))
    assert [row["model_index"] for row in rows] == [0, 1, 0, 1]
    assert labels_of(rows) == [0, 0, 1, 1]
    assert rows[1]["predicted"][0]["index"] == rows[3]["predicted"][0]["index"] == 6
    assert rows[0]["predicted"][0]["index"] != 6
    clicked = explorer.attribute(2, 1, 4)  # example 1, the second model, class 4
    assert (clicked["active_index"], clicked["model_index"]) == (4, 1)
    assert clicked["actual"] == rows[2]["actual"] and clicked["predicted"] == rows[3]["predicted"]
    with pytest.raises(InsightsError, match="press Fetch again"):
        explorer.attribute(0, 2, 4)


def test_the_explorer_needs_no_captum_insights():
    """captum 0.9 has no captum.insights: the package, its widget and the command line's server
    import and fetch without it, or the old helpers."""
    script = textwrap.dedent("""
        import importlib.abc, sys

        class NoOld(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.startswith(("captum.insights", "captum_helpers.insights",
                                    "captum_helpers.explorer")):
                    raise ImportError(f"{name} is gone")
                return None

        sys.meta_path.insert(0, NoOld())
        import torch
        import captum_course.insights
        import captum_explorer.widget
        from captum_explorer import (AttributionVisualizer, Batch, ImageFeature,
                                     InsightsExplorer, check_settings)
        visualizer = AttributionVisualizer(
            models=[torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 3))],
            classes=["a", "b", "c"], features=[ImageFeature("Photo", None, None)],
            dataset=[Batch(torch.rand(2, 3, 4, 4), labels=[0, 1])])
        rows = InsightsExplorer(visualizer).fetch(check_settings(
            {"attribution_method": "Saliency"}, "en"))
        print(len(rows), sorted(m for m in sys.modules if "insights" in m))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 ['captum_course.insights']"
