"""Notebook 05's checks (captum_helpers.exercises.ex05): the notebook's solutions read "right", the
untouched starters "not attempted", and plausible wrong answers "wrong".

The namespace is the notebook's own code cells before the exercises on the offline model (given,
not loaded), without opening an explorer: ``open_insights`` is a stand-in that opens nothing.
Exercise 1's solution computes Integrated Gradients and Occlusion on every photo, which the real
model takes long for: there it runs on a small network (tests/small_models.py) whose scores move
by a few units between a photo and the baseline, as a real model's do, on the photos shrunk to
98 x 98 (captum's Occlusion spends more on its masks than such a network on its passes); the
check works the same on any model and any size. Exercise 2's second solution cell, the same
attributions with two baselines, sets no answer and is not run."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import IntegratedGradients, Occlusion

from captum_helpers import load_image, photo_paths, transform, transform_normalize, trust
from captum_helpers.exercises.ex05 import q1, q2, q3
from exercise_tools import code_cells, exercises, inside_notebooks, notebook, run, state
from small_models import Small

# the checks run in the full notebooks on every Python (the strict runs); these unit tests once
pytestmark = pytest.mark.once


def _stand_in_open_insights(visualizer, **kwargs):
    return None  # the explorer is a widget: nothing to open in a test


@pytest.fixture(scope="module")
def namespace_05(lite0):
    nb = notebook("05")
    first = exercises(nb)[1]["starter"]
    sources = [s.replace("model = load_model()", "")
               for s in code_cells(nb, first, skip=("open_insights(visualizer)",))]
    namespace = {"model": lite0}
    with inside_notebooks():
        run(namespace, *sources)
    namespace["open_insights"] = _stand_in_open_insights
    return nb, namespace


def _cells(nb, number: int, which: str = "solutions") -> list[str]:
    where = exercises(nb)[number]
    found = where[which] if which == "solutions" else [where[which]]
    return [nb.cells[i].source for i in found if nb.cells[i].cell_type == "code"]


def _with(namespace: dict, **answers) -> dict:
    return {**namespace, **answers}


SIZE = 98  # pixels per side of the stand-in photos: 14 grid cells of 7 x 7, 4 x 4 windows


def _small() -> torch.nn.Module:
    torch.manual_seed(0)
    model = Small().eval()
    with torch.no_grad():
        model.head.weight.mul_(30)  # scores that differ by a few units, as a real model's
    return model


def _on_small(namespace: dict, paths=None) -> dict:
    """The namespace with the small network, the photos shrunk to SIZE x SIZE (``paths`` in place
    of the notebook's photos where given) and the network's predictions."""
    model, ns = _small(), dict(namespace)
    if paths is not None:
        ns["imgs"] = paths
        ns["input_imgs"] = torch.stack([transform(load_image(p)) for p in paths])
    ns["input_imgs"] = F.interpolate(ns["input_imgs"], size=SIZE, mode="bilinear",
                                     antialias=True)
    with torch.no_grad():
        predicted = model(transform_normalize(ns["input_imgs"])).argmax(dim=1).tolist()
    return {**ns, "model": model, "predicted": predicted}


@pytest.fixture(scope="module")
def solved_1(namespace_05):
    nb, ns = namespace_05
    return run(_on_small(ns), *_cells(nb, 1))


def _occlusion(ns: dict, i: int, window: int, stride: int) -> torch.Tensor:
    photo = transform_normalize(ns["input_imgs"][i:i + 1])
    return Occlusion(ns["model"]).attribute(
        photo, target=ns["predicted"][i], sliding_window_shapes=(3, window, window),
        strides=(3, stride, stride), baselines=0)


def test_exercise_1_solution_and_starter(namespace_05, solved_1):
    nb, ns = namespace_05
    assert state(q1, run(dict(ns), *_cells(nb, 1, "starter"))) == "untouched"
    said = q1.evaluate(solved_1)
    assert said[0] == "right", said[1]
    assert solved_1["verdict"] == "c" and len(solved_1["same_photo"]) == 3 < trust.MIN_ITEMS
    batched = {name: torch.cat(solved_1[name]) for name in ("ig_maps", "occlusion_maps")}
    assert state(q1, _with(solved_1, **batched)) == "right"
    n, ig, occ = 3, solved_1["ig_maps"], solved_1["occlusion_maps"]
    grids = [trust.to_grid(m) for m in ig], [trust.to_grid(m) for m in occ]
    previous = [trust.spearman(grids[0][i], grids[1][(i - 1) % n]) for i in range(n)]
    assert state(q1, _with(solved_1, next_photo=previous)) == "right"  # the other direction


def test_exercise_1_wrong_maps(solved_1):
    s = solved_1
    ig, occ = s["ig_maps"], s["occlusion_maps"]
    softmax = IntegratedGradients(lambda x: torch.softmax(s["model"](x), 1))
    on_probabilities = [softmax.attribute(transform_normalize(s["input_imgs"][i:i + 1]),
                                          target=s["predicted"][i], n_steps=25) for i in range(3)]
    wrong = {
        "another order": dict(occlusion_maps=occ[1:] + occ[:1]),
        "the page's default window": dict(occlusion_maps=[_occlusion(s, 0, 32, 32)] + occ[1:]),
        "notebook 03's stride": dict(occlusion_maps=[_occlusion(s, 0, 45, 8)] + occ[1:]),
        "swapped": dict(ig_maps=occ, occlusion_maps=ig),
        "probabilities": dict(ig_maps=on_probabilities),
        "a map short": dict(ig_maps=ig[:2]),
        "one tensor": dict(occlusion_maps=occ[0]),
    }
    for name, answers in wrong.items():
        assert state(q1, _with(s, **answers)) == "wrong", name
    said = {name: q1.evaluate(_with(s, **answers))[1] for name, answers in wrong.items()}
    assert "strides=(3, 20, 20)" in said["notebook 03's stride"]
    assert "swap" in said["swapped"]
    assert "not probabilities" in said["probabilities"]


def test_exercise_1_wrong_numbers_and_verdict(solved_1):
    s = solved_1
    pixels = [trust.spearman(a.abs().sum(dim=1), b.abs().sum(dim=1))  # no common grid
              for a, b in zip(s["ig_maps"], s["occlusion_maps"])]
    wrong = {"pixels, not grids": dict(same_photo=pixels),
             "same photo twice": dict(next_photo=s["same_photo"]),
             "two numbers": dict(next_photo=s["next_photo"][:2])}
    for name, answers in wrong.items():
        assert list(answers.values())[0] != s[list(answers)[0]], name
        assert state(q1, _with(s, **answers)) == "wrong", name
    assert "same photo's" in q1.evaluate(_with(s, next_photo=s["same_photo"]))[1]
    for letter in "ab":
        assert state(q1, _with(s, verdict=letter)) == "wrong"


def test_exercise_1_with_six_photos_the_rule_decides(namespace_05):
    nb, ns = namespace_05
    with inside_notebooks():
        six = run(_on_small(ns, photo_paths(more=True)), *_cells(nb, 1))
    assert len(six["same_photo"]) == trust.MIN_ITEMS and six["verdict"] in "ab"
    assert state(q1, six) == "right"
    assert state(q1, _with(six, verdict="c")) == "wrong"
    other = "b" if six["verdict"] == "a" else "a"
    assert state(q1, _with(six, verdict=other)) == "wrong"


def test_exercise_2_a_blurred_baseline(namespace_05):
    nb, ns = namespace_05
    assert state(q2, run(dict(ns), *_cells(nb, 2, "starter"))) == "untouched"
    first, *slow = _cells(nb, 2)
    assert "IntegratedGradients" in slow[0]  # the second cell: attributions, no answer
    solved = run(dict(ns), first)
    assert state(q2, solved) == "right"
    own = run(dict(ns), first.replace("def box_blur(input):", "def blurred_baseline(input):")
              .replace("blurred_baseline = box_blur", "pass"))
    assert state(q2, own) == "right"  # the learner's own `def blurred_baseline`
    wrong = {"count_include_pad": lambda x: F.avg_pool2d(x, 31, stride=1, padding=15),
             "the identity": lambda x: x, "zeros": ns["baseline_func"],
             "no padding": lambda x: F.avg_pool2d(x, 31, stride=1),
             "a smaller blur": lambda x: F.avg_pool2d(x, 5, stride=1, padding=2,
                                                      count_include_pad=False),
             "a tensor": solved["blurred_baseline"](transform_normalize(ns["input_imgs"]))}
    for name, function in wrong.items():
        assert state(q2, _with(solved, blurred_baseline=function)) == "wrong", name
    said = q2.evaluate(_with(solved, blurred_baseline=wrong["count_include_pad"]))[1]
    assert "count_include_pad=False" in said
    assert state(q2, _with(solved, visualizer_blur=ns["visualizer"])) == "wrong"
    for letter in "ac":
        assert state(q2, _with(solved, blur_changes=letter)) == "wrong"


class _Calls(torch.nn.Module):
    """A stand-in classifier that calls the i-th photo of a batch ``classes[i]``."""

    def __init__(self, classes: list[int]):
        super().__init__()
        self.classes = classes

    def forward(self, x):
        return F.one_hot(torch.tensor(self.classes[:len(x)]), 1000).float()


def test_exercise_3_every_label_teapot(namespace_05):
    nb, ns = namespace_05
    assert state(q3, run(dict(ns), *_cells(nb, 3, "starter"))) == "untouched"
    solved = run(dict(ns), *_cells(nb, 3))
    assert state(q3, solved) == "right"
    names = [p.name for p in ns["imgs"]]
    assert solved["kept_correct"] == [] and solved["kept_incorrect"] == names  # no teapot here
    truly = [n for n, g, label in zip(names, ns["predicted"], ns["labels"]) if g == label]
    assert truly
    said = q3.evaluate(_with(solved, kept_correct=truly,
                             kept_incorrect=[n for n in names if n not in truly]))
    assert said[0] == "wrong" and "true labels" in said[1]
    wrong = {"swapped": dict(kept_correct=names, kept_incorrect=[]),
             "in both": dict(kept_correct=names[:1]),
             "a name": dict(kept_correct="chelsea.png")}
    for name, answers in wrong.items():
        assert state(q3, _with(solved, **answers)) == "wrong", name
    # a model that calls the first photo a teapot: 'Correct' keeps it
    teapot = [849] + ns["predicted"][1:]
    with_teapot = run({**ns, "model": _Calls(teapot), "predicted": teapot}, *_cells(nb, 3))
    assert with_teapot["kept_correct"] == names[:1]
    assert state(q3, with_teapot) == "right"
    assert state(q3, _with(with_teapot, kept_correct=[], kept_incorrect=names)) == "wrong"
