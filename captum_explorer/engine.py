"""What the explorer computes: captum.insights' ``AttributionVisualizer``, ``Batch`` and
``ImageFeature`` (with their constructor arguments and meaning), on captum's public attribution
methods only, so it runs on captum 0.8 and 0.9 alike.

An ``InsightsExplorer`` is one open explorer's state over a visualizer: it shows each example
once per Fetch, refuses a Fetch over a work budget before attributing, runs one computation at a
time and stops one that a newer request, ``stop()`` or ``close()`` made useless. Its messages are
in the edition's language (``captum_helpers.language``), fixed when it is made.
"""
from __future__ import annotations

import base64
import inspect
import io
import threading
import warnings
from collections.abc import Callable, Iterable

import numpy as np
import torch
from captum.attr import (Deconvolution, DeepLift, FeatureAblation, GuidedBackprop, InputXGradient,
                         IntegratedGradients, Occlusion, Saliency)
from PIL import Image

from captum_helpers.language import language as edition_language
from captum_helpers.language import say as _say
from captum_helpers.speed import INTEGRATED_GRADIENTS_BATCH, passes_per_example

CANCEL_WAIT_S = 2.0  # close() waits this long for a running Fetch to end
# Model passes one Fetch may make (a backward pass counts as two), summed over the photos it
# shows; `python bench/insights_fetch.py --budget` times the largest allowed Fetch.
MAX_PASSES = 800
ROWS = 4  # examples a Fetch shows, as Insights did
TOP = 4  # predicted classes a row shows
IMAGE_PX = 224  # the largest side of a picture a Fetch sends
# name -> (captum method, {argument: (default, type, limit)}). Insights' own list and arguments;
# the defaults the page starts from: a 7 x 7 grid of 32-pixel squares for Occlusion (50 passes
# a photo; the walkthrough's window 15, strides 8 make 785).
METHODS: dict[str, tuple[type, dict]] = {
    "Deconvolution": (Deconvolution, {}),
    "DeepLift": (DeepLift, {}),
    "Guided Backprop": (GuidedBackprop, {}),
    "Input X Gradient": (InputXGradient, {}),
    "Integrated Gradients": (IntegratedGradients, {
        "n_steps": (25, "number", [2, None]),
        "method": ("gausslegendre", "enum", ["riemann_right", "riemann_left", "riemann_middle",
                                             "riemann_trapezoid", "gausslegendre"])}),
    "Saliency": (Saliency, {}),
    "Feature Ablation": (FeatureAblation, {"perturbations_per_eval": (16, "number", [1, 100])}),
    "Occlusion": (Occlusion, {"sliding_window_shapes": ("3 32 32", "string", None),
                              "strides": ("3 32 32", "string", None),
                              "perturbations_per_eval": (16, "number", [1, 100])}),
}
TUPLES = ("sliding_window_shapes", "strides")  # typed as "3 32 32" on the page
PERTURBING = (FeatureAblation, Occlusion)  # no gradients: the others' inputs require them
# what captum says on each call of these methods: the explorer's business, not the notebook's
for _said in ("Setting forward, backward hooks", "Setting backward hooks on ReLU"):
    warnings.filterwarnings("ignore", message=_said, module="captum")


class InsightsError(ValueError):
    """A Fetch or a click that cannot be done as asked; the message says what to change."""


class Refused(InsightsError):
    """Over the work budget: refused before any attribution."""


class Cancelled(InsightsError):
    """A newer Fetch replaced this one (the message is SUPERSEDED), or the explorer was stopped."""


SUPERSEDED = "Cancelled: a newer request replaced this one."


class Batch:
    """Examples to explain: ``inputs`` (a tensor, or a tuple of them, one per feature, first
    dimension the examples), their ``labels`` (class indices) and ``additional_args`` for the
    model's forward beyond the inputs, as in captum.insights."""

    def __init__(self, inputs, labels, additional_args=None) -> None:
        self.inputs, self.labels, self.additional_args = inputs, labels, additional_args


def _listed(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


class ImageFeature:
    """An image input (N x C x H x W; C is 1 or 3): ``baseline_transforms`` make its baseline
    from the transformed input (one is used; none: zeros), ``input_transforms`` turn the stored
    input into the model's (e.g. normalizing), ``visualization_transform`` the stored input into
    what is shown."""

    type = "image"

    def __init__(self, name: str, baseline_transforms: Callable | list | None,
                 input_transforms: Callable | list | None,
                 visualization_transform: Callable | None = None) -> None:
        self.name, self.visualization_transform = name, visualization_transform
        self.baseline_transforms = _listed(baseline_transforms)
        self.input_transforms = _listed(input_transforms)

    def visualize(self, attribution: torch.Tensor, data: torch.Tensor,
                  contribution: float) -> dict:
        """The original beside its attribution magnitude, as captum drew them: the channels'
        absolute sum, scaled so that the largest 2 % saturate, on a white-to-blue scale."""
        if self.visualization_transform:
            data = self.visualization_transform(data)
        return {"name": self.name, "type": self.type, "contribution": contribution,
                "base": png(data.detach().reshape(data.shape[-3:])),
                "modified": png(magnitude(attribution))}


class GeneralFeature:
    """A vector input whose entries are the named ``categories``: shown as one bar per
    category, its attribution."""

    type = "general"

    def __init__(self, name: str, categories: list[str]) -> None:
        self.name, self.categories = name, list(categories)
        self.baseline_transforms, self.input_transforms = [], []

    def visualize(self, attribution: torch.Tensor, data: torch.Tensor,
                  contribution: float) -> dict:
        values = attribution.detach().reshape(-1).tolist()
        return {"name": self.name, "type": self.type, "contribution": contribution,
                "base": [{"name": n, "value": v} for n, v in zip(self.categories, values)],
                "modified": None}


def magnitude(attribution: torch.Tensor) -> np.ndarray:
    """captum's ``heat_map`` with ``sign="absolute_value"``, as RGB bytes (H x W x 3)."""
    from matplotlib import colormaps

    values = attribution.detach().float().reshape(attribution.shape[-3:]).sum(0).abs().numpy()
    ordered = np.sort(values.ravel())
    total = np.cumsum(ordered)
    threshold = ordered[min(np.searchsorted(total, 0.98 * total[-1]), len(ordered) - 1)]
    scaled = np.clip(values / threshold, 0, 1) if threshold > 0 else np.zeros_like(values)
    return (colormaps["Blues"](scaled)[..., :3] * 255).astype(np.uint8)


def png(picture: torch.Tensor | np.ndarray) -> str:
    """A C x H x W tensor in [0, 1] or H x W x 3 bytes as a data URI, at most IMAGE_PX a side."""
    if isinstance(picture, torch.Tensor):
        picture = (picture.float().clamp(0, 1).permute(1, 2, 0) * 255).round().byte().numpy()
        picture = picture[..., 0] if picture.shape[-1] == 1 else picture
    image = Image.fromarray(picture)
    image.thumbnail((IMAGE_PX, IMAGE_PX), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class AttributionVisualizer:
    """The explorer's configuration, with captum.insights' arguments and meaning: ``models``
    (one or a list), the ``classes``' names, one feature per model input, a ``dataset`` of
    ``Batch``es, a ``score_func`` applied to the model's output (e.g. softmax), and
    ``use_label_for_attr`` (pass the class to the attribution method). ``render()`` opens it
    below the notebook cell."""

    def __init__(self, models, classes: list[str], features, dataset: Iterable[Batch],
                 score_func: Callable | None = None, use_label_for_attr: bool = True) -> None:
        self.models, self.features = _listed(models), _listed(features)
        self.classes, self.dataset = list(classes), dataset
        self.score_func, self.use_label_for_attr = score_func, use_label_for_attr

    def render(self, max_passes: int = MAX_PASSES) -> None:
        """Show the explorer in the cell's output, as captum's ``render()`` did;
        ``open_insights(visualizer)`` does the same and returns the widget."""
        from .widget import open_insights
        open_insights(self, max_passes=max_passes)

    def examples(self) -> list[tuple]:
        """Every example of the dataset, one at a time: (inputs, additional args, label)."""
        found = []
        for batch in self.dataset:
            inputs = batch.inputs if isinstance(batch.inputs, tuple) else (batch.inputs,)
            labels, extra = batch.labels, batch.additional_args
            for i in range(len(inputs[0])):
                args = None if extra is None else tuple(
                    a[i:i + 1] if isinstance(a, torch.Tensor) else a
                    for a in (extra if isinstance(extra, tuple) else (extra,)))
                label = None if labels is None else int(torch.as_tensor(labels)[i])
                found.append((tuple(t[i:i + 1] for t in inputs), args, label))
        return found

    def prepare(self, inputs: tuple) -> tuple[tuple, tuple]:
        """The model's inputs (each feature's input transforms) and their baselines."""
        model_inputs, baselines = [], []
        for feature, value in zip(self.features, inputs):
            value = value.squeeze(0)  # transforms see one example, as in captum.insights
            for transform in feature.input_transforms:
                value = transform(value)
            model_inputs.append(value.unsqueeze(0))
            baseline = (feature.baseline_transforms[0](value) if feature.baseline_transforms
                        else torch.zeros_like(value))
            baselines.append(torch.as_tensor(baseline).unsqueeze(0))
        return tuple(model_inputs), tuple(baselines)

    def scores(self, model, inputs: tuple, args) -> list[dict]:
        """The model's top classes for one example, best first."""
        with torch.no_grad():
            output = model(*inputs, *(args or ()))
            output = self.score_func(output) if self.score_func else output
        top = output.reshape(-1).topk(min(TOP, output.numel()))
        return [{"score": float(s), "index": int(i), "label": self.classes[int(i)]}
                for s, i in zip(*top)]

    def explain(self, model, example: tuple, target: int | None, settings: dict) -> dict:
        """One row: the example's attribution for ``target`` (its top class when None)."""
        inputs, args, label = example
        model_inputs, baselines = self.prepare(inputs)
        predicted = self.scores(model, model_inputs, args)
        target = predicted[0]["index"] if target is None else target
        method, arguments = METHODS[settings["attribution_method"]][0], settings["arguments"]
        explainer = method(model)
        if "baselines" in inspect.signature(explainer.attribute).parameters:
            arguments = {**arguments, "baselines": baselines}
        attributions = explainer.attribute(
            tuple(t.clone().requires_grad_(method not in PERTURBING) for t in model_inputs),
            additional_forward_args=args, target=target if self.use_label_for_attr else None,
            **arguments)
        attributions = attributions if isinstance(attributions, tuple) else (attributions,)
        net = torch.stack([a.detach().sum() for a in attributions])
        norm = net.abs().sum()
        net = (net / norm if norm > 0 else net).tolist()
        actual = None if label is None else {"score": 100, "index": label,
                                             "label": self.classes[label]}
        return {"feature_outputs": [f.visualize(a, d, c) for f, a, d, c in
                                    zip(self.features, attributions, inputs, net)],
                "actual": actual, "predicted": predicted, "active_index": target,
                "model_index": self.models.index(model)}


class InsightsExplorer:
    """One open explorer over a visualizer: one computation at a time, each example shown once
    per Fetch within a work budget. The widget and the command line's server both drive one."""

    def __init__(self, visualizer: AttributionVisualizer, max_passes: int = MAX_PASSES,
                 language: str | None = None) -> None:
        self.visualizer, self.max_passes, self.closed = visualizer, max_passes, False
        self._examples, self._next, self._outputs = None, 0, []
        self._latest, self._worker, self._busy, self._state = (
            0, None, threading.Lock(), threading.Lock())
        self._why: dict[int, str] = {}  # ticket -> why it was stopped, when not by a newer one
        self._should_stop = lambda: False
        self.on_photo = lambda done, total: None  # told before each photo of a Fetch
        self.language = language or edition_language()  # "en" or "zh": its messages' words

    def say(self, english: str, chinese: str) -> str:
        return _say(english, chinese, self.language)

    def config(self) -> dict:
        """What the page needs to draw its controls."""
        return {"classes": self.visualizer.classes, "methods": list(METHODS),
                "selected_method": "Integrated Gradients",
                "method_arguments": {name: {arg: {"value": value, "type": kind, "limit": limit}
                                            for arg, (value, kind, limit) in args.items()}
                                     for name, (_, args) in METHODS.items()}}

    def _keep(self, example: tuple, settings: dict) -> bool:
        """Insights' filters: the top class among ``classes``; right or wrong."""
        inputs, args, label = example
        if label is None:
            return False  # as captum.insights: a row needs its label
        for model in self.visualizer.models:
            top = self.visualizer.scores(model, self.visualizer.prepare(inputs)[0], args)[0]
            wanted = {"all": True, "correct": top["index"] == label,
                      "incorrect": top["index"] != label}[settings["prediction"]]
            if wanted and (not settings["classes"] or top["label"] in settings["classes"]):
                return True
        return False

    def _check_budget(self, rows: int, inputs: tuple, settings: dict) -> None:
        method, arguments = settings["attribution_method"], settings["arguments"]
        try:
            each = len(self.visualizer.models) * sum(
                passes_per_example(method, arguments, tuple(t.shape[1:])) for t in inputs)
        except ValueError as err:
            raise InsightsError(self.say(f"{method}: {err}", f"{method}：{err}")) from None
        if each * rows > self.max_passes:
            lower = {"Integrated Gradients": ("lower n_steps", "调低 n_steps"),
                     "Feature Ablation": ("use Occlusion with a window", "改用带窗口的 Occlusion"),
                     "Occlusion": ("use larger strides or window "
                                   "(3 32 32 with strides 3 32 32 makes 50)",
                                   "用更大的步长或窗口（窗口 3 32 32、步长 3 32 32 是 50 次）")}
            english, chinese = lower.get(method, ("choose another method", "换一种方法"))
            raise Refused(self.say(
                f"{method} would run the model {each:,} times per photo, {each * rows:,} for {rows}"
                f": more than the {self.max_passes:,} one Fetch may take (15 s or so on 2 cores). "
                f"To lower it, {english}, or filter by class to fewer photos.",
                f"{method} 每张照片要运行模型 {each:,} 次，{rows} 张照片共 {each * rows:,} 次："
                f"超过了一次 Fetch 最多可做的 {self.max_passes:,} 次（在 2 个核心上大约 15 秒）。"
                f"要减少次数，请{chinese}，或者按类别筛选到更少的照片。"))

    def fetch(self, settings: dict, ticket: int | None = None, gone=lambda: False) -> list:
        """Answer the Fetch button (``settings`` as :func:`check_settings` returns them): up to
        ROWS examples from where the last Fetch stopped, each once; one row per example and
        model."""
        def work() -> list:
            if self._examples is None:
                self._examples = self.visualizer.examples()
            picked, start, count = [], self._next, len(self._examples)
            for turn in range(count):
                # a page ends at the dataset's end: the next Fetch starts again from the first
                if len(picked) == ROWS or (turn and self._next == 0 and picked):
                    break
                example = self._examples[self._next]
                self._next = (self._next + 1) % count
                if self._keep(example, settings):
                    picked.append(example)
            try:
                self._check_budget(len(picked), picked[0][0] if picked else (), settings)
                rows, outputs = [], []
                for done, example in enumerate(picked):
                    self.on_photo(done, len(picked))
                    for model in self.visualizer.models:
                        rows.append(self.visualizer.explain(model, example, None, settings))
                        outputs.append((example, settings))
            except Exception:
                self._next = start  # a Fetch that did not finish shows the same photos next time
                raise
            self._outputs = outputs
            return rows
        return self.run(work, ticket, gone)

    def attribute(self, input_index: object, model_index: object, label_index: object,
                  ticket: int | None = None, gone=lambda: False) -> dict:
        """Answer a click on a predicted class: that row's attribution for the class."""
        indices = (input_index, model_index, label_index)
        if not all(type(i) is int for i in indices) or not (
                0 <= input_index < len(self._outputs)
                and 0 <= model_index < len(self.visualizer.models)
                and 0 <= label_index < len(self.visualizer.classes)):
            raise InsightsError(self.say(
                f"No row {input_index} or class {label_index} to explain: press Fetch again.",
                f"没有第 {input_index} 行或类别 {label_index} 可以解释：请再点一次 Fetch。"))
        example, settings = self._outputs[input_index]

        def work() -> dict:
            self._check_budget(1, example[0], settings)
            return self.visualizer.explain(self.visualizer.models[model_index], example,
                                           label_index, settings)
        return self.run(work, ticket, gone)

    def ticket(self) -> int:
        """A place in line: taking one stops the computation that holds an earlier one."""
        with self._state:
            self._latest += 1
            return self._latest

    def run(self, work, ticket: int | None = None, gone=lambda: False):
        """Run ``work()`` as the only computation. A newer ticket, ``stop()``, ``close()`` or
        ``gone()`` turning true stops it when the model runs its next layer (``_hook``)."""
        ticket = self.ticket() if ticket is None else ticket
        with self._busy:
            self._should_stop = lambda: self.closed or self._latest != ticket or gone()
            if self._should_stop():
                raise Cancelled(self._why.pop(ticket, SUPERSEDED))
            self._worker = threading.get_ident()
            hooks = [m.register_forward_pre_hook(self._hook)
                     for model in self.visualizer.models for m in model.modules()]
            try:
                return work()
            except Cancelled:
                raise Cancelled(self._why.pop(ticket, SUPERSEDED)) from None
            finally:
                self._worker = None
                for hook in hooks:
                    hook.remove()

    def _hook(self, module: torch.nn.Module, args: tuple) -> None:
        if threading.get_ident() == self._worker and self._should_stop():
            raise Cancelled()  # the notebook's own calls of the model run in other threads

    def stop(self, why: str) -> None:
        """Stop the running computation, if any, saying ``why``; the explorer stays open.
        Safe in a signal handler: it takes no lock."""
        self._why[self._latest] = why
        self._latest += 1

    def close(self, timeout: float = CANCEL_WAIT_S) -> bool:
        """Cancel the running computation for good; True once none runs."""
        self.closed = True
        self.stop(self.say("Closed.", "已关闭。"))
        if not self._busy.acquire(timeout=timeout):
            return False
        self._busy.release()
        return True


def check_settings(body: object, language: str | None = None) -> dict:
    """A Fetch's settings, checked: the page builds them, but anything can be sent (the widget's
    traits, a request to the command line's server), so a bad one gets a message instead of a
    traceback, in ``language`` ("en" or "zh"; the edition's by default)."""
    def say(english: str, chinese: str) -> str:
        return _say(english, chinese, language)

    method = body.get("attribution_method") if isinstance(body, dict) else None
    if method not in METHODS:
        raise InsightsError(say(f"attribution_method must be one of {list(METHODS)}",
                                f"attribution_method 必须是以下之一：{list(METHODS)}"))
    params = METHODS[method][1]
    given, classes = body.get("arguments") or {}, body.get("classes", [])
    prediction = body.get("prediction", "all")
    if (not isinstance(given, dict) or set(given) - set(params) or not isinstance(classes, list)
            or prediction not in ("all", "correct", "incorrect")):
        raise InsightsError(say(
            f"{method} takes the arguments {sorted(params) or 'none'}; classes is a list of "
            "names; prediction is all, correct or incorrect",
            f"{method} 接受的参数是 {sorted(params) or '无'}；classes 是一个类别名称的列表；"
            "prediction 是 all、correct 或 incorrect"))
    arguments = {name: given.get(name, default) for name, (default, _, _) in params.items()}
    for name, (_, kind, limit) in params.items():
        value = arguments[name]
        if name in TUPLES:  # "3 32 32" from the page, (3, 32, 32) from Python
            try:
                value = tuple(int(v) for v in (value if isinstance(value, (list, tuple))
                                               else str(value).split()))
            except (TypeError, ValueError):
                value = ()
            if not value or min(value) < 1:  # a stride of 0 would divide by zero
                raise InsightsError(say(
                    f"{method}: {name} must be whole numbers of 1 or more, one per dimension, "
                    "such as 3 32 32",
                    f"{method}：{name} 必须是大于等于 1 的整数，每个维度一个，例如 3 32 32"))
        elif kind == "number":
            try:
                value = int(value)
            except (TypeError, ValueError) as err:
                raise InsightsError(say(f"{method}: {name}: {err}",
                                        f"{method}：{name} 无法转换（{err}）")) from None
        low, high = limit if kind == "number" else (None, None)
        if kind == "enum" and value not in limit:
            raise InsightsError(say(f"{method}: {name} must be one of {limit}",
                                    f"{method}：{name} 必须是以下之一：{limit}"))
        if kind == "number" and not ((low is None or value >= low)
                                     and (high is None or value <= high)):
            raise InsightsError(say(
                f"{method}: {name} must be at least {low}" if high is None
                else f"{method}: {name} must be from {low} to {high}",
                f"{method}：{name} 必须至少为 {low}" if high is None
                else f"{method}：{name} 必须在 {low} 到 {high} 之间"))
        arguments[name] = value
    if method == "Integrated Gradients":  # not on the page: all steps in one batch otherwise
        arguments["internal_batch_size"] = INTEGRATED_GRADIENTS_BATCH
    return {"attribution_method": method, "arguments": arguments, "prediction": prediction,
            "classes": [str(c) for c in classes]}
