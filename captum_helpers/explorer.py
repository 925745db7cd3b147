"""The engine behind Captum Insights in the course: notebook 05's widget (insights.py) and the
command line's web page (captum_course.insights) both drive an InsightsExplorer.

Beyond captum's own AttributionVisualizer it shows each example once per Fetch (captum's went
round a small dataset until it had 4 rows, and never returned when no example passed the
filters), refuses a Fetch over a work budget before attributing, runs one computation at a time
and stops one that a newer request, ``stop()`` or ``close()`` made useless, and sends smaller
pictures. Settings from outside are checked with captum's own converters and limits. Its
messages are in the edition's language (``captum_helpers.language``), fixed when it is made.
"""
from __future__ import annotations

import base64
import io
import threading
import warnings

import torch
from captum.attr._utils.batching import _batched_generator
from captum.insights import AttributionVisualizer
from captum.insights.attr_vis.app import OutputScore, SampleCache
from captum.insights.attr_vis.config import (ATTRIBUTION_METHOD_CONFIG,
                                             ATTRIBUTION_NAMES_TO_METHODS, NumberConfig)
from captum.insights.attr_vis.server import namedtuple_to_dict
from PIL import Image, ImageChops

from .language import language as edition_language
from .language import say as _say
from .speed import INTEGRATED_GRADIENTS_BATCH, passes_per_example

CANCEL_WAIT_S = 2.0  # close() waits this long for a running Fetch to end
# Model passes one Fetch may make (a backward pass counts as two), summed over the photos it
# shows; `python bench/insights_fetch.py --budget` times the largest allowed Fetch (aim: ~30 s;
# 12-14 s for 3 photos with ResNet18 on a 2-core Intel Xeon).
MAX_PASSES = 800
IMAGE_PX = 224  # the largest side of a picture a Fetch sends (the photos' own size)
# captum's Occlusion defaults are empty strings (it fails). A 7 x 7 grid of 32-pixel squares is
# 50 passes per photo; the walkthrough's window 15, strides 8 make 28 x 28 + 1 = 785.
ARGUMENT_DEFAULTS = {"Occlusion": {"sliding_window_shapes": "3 32 32", "strides": "3 32 32",
                                   "perturbations_per_eval": 16},
                     "Feature Ablation": {"perturbations_per_eval": 16}}
# captum's _batched_generator warns for each example that its input needs no gradient: it need not
warnings.filterwarnings("ignore", message="It looks like that the attribution for a gradient-based")


class InsightsError(ValueError):
    """A Fetch or a click that cannot be done as asked; the message says what to change."""


class Refused(InsightsError):
    """Over the work budget: refused before any attribution."""


class Cancelled(InsightsError):
    """A newer Fetch replaced this one (the message is SUPERSEDED), or the explorer was stopped."""


SUPERSEDED = "Cancelled: a newer request replaced this one."


class InsightsExplorer(AttributionVisualizer):
    """One explorer's state: the user's visualizer, one computation at a time, each example
    shown once per Fetch within a work budget. The widget below and the command line's web
    server (captum_course.insights) both drive it."""

    def __init__(self, visualizer: AttributionVisualizer, max_passes: int = MAX_PASSES,
                 language: str | None = None) -> None:
        calc = visualizer.attribution_calculation
        super().__init__(visualizer.models, visualizer.classes, visualizer.features,
                         visualizer.dataset, calc.score_func, calc.use_label_for_attr)
        self.max_passes, self.closed, self._examples, self._next, self._outputs = (
            max_passes, False, None, 0, [])
        self._latest, self._worker, self._busy, self._state = (
            0, None, threading.Lock(), threading.Lock())
        self._why: dict[int, str] = {}  # ticket -> why it was stopped, when not by a newer one
        self._should_stop = lambda: False
        self.on_photo = lambda done, total: None  # told before each photo of a Fetch is attributed
        self.language = language or edition_language()  # "en" or "zh": the words of its messages

    def say(self, english: str, chinese: str) -> str:
        """``english``, or ``chinese`` for an explorer of the Chinese edition."""
        return _say(english, chinese, self.language)

    # captum's visualize() goes round the dataset until it has 4 rows: 3 photos showed as 6 rows,
    # and with no example passing the filters it never returns. Here a Fetch goes on from where
    # the last one stopped up to the dataset's end, and checks the budget before attributing.
    def visualize(self) -> list:
        # kept, as captum's cycle() keeps the batches; split as captum does
        if self._examples is None:
            self._examples = [example for batch in self.dataset for example in _batched_generator(
                batch.inputs, batch.additional_args, batch.labels, 1)]
        picked, start = [], self._next
        for turn in range(len(self._examples)):
            if len(picked) == self._config.num_examples or (turn and self._next == 0):
                break
            example, self._next = self._examples[self._next], (self._next + 1) % len(self._examples)
            if self._keep(*example):
                picked.append(example)
        try:
            self._check_budget(len(picked), picked[0][0] if picked else ())
            outputs = []
            for done, example in enumerate(picked):
                self.on_photo(done, len(picked))
                output = self._calculate_vis_output(*example)
                if output:
                    outputs.append((output, SampleCache(*example)))
        except Exception:
            self._next = start  # a Fetch that did not finish shows the same photos next time
            raise
        self._outputs = outputs
        return [out for out, _ in outputs]

    def _keep(self, inputs: tuple, args: object, label: torch.Tensor | None) -> bool:
        if label is None or len(label) == 0:
            return False  # as captum's _calculate_vis_output: a row needs its label
        actual = OutputScore(100, int(label[0]), self.classes[int(label[0])])
        with torch.no_grad():  # captum's own filter, private: there is no public one
            return any(self._should_keep_prediction(
                self.attribution_calculation.calculate_predicted_scores(inputs, args, model)[0],
                actual) for model in self.models)

    def _check_budget(self, rows: int, inputs: tuple) -> None:
        method, arguments = self._config.attribution_method, self._config.attribution_arguments
        try:
            each = len(self.models) * sum(passes_per_example(method, arguments, tuple(t.shape[1:]))
                                          for t in inputs)
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
                f"要减少次数，请{chinese}，"
                f"或者按类别筛选到更少的照片。"))

    def get_insights_config(self) -> dict:
        config = super().get_insights_config()
        for method, values in ARGUMENT_DEFAULTS.items():
            for name, value in values.items():
                config["method_arguments"][method][name]["value"] = value
        return config

    def fetch(self, settings: dict, ticket: int | None = None, gone=lambda: False) -> list:
        """Answer the Fetch button (``settings`` as :func:`check_settings` returns them): one row
        per example shown."""
        def work() -> list:
            calc = self.attribution_calculation  # its caches are keyed by tensors, new each pass
            calc.baseline_cache.clear(), calc.transformed_input_cache.clear()
            self._update_config(settings)  # as captum's own server and widget configure a Fetch
            return [shrink_images(row) for row in namedtuple_to_dict(self.visualize())]
        return self.run(work, ticket, gone)

    def attribute(self, input_index: object, model_index: object, label_index: object,
                  ticket: int | None = None, gone=lambda: False) -> dict:
        """Answer a click on a predicted class: that row's attribution for the class."""
        indices = (input_index, model_index, label_index)
        if not all(isinstance(i, int) for i in indices) or not (
                0 <= input_index < len(self._outputs) and 0 <= model_index < len(self.models)
                and 0 <= label_index < len(self.classes)):
            raise InsightsError(self.say(
                f"No row {input_index} or class {label_index} to explain: press Fetch again.",
                f"没有第 {input_index} 行或类别 {label_index} 可以解释：请再点一次 Fetch。"))

        def work() -> dict:
            self._check_budget(1, self._outputs[input_index][1].inputs)
            return shrink_images(namedtuple_to_dict(
                self._calculate_attribution_from_cache(input_index, model_index, label_index)))
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
                     for model in self.models for m in model.modules()]
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


def shrink_images(output: object) -> object:
    """captum's pictures smaller on the wire: each is a whole 640 x 480 matplotlib figure, white
    margins round a 224-pixel photo drawn at about 370 pixels, about 0.5 MB as base64 PNG. Cut to
    the picture and drawn at its own size (at most ``IMAGE_PX``), still PNG: what the page shows
    at the size it shows it, for a fraction of the bytes."""
    if isinstance(output, list):
        return [shrink_images(item) for item in output]
    if isinstance(output, dict):
        if output.get("type") == "image":
            return {**output, "base": _smaller_png(output["base"]),
                    "modified": _smaller_png(output["modified"])}
        return {key: shrink_images(value) for key, value in output.items()}
    return output


def _smaller_png(encoded: str) -> str:
    picture = Image.open(io.BytesIO(base64.b64decode(encoded))).convert("RGB")
    box = ImageChops.difference(picture, Image.new("RGB", picture.size, "white")).getbbox()
    if box:
        picture = picture.crop(box)
    picture.thumbnail((IMAGE_PX, IMAGE_PX), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    picture.save(buffer, format="png", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def check_settings(body: object, language: str | None = None) -> dict:
    """A Fetch's settings as captum's; the page builds them, but anything can be sent (the
    widget's traits, a request to the command line's server): checked with captum's own
    converters and limits, so a bad one gets a message instead of a traceback, in ``language``
    ("en" or "zh"; the edition's by default)."""
    def say(english: str, chinese: str) -> str:
        return _say(english, chinese, language)

    method = body.get("attribution_method") if isinstance(body, dict) else None
    if method not in ATTRIBUTION_NAMES_TO_METHODS:
        raise InsightsError(say(
            f"attribution_method must be one of {list(ATTRIBUTION_NAMES_TO_METHODS)}",
            f"attribution_method 必须是以下之一：{list(ATTRIBUTION_NAMES_TO_METHODS)}"))
    config = ATTRIBUTION_METHOD_CONFIG.get(method)
    params, post = (config.params, config.post_process or {}) if config else ({}, {})
    given, classes = body.get("arguments") or {}, body.get("classes", [])
    if not isinstance(given, dict) or set(given) - set(params) or not isinstance(classes, list):
        raise InsightsError(say(
            f"{method} takes the arguments {sorted(params) or 'none'}; classes is a list of names",
            f"{method} 接受的参数是 {sorted(params) or '无'}；classes 是一个类别名称的列表"))
    arguments = {**{k: c.value for k, c in params.items()}, **ARGUMENT_DEFAULTS.get(method, {}),
                 **given}
    try:
        arguments.update({k: post.get(k, int if isinstance(c, NumberConfig) else str)(arguments[k])
                          for k, c in params.items()})
    except (TypeError, ValueError) as err:
        raise InsightsError(say(f"{method}: {err}", f"{method}：参数无法转换（{err}）")) from None
    for name, cfg in params.items():  # captum's own limits, e.g. at most 100 perturbations per pass
        low, high = ((cfg.limit[0] or 1, cfg.limit[1] or 10 ** 6) if isinstance(cfg, NumberConfig)
                     else (0, 0))
        if low and not low <= arguments[name] <= high:
            raise InsightsError(say(f"{method}: {name} must be from {low} to {high}",
                                    f"{method}：{name} 必须在 {low} 到 {high} 之间"))
    if method == "Integrated Gradients":  # not on the page. captum's default runs all steps in one
        # batch: memory grows with n_steps
        arguments["internal_batch_size"] = INTEGRATED_GRADIENTS_BATCH
    return {"attribution_method": method, "arguments": arguments,
            "prediction": body.get("prediction", "all"), "classes": classes}
