"""Open Captum Insights from a notebook cell (introduced in 05_captum_insights).

``AttributionVisualizer.render()`` is a classic-notebook widget: JupyterLab 4, Notebook 7
and VS Code only say "No version of module jupyter-captum-insights is registered". So the
suite serves Insights' own front end (it ships built inside captum 0.8.0) from a small Flask
app on a loopback port, in a daemon thread, and shows it in the cell as an IFrame. On
JupyterHub or Binder the IFrame goes through jupyter-server-proxy.

The app answers the same routes as captum's ``insights/attr_vis/server.py`` but per
visualizer (captum keeps one module-global visualizer and port), validates what it is sent,
shows each example once, and does less work per Fetch (see ``_FastCalculation``).
"""
from __future__ import annotations

import base64
import copy
import io
import os
import signal
import sys
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import matplotlib
import numpy as np
import torch
from captum._utils.common import _format_additional_forward_args, _format_tensor_into_tuples
from captum.attr._utils import visualization as viz
from captum.attr._utils.batching import _tuple_splice_range
from captum.insights import AttributionVisualizer, Batch
from captum.insights.attr_vis import server as captum_server
from captum.insights.attr_vis.app import FilterConfig, SampleCache
from captum.insights.attr_vis.attribution_calculation import AttributionCalculation
from captum.insights.attr_vis.config import (
    ATTRIBUTION_METHOD_CONFIG,
    ATTRIBUTION_NAMES_TO_METHODS,
    NumberConfig,
    StrConfig,
    StrEnumConfig,
)
from captum.insights.attr_vis.features import FeatureOutput, ImageFeature
from flask import Flask, Response, jsonify, request
from flask_compress import Compress
from PIL import Image
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .assets import PHOTOS, WALKTHROUGH_PHOTOS, photo_paths
from .images import load_image, transform, transform_normalize
from .models import categories

FRONTEND = Path(captum_server.__file__).resolve().parent / "frontend" / "build"
LOOPBACK = "127.0.0.1"
PREDICTIONS = ("all", "correct", "incorrect")
# Perturbation methods evaluate the model once per perturbed copy of a photo. Feature
# Ablation without a mask perturbs each of the 150,528 input values separately: hours here,
# with the server busy all that time. Refuse such requests with a message instead.
MAX_PERTURBATIONS = 20_000
MAX_IG_STEPS = 2_000
IG_CHUNK = 32  # IG steps per forward/backward: keeps memory bounded for large n_steps

# Friendlier starting values than captum's empty strings, which make Occlusion fail:
# the walkthrough's window and strides, many perturbations per forward pass.
ARGUMENT_DEFAULTS = {
    "Occlusion": {"sliding_window_shapes": "3 15 15", "strides": "3 8 8", "perturbations_per_eval": 64},
    "Feature Ablation": {"perturbations_per_eval": 64},
}


class RequestError(ValueError):
    """A request the explorer cannot answer; ``status`` is the HTTP status to reply with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# --- faster attribution, same results --------------------------------------------------


class _FastCalculation(AttributionCalculation):
    """captum's AttributionCalculation with less work per Fetch and no side effects.

    Most of a Fetch is the forward and backward passes of Integrated Gradients (see
    bench/insights_fetch.py). Four changes cut them without changing the maths:
      * the model runs as a copy whose parameters need no gradients (attributions need
        gradients with respect to the input only); the user's model is never modified,
        not even by the hooks Guided Backprop or Deconvolution attach;
      * in that copy each eval-mode BatchNorm is folded into the convolution before it;
      * image inputs are channels_last, the faster memory layout for CPU convolutions;
      * predictions run without autograd.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._copies: dict[int, tuple[tuple, nn.Module]] = {}

    def _model(self, model: nn.Module) -> nn.Module:
        """The fast copy of ``model``, made again whenever its weights change."""
        stamp = _weights_stamp(model)
        cached = self._copies.get(id(model))
        if cached is None or cached[0] != stamp:
            cached = (stamp, _fast_copy(model))
            self._copies[id(model)] = cached
        return cached[1]

    def calculate_predicted_scores(self, inputs: Any, additional_forward_args: Any, model: nn.Module) -> Any:
        with torch.no_grad():
            return super().calculate_predicted_scores(inputs, additional_forward_args, self._model(model))

    def calculate_attribution(
        self,
        baselines: Any,
        data: tuple[torch.Tensor, ...],
        additional_forward_args: Any,
        label: Any,
        attribution_method_name: str,
        attribution_arguments: dict,
        model: nn.Module,
    ) -> tuple[torch.Tensor, ...]:
        arguments = dict(attribution_arguments)  # captum writes into the dict it is given
        _check_cost(attribution_method_name, arguments, data)
        if attribution_method_name == "Integrated Gradients" and int(arguments["n_steps"]) > IG_CHUNK:
            arguments["internal_batch_size"] = IG_CHUNK
        data = tuple(_channels_last(t) for t in data)
        if baselines:
            baselines = [tuple(_channels_last(b) for b in group) for group in baselines]
        attributions = super().calculate_attribution(
            baselines, data, additional_forward_args, label, attribution_method_name, arguments, self._model(model)
        )
        return tuple(a.contiguous() for a in attributions)


def _weights_stamp(model: nn.Module) -> tuple:
    # a tensor's _version counts its in-place changes: training or load_state_dict shows here
    tensors = [*model.parameters(), *model.buffers()]
    return model.training, tuple((id(t), t._version) for t in tensors)


def _fast_copy(model: nn.Module) -> nn.Module:
    try:
        fast = copy.deepcopy(model)
    except Exception:  # a model that cannot be copied still works, just slower
        return model
    fast.requires_grad_(False)
    try:
        fast = _fold_batch_norms(fast)
    except Exception:  # not traceable by torch.fx (data-dependent control flow): skip folding
        pass
    return fast.requires_grad_(False)


class _ConvBnTracer(fx.Tracer):
    # keep convolutions (EfficientNet's padded ones too) as modules so they can be folded
    def is_leaf_module(self, module: nn.Module, name: str) -> bool:
        return isinstance(module, (nn.Conv2d, nn.BatchNorm2d)) or super().is_leaf_module(module, name)


def _fold_batch_norms(model: nn.Module) -> nn.Module:
    """``model`` as a torch.fx GraphModule in which each eval-mode BatchNorm2d that only
    follows a Conv2d is merged into that convolution's weights: the same function, computed
    with one pass over the activations fewer."""
    if model.training:
        return model
    graph_module = fx.GraphModule(model, _ConvBnTracer().trace(model))
    modules = dict(graph_module.named_modules())
    for node in list(graph_module.graph.nodes):
        conv = node.args[0] if node.op == "call_module" and node.args else None
        if not (isinstance(modules.get(node.target), nn.BatchNorm2d) and isinstance(conv, fx.Node)
                and conv.op == "call_module" and isinstance(modules.get(conv.target), nn.Conv2d)
                and len(conv.users) == 1 and not modules[conv.target].training
                and not modules[node.target].training):
            continue
        fused = fuse_conv_bn_eval(modules[conv.target], modules[node.target])
        parent, _, name = conv.target.rpartition(".")
        setattr(graph_module.get_submodule(parent), name, fused)
        node.replace_all_uses_with(conv)
        graph_module.graph.erase_node(node)
    graph_module.graph.lint()
    graph_module.recompile()
    graph_module.delete_all_unused_submodules()
    return graph_module


def _channels_last(tensor: Any) -> Any:
    if isinstance(tensor, torch.Tensor) and tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def _check_cost(method: str, arguments: dict, data: Sequence[torch.Tensor]) -> None:
    """Refuse settings that would keep the server busy for hours, saying what to change."""
    if method == "Integrated Gradients" and int(arguments["n_steps"]) > MAX_IG_STEPS:
        raise RequestError(f"n_steps={arguments['n_steps']} is more than {MAX_IG_STEPS}; 25 to 200 is plenty", 422)
    if method not in ("Occlusion", "Feature Ablation"):
        return
    shape = tuple(data[0].shape[1:])
    if method == "Feature Ablation":
        count = int(np.prod(shape))
        hint = "Feature Ablation perturbs every input value separately; use Occlusion with a window instead"
    else:
        count = _occlusion_count(shape, arguments["sliding_window_shapes"], arguments["strides"])
        hint = "use a larger window or larger strides"
    if count > MAX_PERTURBATIONS:
        raise RequestError(
            f"{method} would run the model on {count:,} perturbed copies of each photo "
            f"(more than {MAX_PERTURBATIONS:,}): {hint}", 422)


def _occlusion_count(shape: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...]) -> int:
    if len(window) != len(shape) or len(strides) != len(shape):
        raise RequestError(
            f"Occlusion needs sliding_window_shapes and strides with {len(shape)} numbers each "
            f"(one per input dimension {' x '.join(map(str, shape))}), e.g. '3 15 15' and '3 8 8'", 422)
    if any(w < 1 or w > s for w, s in zip(window, shape)) or any(st < 1 for st in strides):
        raise RequestError(f"each window size must be between 1 and {shape}, each stride at least 1", 422)
    return int(np.prod([(s - w) // st + 1 for s, w, st in zip(shape, window, strides)]))


# --- faster pictures, same look ------------------------------------------------------------


class _FastImageFeature(ImageFeature):
    """ImageFeature that draws its two pictures as PNGs straight from the arrays.

    captum renders each through a 6x6-inch matplotlib figure (0.35 s per photo here, for
    two pictures); the page shows them 200 pixels high, so the 224-pixel arrays will do.
    Same pictures otherwise: the photo, and the absolute attribution summed over colour
    channels, top 2% clipped, in matplotlib's "Blues".
    """

    def visualize(self, attribution: torch.Tensor, data: torch.Tensor, contribution_frac: float) -> FeatureOutput:
        shown = self.visualization_transform(data) if self.visualization_transform else data
        image = shown.detach().squeeze().cpu().float()
        attr = attribution.detach().squeeze().cpu().float()
        if image.dim() != 3 or image.shape[0] != 3 or attr.shape != image.shape:
            return super().visualize(attribution, data, contribution_frac)  # grey or odd shapes
        image_hwc = image.permute(1, 2, 0).numpy()
        attr_hwc = attr.permute(1, 2, 0).numpy()
        return FeatureOutput(
            name=self.name,
            base=_png_base64(_photo_pixels(image_hwc)),
            modified=_png_base64(_heat_map_pixels(attr_hwc)),
            type=self.visualization_type(),
            contribution=contribution_frac,
        )


def _photo_pixels(image: np.ndarray) -> np.ndarray:
    # as captum.attr.visualization does: [0, 1] floats scale to 0-255, others are clipped
    if image.max() <= 1.0:
        return np.clip((image * 255).astype(int), 0, 255).astype(np.uint8)
    return (np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _heat_map_pixels(attr: np.ndarray) -> np.ndarray:
    if not np.any(attr):
        magnitude = np.zeros(attr.shape[:2])  # captum would fail dividing by zero
    else:
        magnitude = viz._normalize_attr(attr, "absolute_value", outlier_perc=2, reduction_axis=2)
    rgba = matplotlib.colormaps["Blues"](magnitude, bytes=True)
    return rgba[..., :3]


def _png_base64(pixels: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", compress_level=1)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _fast_feature(feature: Any) -> Any:
    if type(feature) is not ImageFeature:  # subclasses may draw differently: keep theirs
        return feature
    return _FastImageFeature(feature.name, feature.baseline_transforms, feature.input_transforms,
                             feature.visualization_transform)


# --- the explorer: Insights' visualizer, each example once ---------------------------------


class InsightsExplorer(AttributionVisualizer):
    """The state behind one Insights page: a copy of the user's ``AttributionVisualizer``
    (same models, classes, features, dataset and score function) that shows each example
    once per Fetch and serializes requests, so the page can't compute two things at once."""

    def __init__(self, visualizer: AttributionVisualizer) -> None:
        calc = visualizer.attribution_calculation
        super().__init__(
            models=list(visualizer.models),
            classes=list(visualizer.classes),
            features=[_fast_feature(f) for f in visualizer.features],
            dataset=visualizer.dataset,
            score_func=calc.score_func,
            use_label_for_attr=calc.use_label_for_attr,
        )
        self.attribution_calculation = _FastCalculation(
            self.models, self.classes, self.features, calc.score_func, calc.use_label_for_attr
        )
        self._recent: deque[Batch] = deque(maxlen=self._config.num_examples)
        self._lock = threading.Lock()

    # captum's visualize() cycles the dataset until it has 4 rows: 3 photos became 6 rows.
    # Here a Fetch takes batches until it has 4 rows or reaches the end of the dataset, and
    # the next Fetch continues from there (starting over after the end), like captum's paging.
    def visualize(self) -> list:
        rows: list = []
        pulled = 0
        while len(rows) < self._config.num_examples:
            batch = next(self._dataset_iter, None)
            if batch is None:
                if pulled:
                    break
                self._dataset_iter = self._restart()
                batch = next(self._dataset_iter, None)
                if batch is None:
                    break
            pulled += 1
            self._recent.append(batch)
            rows.extend(self._rows(batch))
        self._outputs = rows
        return [output for output, _ in rows]

    def _restart(self) -> Iterator[Batch]:
        fresh = iter(self.dataset)
        if fresh is not self.dataset:  # a list or DataLoader: read it again from the start
            return fresh
        return iter(list(self._recent))  # a one-shot generator: show its last batches again

    def _rows(self, batch: Batch) -> list:
        rows = []
        for inputs, args, label in _examples(batch):
            output = self._calculate_vis_output(inputs, args, label)
            if output is not None:
                rows.append((output, SampleCache(inputs, args, label)))
        return rows

    def fetch(self, settings: dict) -> list:
        """Answer the page's Fetch button: rows of predictions and attributions."""
        with self._lock:
            # captum keys these caches by the example tensors, new ones each Fetch: they only grow
            self.attribution_calculation.baseline_cache.clear()
            self.attribution_calculation.transformed_input_cache.clear()
            self._config = FilterConfig(
                attribution_method=settings["attribution_method"],
                attribution_arguments=settings["arguments"],
                prediction=settings["prediction"],
                classes=settings["classes"],
                num_examples=self._config.num_examples,
            )
            return captum_server.namedtuple_to_dict(self.visualize())

    def attribute(self, input_index: int, model_index: int, label_index: int) -> dict:
        """Answer a click on a predicted class: that row's attribution for the class."""
        with self._lock:
            if not 0 <= input_index < len(self._outputs):
                raise RequestError(f"inputIndex must be 0 to {len(self._outputs) - 1} (press Fetch first)")
            if not 0 <= model_index < len(self.models):
                raise RequestError(f"modelIndex must be 0 to {len(self.models) - 1}")
            if not 0 <= label_index < len(self.classes):
                raise RequestError(f"labelIndex must be 0 to {len(self.classes) - 1}")
            output = self._calculate_attribution_from_cache(input_index, model_index, label_index)
            return captum_server.namedtuple_to_dict(output)

    def get_insights_config(self) -> dict:
        config = super().get_insights_config()
        for method, values in ARGUMENT_DEFAULTS.items():
            for name, value in values.items():
                config["method_arguments"][method][name]["value"] = value
        return config


def _examples(batch: Batch) -> Iterator[tuple[tuple[torch.Tensor, ...], Any, Any]]:
    """One example at a time from a Batch, as captum's batching does (minus its warning
    that gradient-free inputs might be a mistake: here they are not)."""
    inputs = _format_tensor_into_tuples(batch.inputs)
    args = _format_additional_forward_args(batch.additional_args)
    labels = batch.labels
    for i in range(inputs[0].shape[0]):
        label = labels
        if isinstance(labels, list) or (isinstance(labels, torch.Tensor) and labels.numel() > 1):
            label = labels[i:i + 1]
        yield _tuple_splice_range(inputs, i, i + 1), _tuple_splice_range(args, i, i + 1), label


# --- the web app -------------------------------------------------------------------------


def create_app(visualizer: AttributionVisualizer) -> Flask:
    """Insights' web app for one visualizer: its front end plus ``/init``, ``/fetch`` and
    ``/attribute``. Bad requests get a 4xx answer with ``{"error": message}``."""
    explorer = visualizer if isinstance(visualizer, InsightsExplorer) else InsightsExplorer(visualizer)
    app = Flask(__name__, static_folder=str(FRONTEND / "static"), template_folder=str(FRONTEND))
    Compress(app)
    index_html = _index_html()

    @app.route("/")
    def index() -> Response:
        return Response(index_html, mimetype="text/html")

    @app.route("/favicon.ico")
    def favicon() -> tuple[str, int]:
        return "", 204  # browsers ask; Insights has none

    @app.route("/init")
    def init() -> Response:
        return jsonify(explorer.get_insights_config())

    @app.route("/fetch", methods=["POST"])
    def fetch() -> Response:
        return jsonify(explorer.fetch(_fetch_settings(_json_body(), explorer.classes)))

    @app.route("/attribute", methods=["POST"])
    def attribute() -> Response:
        body = _json_body()
        indices = [_index(body, key) for key in ("inputIndex", "modelIndex", "labelIndex")]
        return jsonify(explorer.attribute(*indices))

    @app.errorhandler(RequestError)
    def refuse(err: RequestError) -> tuple[Response, int]:
        return jsonify(error=str(err)), err.status

    @app.errorhandler(Exception)
    def failed(err: Exception) -> tuple[Response, int]:
        if getattr(err, "code", None):  # werkzeug's own HTTP errors: 404, 405...
            return jsonify(error=str(err)), err.code  # type: ignore[attr-defined]
        # captum's errors for settings it cannot use, e.g. Deep Lift on a model that reuses
        # its activation modules: the page shows the message, the server keeps serving
        app.logger.warning("Insights could not compute this: %r", err)
        return jsonify(error=f"{type(err).__name__}: {err}"), 422

    app.explorer = explorer  # type: ignore[attr-defined]
    return app


def _json_body() -> Any:
    # force=True: Colab's proxy drops the Content-Type header (captum does the same)
    body = request.get_json(force=True, silent=True)
    if body is None:
        raise RequestError("the request body must be JSON")
    if not isinstance(body, dict):
        raise RequestError("the request body must be a JSON object")
    return body


def _index(body: dict, key: str) -> int:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError(f"{key} must be an integer, got {value!r}")
    return value


def _fetch_settings(body: dict, classes: Sequence[str]) -> dict:
    """Check a Fetch request; return its settings with arguments converted for captum."""
    method = body.get("attribution_method")
    if method not in ATTRIBUTION_NAMES_TO_METHODS:
        raise RequestError(f"attribution_method must be one of {list(ATTRIBUTION_NAMES_TO_METHODS)}, got {method!r}")
    prediction = body.get("prediction", "all")
    if prediction not in PREDICTIONS:
        raise RequestError(f"prediction must be one of {list(PREDICTIONS)}, got {prediction!r}")
    wanted = body.get("classes", [])
    if not isinstance(wanted, list) or not all(isinstance(c, str) for c in wanted):
        raise RequestError("classes must be a list of class names")
    unknown = sorted(set(wanted) - set(classes))
    if unknown:
        raise RequestError(f"unknown class names: {unknown}")
    arguments = body.get("arguments", {})
    if not isinstance(arguments, dict):
        raise RequestError("arguments must be a JSON object")
    return {"attribution_method": method, "prediction": prediction, "classes": wanted,
            "arguments": _method_arguments(method, arguments)}


def _method_arguments(method: str, given: dict) -> dict:
    params = ATTRIBUTION_METHOD_CONFIG[method].params if method in ATTRIBUTION_METHOD_CONFIG else {}
    unknown = sorted(set(given) - set(params))
    if unknown:
        raise RequestError(f"{method} takes no argument {', '.join(unknown)}; it takes {sorted(params) or 'none'}")
    values = {name: config.value for name, config in params.items()}
    values.update(ARGUMENT_DEFAULTS.get(method, {}))
    values.update(given)
    return {name: _argument(name, values[name], params[name]) for name in params}


def _argument(name: str, value: Any, config: Any) -> Any:
    if isinstance(config, NumberConfig):
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise RequestError(f"{name} must be a whole number, got {value!r}") from None
        low, high = config.limit
        if (low is not None and number < low) or (high is not None and number > high):
            top = high if high is not None else "any size"
            raise RequestError(f"{name} must be between {low} and {top}, got {number}")
        return number
    if isinstance(config, StrEnumConfig):
        if value not in config.limit:
            raise RequestError(f"{name} must be one of {list(config.limit)}, got {value!r}")
        return value
    if isinstance(config, StrConfig) and name in ("sliding_window_shapes", "strides"):
        try:
            numbers = tuple(int(part) for part in str(value).replace(",", " ").split())
        except ValueError:
            numbers = ()
        if not numbers:
            raise RequestError(f"{name} must be whole numbers separated by spaces, e.g. '3 15 15', got {value!r}")
        return numbers
    return value


# Shown above the page when a request fails or nothing matches the filters: Insights' page
# itself would keep spinning, or go blank on an error answer.
_ERROR_BANNER = """<script>
(function () {
  var realFetch = window.fetch.bind(window);
  function say(text) {
    var box = document.getElementById("insights-message");
    if (!box) {
      box = document.createElement("div");
      box.id = "insights-message";
      box.setAttribute("role", "alert");
      box.style.cssText = "padding:8px 12px;margin:8px;border:1px solid #c66;background:#fee;font:14px sans-serif";
      document.body.insertBefore(box, document.body.firstChild);
    }
    box.textContent = text;
    box.hidden = !text;
  }
  window.fetch = function (url, options) {
    if (url !== "fetch" && url !== "attribute") return realFetch(url, options);
    return realFetch(url, options).then(function (response) {
      if (response.ok) {
        say("");
        if (url === "fetch") response.clone().json().then(function (rows) {
          if (!rows.length) say("No example matches these filters.");
        });
        return response;
      }
      return response.json().catch(function () { return {}; }).then(function (body) {
        say(body.error || ("The Insights server answered " + response.status));
        if (url === "fetch") return new Response("[]", {headers: {"Content-Type": "application/json"}});
        return new Promise(function () {});
      });
    }, function () {
      say("The Insights server is not reachable: was it stopped, or the kernel restarted?");
      return new Promise(function () {});
    });
  };
})();
</script>"""


def _index_html() -> str:
    html = (FRONTEND / "index.html").read_text(encoding="utf-8")
    head_end = html.index("</head>")
    return html[:head_end] + _ERROR_BANNER + html[head_end:]


# --- serving -----------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    # one log line per request would land in whichever notebook cell happens to be running
    def log_request(self, *args: Any, **kwargs: Any) -> None:
        pass


@dataclass
class InsightsServer:
    """A running Captum Insights page (05_captum_insights): ``url`` is what a browser opens
    (the IFrame's address), ``stop()`` closes the server and frees its port."""

    url: str
    local_url: str
    host: str
    port: int
    _server: BaseWSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and free the port; calling it again does nothing."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout)
        self._server.server_close()

    def __enter__(self) -> InsightsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<Captum Insights at {self.url} ({state})>"


def serve(
    visualizer: AttributionVisualizer, *, host: str = LOOPBACK, port: int = 0, proxy: bool | None = None
) -> InsightsServer:
    """Serve Insights for ``visualizer`` in a daemon thread (which never keeps a finished
    kernel or script alive) and return its handle. ``port=0`` picks a free port; ``host``
    stays loopback unless you ask, e.g. ``"0.0.0.0"`` to be reachable from other machines."""
    server = make_server(host, port, create_app(visualizer), threaded=True, request_handler=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name=f"captum-insights-{server.port}", daemon=True)
    thread.start()
    local_url = f"http://{_connectable(host)}:{server.port}/"
    return InsightsServer(_browser_url(local_url, server.port, proxy), local_url, host, server.port, server, thread)


def _connectable(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return LOOPBACK
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _browser_url(local_url: str, port: int, proxy: bool | None) -> str:
    """The local URL, or on JupyterHub/Binder the jupyter-server-proxy path to it."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "")
    if proxy is None:
        proxy = bool(prefix)
    if not proxy:
        return local_url
    prefix = prefix or "/"
    return f"{prefix if prefix.endswith('/') else prefix + '/'}proxy/{port}/"


def open_insights(
    visualizer: AttributionVisualizer,
    *,
    height: int = 820,
    host: str = LOOPBACK,
    port: int = 0,
    proxy: bool | None = None,
) -> InsightsServer:
    """Open Captum Insights for ``visualizer`` in the notebook cell; works in JupyterLab,
    Notebook 7, classic Notebook, VS Code and on JupyterHub/Binder (05_captum_insights).

    Returns at once; the page computes attributions when you press Fetch. ``proxy``: route
    through jupyter-server-proxy (default: when ``$JUPYTERHUB_SERVICE_PREFIX`` is set; say
    True for a Jupyter server on another machine, whose browser cannot reach the kernel's
    127.0.0.1).
    """
    handle = serve(visualizer, host=host, port=port, proxy=proxy)
    print(f"Captum Insights: {handle.url}  (pick a method, press Fetch; .stop() closes it)")
    try:
        from IPython import get_ipython
        from IPython.display import IFrame, display
    except ImportError:
        return handle
    if get_ipython() is not None:
        display(IFrame(handle.url, width="100%", height=height))
    return handle


# --- the walkthrough's visualizer, for the command line and the tests ----------------------


def photo_label(path: str | Path) -> int:
    """The ImageNet class a bundled or walkthrough photo shows, by file name."""
    name = Path(path).name
    labels = {**PHOTOS, **WALKTHROUGH_PHOTOS}
    if name not in labels:
        raise ValueError(f"no label known for {name!r}; known photos: {', '.join(labels)}")
    return labels[name]


def build_visualizer(model: nn.Module, paths: Sequence[str | Path] | None = None) -> AttributionVisualizer:
    """The visualizer 05_captum_insights builds: softmax scores, the 1000 class names, an
    ImageFeature with a zero baseline that normalizes its input, one Batch with labels."""
    paths = list(paths) if paths is not None else photo_paths()
    input_imgs = torch.stack([transform(load_image(p)) for p in paths])
    return AttributionVisualizer(
        models=[model],
        score_func=lambda o: torch.nn.functional.softmax(o, 1),
        classes=list(categories()),
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0], input_transforms=[transform_normalize])],
        dataset=[Batch(input_imgs, labels=[photo_label(p) for p in paths])],
    )


# --- the command line --------------------------------------------------------------------


def run_standalone(host: str = LOOPBACK, port: int = 0, model_name: str | None = None) -> int:
    """``python -m captum_helpers insights``: the notebook's explorer on the photos in img/,
    served until Ctrl-C (or SIGTERM), for a projector demo or a remote machine."""
    from .models import load_model

    model = load_model(model_name)
    paths = photo_paths()
    try:
        handle = serve(build_visualizer(model, paths), host=host, port=port, proxy=False)
    except OSError as err:
        print(f"Cannot listen on {host}:{port}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"Captum Insights on {len(paths)} photos: {handle.local_url}")
    if host in (LOOPBACK, "localhost", "::1"):
        print(f"From another machine: ssh -L {handle.port}:127.0.0.1:{handle.port} <this machine>, "
              f"then open http://127.0.0.1:{handle.port}/")
    else:
        print(f"Listening on {host}: anyone who can reach this machine on port {handle.port} can use it")
    print("Press Ctrl-C to stop.", flush=True)
    _wait_for_interrupt(handle)
    print("Stopped.", flush=True)
    return 0


def _wait_for_interrupt(handle: InsightsServer) -> None:
    stopping = threading.Event()
    if threading.current_thread() is threading.main_thread():
        # handled explicitly: a shell starting us in the background ignores SIGINT otherwise
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopping.set())
    try:
        while handle.running and not stopping.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
