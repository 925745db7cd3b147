"""What the explorer computes: captum.insights' API on captum's public attribution methods (0.8
and 0.9 alike), and ``InsightsExplorer``, the state of one open explorer."""
from __future__ import annotations
import base64
import inspect
import io
import threading
import warnings
from collections.abc import Callable, Iterable
from functools import partial

import numpy as np
import torch
from captum.attr import (Deconvolution, DeepLift, FeatureAblation, GuidedBackprop, InputXGradient,
                         IntegratedGradients, Saliency)
from PIL import Image

from captum_helpers.language import language as edition_language, say as _say
from captum_helpers.speed import INTEGRATED_GRADIENTS_BATCH, passes_per_example
from captum_helpers.incremental import IncrementalOcclusion  # captum's Occlusion, faster

CANCEL_WAIT_S = 2.0  # close() waits this long for a running Fetch to end
MAX_PASSES = 800  # model passes one Fetch may make (a backward pass counts as two)
ROWS, TOP, IMAGE_PX = 4, 4, 224  # examples a Fetch shows, classes a row shows, picture side
METHODS: dict[str, tuple[type, dict]] = {  # name: (method, {argument: (default, type, limit)})
    "Deconvolution": (Deconvolution, {}), "DeepLift": (DeepLift, {}),
    "Guided Backprop": (GuidedBackprop, {}), "Input X Gradient": (InputXGradient, {}),
    "Integrated Gradients": (IntegratedGradients, {"n_steps": (25, "number", [2, None]), "method": (
        "gausslegendre", "enum", ["riemann_right", "riemann_left", "riemann_middle",
                                  "riemann_trapezoid", "gausslegendre"])}),
    "Saliency": (Saliency, {}),
    "Feature Ablation": (FeatureAblation, {"perturbations_per_eval": (16, "number", [1, 100])}),
    "Occlusion": (IncrementalOcclusion, {"sliding_window_shapes": ("3 32 32", "string", None),
                              "strides": ("3 32 32", "string", None),
                              "perturbations_per_eval": (16, "number", [1, 100])})}
TUPLES = ("sliding_window_shapes", "strides")  # typed as "3 32 32" on the page
PERTURBING = (FeatureAblation, IncrementalOcclusion)  # no gradients: the others' inputs need them
SUPERSEDED = "Cancelled: a newer request replaced this one."
warnings.filterwarnings("ignore", "Setting (forward, backward|backward) hooks", module="captum")


class InsightsError(ValueError):
    """A Fetch or a click that cannot be done as asked; the message says what to change."""


class Refused(InsightsError):
    """Over the work budget: refused before any attribution."""


class Cancelled(InsightsError):
    """A newer Fetch replaced this one (the message is SUPERSEDED), or the explorer was stopped."""


class Batch:
    """Examples to explain, as in captum.insights: ``inputs``, ``labels``, ``additional_args``."""
    def __init__(self, inputs, labels, additional_args=None) -> None:
        self.inputs, self.labels, self.additional_args = inputs, labels, additional_args


def _listed(value) -> list:
    return [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]


class ImageFeature:
    """An image input (N x C x H x W, C 1 or 3) with captum.insights' transforms."""
    type = "image"

    def __init__(self, name: str, baseline_transforms: Callable | list | None,
                 input_transforms: Callable | list | None,
                 visualization_transform: Callable | None = None) -> None:
        self.name, self.visualization_transform = name, visualization_transform
        self.baseline_transforms = _listed(baseline_transforms)
        self.input_transforms = _listed(input_transforms)

    def visualize(self, attribution: torch.Tensor, data: torch.Tensor, contribution: float) -> dict:
        """The original beside its attribution magnitude, as captum drew them."""
        data = self.visualization_transform(data) if self.visualization_transform else data
        return {"name": self.name, "type": self.type, "contribution": contribution,
                "base": png(data.detach().reshape(data.shape[-3:])),
                "modified": png(magnitude(attribution))}


def magnitude(attribution: torch.Tensor) -> np.ndarray:
    """captum's ``heat_map`` with ``sign="absolute_value"``, as RGB bytes (H x W x 3)."""
    from matplotlib import colormaps
    values = attribution.detach().float().reshape(attribution.shape[-3:]).sum(0).abs().numpy()
    total = np.cumsum(ordered := np.sort(values.ravel()))
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
    image.save(buffer := io.BytesIO(), format="png", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class AttributionVisualizer:
    """The explorer's configuration, with captum.insights' arguments and meaning."""
    def __init__(self, models, classes: list[str], features, dataset: Iterable[Batch],
                 score_func: Callable | None = None, use_label_for_attr: bool = True) -> None:
        self.models, self.features = _listed(models), _listed(features)
        self.classes, self.dataset = list(classes), dataset
        self.score_func, self.use_label_for_attr = score_func, use_label_for_attr

    def render(self, max_passes: int = MAX_PASSES) -> None:  # below the cell, as captum's did
        from .widget import open_insights
        open_insights(self, max_passes=max_passes)

    def examples(self) -> list[tuple]:  # each example alone: (inputs, additional args, label)
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

    def prepare(self, inputs: tuple) -> tuple[tuple, tuple]:  # the model's inputs, baselines
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

    def scores(self, model, inputs: tuple, args) -> list[dict]:  # top classes, best first
        with torch.no_grad():
            output = model(*inputs, *(args or ()))
            output = self.score_func(output) if self.score_func else output
        return [{"score": float(s), "index": int(i), "label": self.classes[int(i)]}
                for s, i in zip(*output.reshape(-1).topk(min(TOP, output.numel())))]

    def explain(self, model, example: tuple, target: int | None, settings: dict) -> dict:
        """One row: the example's attribution for ``target`` (its top class when None)."""
        inputs, args, label = example
        model_inputs, baselines = self.prepare(inputs)
        predicted = self.scores(model, model_inputs, args)
        target = predicted[0]["index"] if target is None else target
        method, arguments = METHODS[settings["attribution_method"]][0], settings["arguments"]
        if "baselines" in inspect.signature((explainer := method(model)).attribute).parameters:
            arguments = {**arguments, "baselines": baselines}
        attributions = explainer.attribute(
            tuple(t.clone().requires_grad_(method not in PERTURBING) for t in model_inputs),
            additional_forward_args=args, target=target if self.use_label_for_attr else None,
            **arguments)
        attributions = attributions if isinstance(attributions, tuple) else (attributions,)
        net = torch.stack([a.detach().sum() for a in attributions])
        net = (net / norm if (norm := net.abs().sum()) > 0 else net).tolist()
        actual = None if label is None else {"score": 100, "index": label,
                                             "label": self.classes[label]}
        return {"feature_outputs": [f.visualize(a, d, c) for f, a, d, c in
                                    zip(self.features, attributions, inputs, net)],
                "actual": actual, "predicted": predicted, "active_index": target,
                "model_index": self.models.index(model)}


class InsightsExplorer:
    """One open explorer (of the widget or the server): one computation at a time, in budget."""
    def __init__(self, visualizer: AttributionVisualizer, max_passes: int = MAX_PASSES,
                 language: str | None = None) -> None:
        self.visualizer, self.max_passes, self.closed = visualizer, max_passes, False
        self._examples, self._next, self._outputs, self._latest = None, 0, [], 0
        self._worker, self._busy, self._state = None, threading.Lock(), threading.Lock()
        self._why, self._should_stop = {}, lambda: False  # _why: ticket -> why it was stopped
        self.on_photo = lambda done, total: None  # told before each photo of a Fetch
        self.language = language or edition_language()  # "en" or "zh"
        self.say = partial(_say, lang=self.language)  # say(english, chinese): in its language

    def config(self) -> dict:  # what the page needs to draw its controls
        return {"classes": self.visualizer.classes, "methods": list(METHODS),
                "selected_method": "Integrated Gradients",
                "method_arguments": {name: {arg: {"value": value, "type": kind, "limit": limit}
                                            for arg, (value, kind, limit) in args.items()}
                                     for name, (_, args) in METHODS.items()}}

    def _keep(self, example: tuple, settings: dict) -> bool:  # Insights' filters
        inputs, args, label = example  # as captum.insights, a row needs its label
        for model in self.visualizer.models if label is not None else ():
            top = self.visualizer.scores(model, self.visualizer.prepare(inputs)[0], args)[0]
            wanted = {"all": True, "correct": top["index"] == label,
                      "incorrect": top["index"] != label}[settings["prediction"]]
            if wanted and (not settings["classes"] or top["label"] in settings["classes"]):
                return True
        return False

    def _check_budget(self, rows: int, inputs: tuple, settings: dict) -> None:
        method, arguments = settings["attribution_method"], settings["arguments"]
        try:
            each = sum(passes_per_example(method, arguments, tuple(t.shape[1:]), model)
                       for model in self.visualizer.models for t in inputs)
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
                f"{method} would take {each:,} model passes per photo, {each * rows:,} for {rows}"
                f": more than the {self.max_passes:,} one Fetch may take (15 s or so on 2 cores). "
                f"To lower it, {english}, or filter by class to fewer photos.",
                f"{method} 每张照片要做 {each:,} 次模型传播的计算，{rows} 张共 {each * rows:,} 次："
                f"超过一次 Fetch 最多可做的 {self.max_passes:,} 次（2 个核心上约 15 秒）。"
                f"要减少次数，请{chinese}，或者按类别筛选到更少的照片。"))

    def fetch(self, settings: dict, ticket: int | None = None, gone=lambda: False) -> list:
        """Answer the Fetch button: a row per model for the next ROWS examples that pass."""
        def work() -> list:
            if self._examples is None:
                self._examples = self.visualizer.examples()
            picked, start, count = [], self._next, len(self._examples)
            for turn in range(count):  # a page ends at the dataset's end
                if len(picked) == ROWS or (turn and self._next == 0 and picked):
                    break
                example, self._next = self._examples[self._next], (self._next + 1) % count
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
                  ticket: int | None = None, gone=lambda: False) -> dict:  # a click on a class
        limits = len(self._outputs), len(self.visualizer.models), len(self.visualizer.classes)
        indices = input_index, model_index, label_index
        if not all(type(i) is int and 0 <= i < n for i, n in zip(indices, limits)):
            raise InsightsError(self.say(
                f"No row {input_index} or class {label_index} to explain: press Fetch again.",
                f"没有第 {input_index} 行或类别 {label_index} 可以解释：请再点一次 Fetch。"))
        example, settings = self._outputs[input_index]
        def work() -> dict:
            self._check_budget(1, example[0], settings)
            return self.visualizer.explain(self.visualizer.models[model_index], example,
                                           label_index, settings)
        return self.run(work, ticket, gone)

    def ticket(self) -> int:  # a place in line: taking one stops the computation of an earlier one
        with self._state:
            self._latest += 1
            return self._latest

    def run(self, work, ticket: int | None = None, gone=lambda: False):  # work() alone, stoppable
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

    def stop(self, why: str) -> None:  # stop the running computation; safe in a signal handler
        self._why[self._latest] = why
        self._latest += 1

    def close(self, timeout: float = CANCEL_WAIT_S) -> bool:  # for good; True once none runs
        self.closed = True
        self.stop(self.say("Closed.", "已关闭。"))
        if acquired := self._busy.acquire(timeout=timeout):
            self._busy.release()
        return acquired


def check_settings(body: object, language: str | None = None) -> dict:
    """A Fetch's settings, checked: a bad one raises a message in ``language``, not a traceback."""
    say = partial(_say, lang=language)
    method = body.get("attribution_method") if isinstance(body, dict) else None
    if method not in METHODS:
        raise InsightsError(say(f"attribution_method must be one of {list(METHODS)}",
                                f"attribution_method 必须是以下之一：{list(METHODS)}"))
    params, given = METHODS[method][1], body.get("arguments") or {}
    classes, prediction = body.get("classes", []), body.get("prediction", "all")
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
            low, high = limit
            if not ((low is None or value >= low) and (high is None or value <= high)):
                raise InsightsError(say(
                    f"{method}: {name} must be at least {low}" if high is None
                    else f"{method}: {name} must be from {low} to {high}",
                    f"{method}：{name} 必须至少为 {low}" if high is None
                    else f"{method}：{name} 必须在 {low} 到 {high} 之间"))
        if kind == "enum" and value not in limit:
            raise InsightsError(say(f"{method}: {name} must be one of {limit}",
                                    f"{method}：{name} 必须是以下之一：{limit}"))
        arguments[name] = value
    if method == "Integrated Gradients":  # not on the page: all steps in one batch otherwise
        arguments["internal_batch_size"] = INTEGRATED_GRADIENTS_BATCH
    return {"attribution_method": method, "arguments": arguments, "prediction": prediction,
            "classes": [str(c) for c in classes]}
