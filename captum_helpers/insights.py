"""Open Captum Insights from a notebook cell (05_captum_insights).

captum 0.8.0's ``render()`` shows a classic-notebook widget that JupyterLab 4, Notebook 7 and
VS Code cannot display, and its server serves one global visualizer to whoever reaches its
port. Here the kernel serves Insights' own page on a loopback port, shown in an IFrame directly
or through jupyter-server-proxy or Colab's proxy. Unlike captum's server it answers only under a
secret path ``/<token>/``, for an allowed Host, POSTs only as JSON from its own page; it gives
each Fetch a work budget, shows each example once, and cancels work that became useless.
"""
from __future__ import annotations

import atexit
import os
import secrets
import sys
import threading
import warnings
import weakref
from pathlib import Path

import captum.insights.attr_vis as attr_vis
import torch
from captum.attr._utils.batching import _batched_generator
from captum.insights import AttributionVisualizer
from captum.insights.attr_vis.app import OutputScore, SampleCache
from captum.insights.attr_vis.config import ATTRIBUTION_METHOD_CONFIG, ATTRIBUTION_NAMES_TO_METHODS, NumberConfig
from captum.insights.attr_vis.server import namedtuple_to_dict
from flask import Flask, Response, jsonify
from werkzeug.exceptions import BadRequest, Conflict, HTTPException, UnprocessableEntity

from .speed import INTEGRATED_GRADIENTS_BATCH, passes_per_example
from .webserver import LOOPBACK, Server, client_gone, json_body, jupyter_base_url, protect

FRONTEND = Path(attr_vis.__file__).resolve().parent / "frontend" / "build"
ERRORS_JS = Path(__file__).with_name("insights_errors.js")  # shows the server's messages on the page
CANCEL_WAIT_S = 2.0  # stop() waits this long for a running Fetch to end
# Model passes one Fetch may make (a backward pass counts as two), summed over the photos it
# shows; `python bench/insights_fetch.py --budget` times the largest allowed Fetch (aim: ~30 s;
# 12-14 s for 3 photos with ResNet18 on a 2-core Intel Xeon).
MAX_PASSES = 800
# captum's Occlusion defaults are empty strings (it fails). A 7 x 7 grid of 32-pixel squares is
# 50 passes per photo; the walkthrough's window 15, strides 8 make 28 x 28 + 1 = 785.
ARGUMENT_DEFAULTS = {"Occlusion": {"sliding_window_shapes": "3 32 32", "strides": "3 32 32",
                                   "perturbations_per_eval": 16}, "Feature Ablation": {"perturbations_per_eval": 16}}
# captum's _batched_generator warns for each example that its input needs no gradient: it need not
warnings.filterwarnings("ignore", message="It looks like that the attribution for a gradient-based")


class Cancelled(Conflict):
    description = "Cancelled: a newer request replaced this one, or the server is stopping."


class InsightsExplorer(AttributionVisualizer):
    """One Insights page's state: the user's visualizer, one computation at a time, each
    example shown once per Fetch within a work budget."""

    def __init__(self, visualizer: AttributionVisualizer, max_passes: int = MAX_PASSES) -> None:
        calc = visualizer.attribution_calculation
        super().__init__(visualizer.models, visualizer.classes, visualizer.features, visualizer.dataset,
                         calc.score_func, calc.use_label_for_attr)
        self.max_passes, self.closed, self._examples, self._next = max_passes, False, None, 0
        self._latest, self._worker, self._busy, self._state = 0, None, threading.Lock(), threading.Lock()
        self._should_stop = lambda: False

    # captum's visualize() goes round the dataset until it has 4 rows: 3 photos showed as 6 rows,
    # and with no example passing the filters it never returns. Here a Fetch goes on from where
    # the last one stopped up to the dataset's end, and checks the budget before attributing.
    def visualize(self) -> list:
        if self._examples is None:  # kept, as captum's cycle() keeps the batches; split as captum does
            self._examples = [example for batch in self.dataset for example in _batched_generator(
                batch.inputs, batch.additional_args, batch.labels, 1)]
        picked = []
        for turn in range(len(self._examples)):
            if len(picked) == self._config.num_examples or (turn and self._next == 0):
                break
            example, self._next = self._examples[self._next], (self._next + 1) % len(self._examples)
            if self._keep(*example):
                picked.append(example)
        self._check_budget(len(picked), picked[0][0] if picked else ())
        self._outputs = [(out, SampleCache(*ex)) for ex in picked for out in [self._calculate_vis_output(*ex)] if out]
        return [out for out, _ in self._outputs]

    def _keep(self, inputs: tuple, args: object, label: torch.Tensor | None) -> bool:
        if label is None or len(label) == 0:
            return False  # as captum's _calculate_vis_output: a row needs its label
        actual = OutputScore(100, int(label[0]), self.classes[int(label[0])])
        with torch.no_grad():  # captum's own filter, private: there is no public one
            return any(self._should_keep_prediction(
                self.attribution_calculation.calculate_predicted_scores(inputs, args, model)[0], actual)
                for model in self.models)

    def _check_budget(self, rows: int, inputs: tuple) -> None:
        method, arguments = self._config.attribution_method, self._config.attribution_arguments
        try:
            each = len(self.models) * sum(passes_per_example(method, arguments, tuple(t.shape[1:])) for t in inputs)
        except ValueError as err:
            raise BadRequest(f"{method}: {err}") from None
        if each * rows > self.max_passes:
            lower = {"Integrated Gradients": "lower n_steps", "Feature Ablation": "use Occlusion with a window",
                     "Occlusion": "use larger strides or window (3 32 32 with strides 3 32 32 makes 50)"}
            raise UnprocessableEntity(
                f"{method} would run the model {each:,} times per photo, {each * rows:,} for {rows}: more than "
                f"the {self.max_passes:,} one Fetch may take (15 s or so on 2 cores). To lower it, "
                f"{lower.get(method, 'choose another method')}, or filter by class to fewer photos.")

    def get_insights_config(self) -> dict:
        config = super().get_insights_config()
        for method, values in ARGUMENT_DEFAULTS.items():
            for name, value in values.items():
                config["method_arguments"][method][name]["value"] = value
        return config

    def fetch(self, settings: dict, gone=lambda: False) -> list:
        """Answer the page's Fetch button: one row per example shown."""
        def work() -> list:
            calc = self.attribution_calculation  # its caches are keyed by tensors, new each pass
            calc.baseline_cache.clear(), calc.transformed_input_cache.clear()
            self._update_config(settings)  # as captum's own server configures a Fetch
            return namedtuple_to_dict(self.visualize())
        return self.run(work, gone)

    def attribute(self, input_index: int, model_index: int, label_index: int, gone=lambda: False) -> dict:
        """Answer a click on a predicted class: that row's attribution for the class."""
        def work() -> dict:
            self._check_budget(1, self._outputs[input_index][1].inputs)
            return namedtuple_to_dict(self._calculate_attribution_from_cache(input_index, model_index, label_index))
        return self.run(work, gone)

    def run(self, work, gone=lambda: False):
        """Run ``work()`` as the only computation. A later call, ``close()`` or ``gone()``
        turning true stops it when the model runs its next layer (``_hook``)."""
        with self._state:
            self._latest = ticket = self._latest + 1
        with self._busy:
            self._should_stop = lambda: self.closed or self._latest != ticket or gone()
            if self._should_stop():
                raise Cancelled()
            self._worker = threading.get_ident()
            hooks = [m.register_forward_pre_hook(self._hook) for model in self.models for m in model.modules()]
            try:
                return work()
            finally:
                self._worker = None
                for hook in hooks:
                    hook.remove()

    def _hook(self, module: torch.nn.Module, args: tuple) -> None:
        if threading.get_ident() == self._worker and self._should_stop():
            raise Cancelled()  # the notebook's own calls of the model run in other threads

    def close(self, timeout: float = CANCEL_WAIT_S) -> bool:
        """Cancel the running computation; True once none runs."""
        with self._state:
            self.closed, self._latest = True, self._latest + 1
        if not self._busy.acquire(timeout=timeout):
            return False
        self._busy.release()
        return True


def _settings(body: object) -> dict:
    """A Fetch request as captum's settings. The page builds it, but anyone with the token can
    send another: checked with captum's own converters and limits, so a bad one gets a 400."""
    method = body.get("attribution_method") if isinstance(body, dict) else None
    if method not in ATTRIBUTION_NAMES_TO_METHODS:
        raise BadRequest(f"attribution_method must be one of {list(ATTRIBUTION_NAMES_TO_METHODS)}")
    config = ATTRIBUTION_METHOD_CONFIG.get(method)
    params, post = (config.params, config.post_process or {}) if config else ({}, {})
    given, classes = body.get("arguments") or {}, body.get("classes", [])
    if not isinstance(given, dict) or set(given) - set(params) or not isinstance(classes, list):
        raise BadRequest(f"{method} takes the arguments {sorted(params) or 'none'}; classes is a list of names")
    arguments = {**{k: c.value for k, c in params.items()}, **ARGUMENT_DEFAULTS.get(method, {}), **given}
    try:
        arguments.update({k: post.get(k, int if isinstance(c, NumberConfig) else str)(arguments[k]) for k, c in params.items()})
    except (TypeError, ValueError) as err:
        raise BadRequest(f"{method}: {err}") from None
    for name, cfg in params.items():  # captum's own limits, e.g. at most 100 perturbations per pass
        low, high = (cfg.limit[0] or 1, cfg.limit[1] or 10 ** 6) if isinstance(cfg, NumberConfig) else (0, 0)
        if low and not low <= arguments[name] <= high:
            raise BadRequest(f"{method}: {name} must be from {low} to {high}")
    if method == "Integrated Gradients":  # not on the page. captum's default runs all steps in one
        arguments["internal_batch_size"] = INTEGRATED_GRADIENTS_BATCH  # batch: memory grows with n_steps
    return {"attribution_method": method, "arguments": arguments, "prediction": body.get("prediction", "all"),
            "classes": classes}


def create_app(visualizer: AttributionVisualizer, token: str, *, max_passes: int = MAX_PASSES,
               proxy_context: str | None = None, colab: bool = False, any_host: bool = False) -> Flask:
    """Insights' app for one visualizer: the page, ``init``, ``fetch`` and ``attribute`` as in
    captum's server, under ``/<token>/`` with the checks of ``webserver.protect``."""
    explorer = InsightsExplorer(visualizer, max_passes)
    app = Flask(__name__, static_folder=str(FRONTEND / "static"))
    script = f"<script>{ERRORS_JS.read_text(encoding='utf-8')}</script></head>"
    html = (FRONTEND / "index.html").read_text(encoding="utf-8").replace("</head>", script)

    @app.route("/")
    def index() -> Response:
        return Response(html, mimetype="text/html")

    @app.route("/init")
    def init() -> Response:
        return jsonify(explorer.get_insights_config())

    @app.route("/fetch", methods=["POST"])
    def fetch() -> Response:
        return jsonify(explorer.fetch(_settings(json_body()), client_gone))

    @app.route("/attribute", methods=["POST"])
    def attribute() -> Response:
        body = json_body()
        indices = [body.get(k) if isinstance(body, dict) else None for k in ("inputIndex", "modelIndex", "labelIndex")]
        return jsonify(explorer.attribute(*indices, client_gone))

    @app.errorhandler(Exception)  # the page shows the message; the server keeps serving
    def failed(err: Exception) -> tuple[Response, int]:
        if isinstance(err, HTTPException):
            return jsonify(error=err.description), err.code
        app.logger.warning("Insights could not compute this: %r", err)  # e.g. DeepLift on a model it can't take
        return jsonify(error=f"{type(err).__name__}: {err}"), 500

    app.explorer, app.token = explorer, token  # type: ignore[attr-defined]
    return protect(app, token, any_host=any_host, proxy_context=proxy_context, colab=colab)


class InsightsServer:
    """A running Insights page: ``url`` is what the browser opens (it carries the token),
    ``stop()`` cancels a running Fetch and frees the port."""

    def __init__(self, url: str, local_url: str, server: Server, explorer: InsightsExplorer, token: str) -> None:
        self.url, self.local_url, self.token, self.explorer, self._server = url, local_url, token, explorer, server
        self.host, self.port = server.host, server.port
        _RUNNING.add(self)

    @property
    def running(self) -> bool:
        return self._server.running

    def stop(self) -> None:
        """Stop serving within about CANCEL_WAIT_S, a running Fetch included; again: nothing."""
        self.explorer.close()
        self._server.stop()

    def __repr__(self) -> str:
        return f"<Captum Insights at {self.url} ({'running' if self.running else 'stopped'})>"


_RUNNING: weakref.WeakSet[InsightsServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for handle in list(_RUNNING):  # torch still computing in a daemon thread at exit aborts the process,
        handle.explorer.close(timeout=30)  # so wait for the cancel to land even on a busy machine
        handle.stop()


def serve(visualizer: AttributionVisualizer, *, host: str = LOOPBACK, port: int = 0, proxy: bool | None = None,
          colab: bool = False, max_passes: int = MAX_PASSES) -> InsightsServer:
    """Serve Insights for ``visualizer`` in a daemon thread; ``port=0`` picks a free port and
    ``host`` stays loopback unless you ask (``"0.0.0.0"``: every network)."""
    token, server = secrets.token_urlsafe(24), Server(host, port)
    base = jupyter_base_url() if proxy or (proxy is None and os.environ.get("JUPYTERHUB_SERVICE_PREFIX")) else None
    app = create_app(visualizer, token, max_passes=max_passes, colab=colab, any_host=host in ("", "0.0.0.0", "::"),
                     proxy_context=f"{base}proxy/{server.port}" if base else None)
    shown = {"": LOOPBACK, "0.0.0.0": LOOPBACK, "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    local_url = f"http://{shown}:{server.port}/{token}/"
    handle = InsightsServer(f"{base}proxy/{server.port}/{token}/" if base else local_url, local_url, server,
                            app.explorer, token)
    server.start(app)
    return handle


def open_insights(visualizer: AttributionVisualizer, *, height: int = 820, host: str = LOOPBACK, port: int = 0,
                  proxy: bool | None = None, max_passes: int = MAX_PASSES) -> InsightsServer:
    """Open Captum Insights for ``visualizer`` in the notebook cell; returns at once. ``proxy``:
    through jupyter-server-proxy (default: on JupyterHub; True for a Jupyter server on another
    machine). ``max_passes``: the work one Fetch may do."""
    from IPython import get_ipython
    from IPython.display import IFrame, display

    colab = "google.colab" in sys.modules and get_ipython() is not None
    handle = serve(visualizer, host=host, port=port, proxy=proxy and not colab, colab=colab, max_passes=max_passes)
    if colab:  # the browser cannot reach the Colab kernel's 127.0.0.1; Colab's proxy can
        from google.colab import output

        print("Captum Insights, below: pick a method, press Fetch (.stop() closes it)")
        output.serve_kernel_port_as_iframe(handle.port, path=f"/{handle.token}/", height=height)
        return handle
    print(f"Captum Insights: {handle.url}  (pick a method, press Fetch; .stop() closes it)")
    if get_ipython() is not None:
        display(IFrame(handle.url, width="100%", height=height))
    return handle
