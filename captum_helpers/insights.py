"""Open Captum Insights from a notebook cell (introduced in 05_captum_insights).

captum's ``render()`` is a classic-notebook widget that JupyterLab 4, Notebook 7 and VS Code
cannot show, so the kernel serves Insights' own page (built into captum 0.8.0) on a loopback
port, shown in an IFrame: directly, through jupyter-server-proxy, or through Colab's proxy. A
loopback port is shared by all users of a machine, so the server answers only under its secret
path ``/<token>/``, for an allowed Host, and POSTs only as JSON from its own page. A Fetch has
a work budget; a newer request, a client that left, ``stop()`` or the process ending cancels it.
"""
from __future__ import annotations

import atexit
import getpass
import hmac
import math
import os
import secrets
import select
import signal
import socket
import sys
import threading
import warnings
import weakref
from pathlib import Path
from urllib.parse import urlsplit

import captum.insights.attr_vis as attr_vis
import torch
from captum.attr._utils.batching import _batched_generator
from captum.insights import AttributionVisualizer, Batch
from captum.insights.attr_vis.app import OutputScore, SampleCache
from captum.insights.attr_vis.config import ATTRIBUTION_METHOD_CONFIG, ATTRIBUTION_NAMES_TO_METHODS, NumberConfig
from captum.insights.attr_vis.features import ImageFeature
from captum.insights.attr_vis.server import namedtuple_to_dict
from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import (BadRequest, Conflict, Forbidden, HTTPException, RequestEntityTooLarge,
                                 UnprocessableEntity, UnsupportedMediaType)
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from .assets import PHOTOS, WALKTHROUGH_PHOTOS, photo_paths
from .images import load_image, transform, transform_normalize
from .models import categories
from .speed import INTEGRATED_GRADIENTS_BATCH, occlusion_windows

FRONTEND = Path(attr_vis.__file__).resolve().parent / "frontend" / "build"
LOOPBACK, LOOPBACK_NAMES = "127.0.0.1", {"127.0.0.1", "localhost", "::1"}
COLAB_PROXY_DOMAINS = ("-colab.googleusercontent.com", ".colab.dev")  # where Colab serves a kernel port
MAX_BODY = 1 << 20  # bytes; the page's own requests are under 1 KB
THREADS, IDLE_TIMEOUT_S, CANCEL_WAIT_S = 16, 10.0, 2.0  # one page opens about 6 connections
# Model passes one Fetch may make (a backward pass counts as two), summed over the photos it
# shows; `python bench/insights_fetch.py --budget` times the largest allowed Fetch (aim: ~30 s).
MAX_PASSES = 800
# captum's Occlusion defaults are empty strings (it fails). A 7 x 7 grid of 32-pixel squares is
# 50 passes per photo; the walkthrough's window 15, strides 8 make 28 x 28 + 1 = 785.
ARGUMENT_DEFAULTS = {"Occlusion": {"sliding_window_shapes": "3 32 32", "strides": "3 32 32",
                                   "perturbations_per_eval": 16}, "Feature Ablation": {"perturbations_per_eval": 16}}
# captum's _batched_generator warns for each example that its input needs no gradient: it need not
warnings.filterwarnings("ignore", message="It looks like that the attribution for a gradient-based")


class Cancelled(Conflict):
    description = "Cancelled: a newer request replaced this one, or the server is stopping."


def passes_per_example(method: str, arguments: dict, shape: tuple[int, ...]) -> int:
    """Model passes one example costs with these settings, counted as captum loops."""
    if method == "Integrated Gradients":
        return 3 * arguments["n_steps"]  # n_steps scaled copies, forward and backward
    if method == "Occlusion":  # each window position (ceil((size - window) / stride) + 1), and the photo
        return occlusion_windows(shape, arguments["sliding_window_shapes"], arguments["strides"]) + 1
    if method == "Feature Ablation":
        return math.prod(shape) + 1  # without a feature mask each input value is ablated alone
    return 6 if method == "DeepLift" else 3  # DeepLift runs input and baseline together


class InsightsExplorer(AttributionVisualizer):
    """The state behind one Insights page: the user's visualizer showing each example once
    per Fetch, one computation at a time, which a newer request cancels."""

    def __init__(self, visualizer: AttributionVisualizer, max_passes: int = MAX_PASSES) -> None:
        calc = visualizer.attribution_calculation
        super().__init__(visualizer.models, visualizer.classes, visualizer.features, visualizer.dataset,
                         calc.score_func, calc.use_label_for_attr)
        self.max_passes, self.closed, self._latest, self._worker = max_passes, False, 0, None
        self._stream, self._busy, self._state = self._examples(), threading.Lock(), threading.Lock()
        self._should_stop = lambda: False

    # captum's visualize() loops until it has 4 rows: 3 photos showed as 6 rows, and with no
    # example passing the filters it never returns. Here a Fetch predicts and filters up to 4
    # examples, going round the dataset at most once from where the last Fetch stopped, checks
    # the budget, then attributes them.
    def visualize(self) -> list:
        picked, seen = [], 0
        while len(picked) < self._config.num_examples:
            example = next(self._stream, False)
            if example is False or (example is None and seen):
                break
            seen += example is not None
            if example is not None and self._keep(*example):
                picked.append(example)
        self._check_budget(len(picked), picked[0][0] if picked else ())
        self._outputs = [(out, SampleCache(*ex)) for ex in picked for out in [self._calculate_vis_output(*ex)] if out]
        return [out for out, _ in self._outputs]

    def _examples(self):
        """Examples one at a time, None after each pass; a one-shot iterator's last batches
        come round again, as in captum. Split as captum's _get_outputs does (no public API)."""
        recent, source = [], self.dataset
        while True:
            count = 0
            for batch in source:
                if source is self.dataset:
                    recent = (recent + [batch])[-self._config.num_examples:]
                for example in _batched_generator(batch.inputs, batch.additional_args, batch.labels, 1):
                    count += 1
                    yield example
            if not count:
                return
            yield None
            source = recent if iter(self.dataset) is self.dataset else self.dataset

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
                f"the {self.max_passes:,} one Fetch may take (about 30 s on 2 cores). To lower it, "
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
    """The page's Fetch request as captum's settings, converted by captum's own converters."""
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
        if isinstance(cfg, NumberConfig) and not (cfg.limit[0] or 1) <= arguments[name] <= (cfg.limit[1] or 10 ** 6):
            raise BadRequest(f"{method}: {name} must be from {cfg.limit[0] or 1} to {cfg.limit[1] or 10 ** 6}")
    if method == "Integrated Gradients":
        # not on the page; captum's default runs all steps at once: memory grows with n_steps, and
        # a cancel waits for the one backward pass. 10 steps cost no more time (bench/README.md).
        arguments["internal_batch_size"] = INTEGRATED_GRADIENTS_BATCH
    return {"attribution_method": method, "arguments": arguments, "prediction": body.get("prediction", "all"),
            "classes": classes}


# Insights' page spins forever when a request fails: show the server's message above it instead.
_ERROR_BANNER = """<script>(function () {
  var realFetch = window.fetch.bind(window), box = document.createElement("div");
  box.setAttribute("role", "alert"); box.hidden = true;
  box.style.cssText = "padding:8px 12px;margin:8px;border:1px solid #c66;background:#fee;font:14px sans-serif";
  function say(text) { if (!box.parentNode) document.body.prepend(box); box.textContent = text; box.hidden = !text; }
  window.fetch = function (url, options) {
    if (url !== "fetch" && url !== "attribute") return realFetch(url, options);
    return realFetch(url, options).then(function (response) {
      if (response.ok) return response.clone().json().then(function (rows) {
        say(url === "fetch" && !rows.length ? "No example matches these filters." : ""); return response; });
      return response.json().catch(function () { return {}; }).then(function (body) {
        say(body.error || "The Insights server answered " + response.status);
        return url === "fetch" ? new Response("[]") : new Promise(function () {}); });
    }, function () { say("The Insights server is not reachable: was it stopped?"); return new Promise(function () {}); });
  };
})();</script>"""


def create_app(visualizer: AttributionVisualizer, token: str, *, max_passes: int = MAX_PASSES,
               proxy_context: str | None = None, colab: bool = False, any_host: bool = False) -> Flask:
    """Insights' app for one visualizer under ``/<token>/``: the page, ``init``, ``fetch`` and
    ``attribute`` as in captum's server (which serves one global visualizer, unchecked)."""
    explorer = InsightsExplorer(visualizer, max_passes)
    app = Flask(__name__, static_folder=str(FRONTEND / "static"))
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # also bounds a body sent without a length
    html = (FRONTEND / "index.html").read_text(encoding="utf-8").replace("</head>", _ERROR_BANNER + "</head>")

    def gone() -> bool:  # has the client closed its connection? (werkzeug's server passes the socket)
        sock = request.environ.get("werkzeug.socket")
        try:
            return bool(sock and select.select([sock], [], [], 0)[0] and not sock.recv(1, socket.MSG_PEEK))
        except OSError:
            return True

    @app.route("/")
    def index() -> Response:
        return Response(html, mimetype="text/html")

    @app.route("/init")
    def init() -> Response:
        return jsonify(explorer.get_insights_config())

    @app.route("/fetch", methods=["POST"])
    def fetch() -> Response:
        return jsonify(explorer.fetch(_settings(_body()), gone))

    @app.route("/attribute", methods=["POST"])
    def attribute() -> Response:
        body = _body()
        indices = [body.get(k) if isinstance(body, dict) else None for k in ("inputIndex", "modelIndex", "labelIndex")]
        return jsonify(explorer.attribute(*indices, gone))

    @app.errorhandler(Exception)  # the page shows the message; the server keeps serving
    def failed(err: Exception) -> tuple[Response, int]:
        if isinstance(err, HTTPException):
            return jsonify(error=err.description), err.code
        app.logger.warning("Insights could not compute this: %r", err)  # e.g. DeepLift on a model it can't take
        return jsonify(error=f"{type(err).__name__}: {err}"), 500

    @app.before_request
    def check() -> Response | None:
        """Every request: its Host, the token, and for a POST its origin, type and size."""
        name, origin = urlsplit("//" + request.host).hostname or "", urlsplit(request.headers.get("Origin", ""))
        colab_ok = lambda n: colab and (n or "").endswith(COLAB_PROXY_DOMAINS)  # noqa: E731
        if not (any_host or name in LOOPBACK_NAMES or colab_ok(name)
                or (proxy_context and request.headers.get("X-Forwarded-Context") == proxy_context)):
            raise Forbidden(f"Host {request.host!r} is not allowed: open the address open_insights showed.")
        if not hmac.compare_digest(request.environ["insights.token"], token.encode()):
            raise Forbidden("This Captum Insights server needs its token: open the address open_insights showed.")
        if request.method == "POST" and "Origin" in request.headers and (
                origin.netloc.lower() != request.host.lower() and not colab_ok(origin.hostname)):
            raise Forbidden(f"Requests from {origin.geturl()} are refused: only Insights' own page may ask.")
        if request.method == "POST" and request.mimetype != "application/json" and (request.mimetype or not colab):
            raise UnsupportedMediaType("The request must be JSON.")  # Colab's proxy may drop the type (captum)
        if (request.content_length or 0) > MAX_BODY:
            raise RequestEntityTooLarge(f"The request is larger than {MAX_BODY:,} bytes.")
        if not request.environ["insights.slash"]:  # /<token>: the page's relative URLs would lose it
            return Response(status=308, headers={"Location": f"{token}/"})
        return None

    def strip_token(environ: dict, start_response):  # /<token>/rest: the app sees /rest
        first, slash, rest = environ.get("PATH_INFO", "")[1:].partition("/")
        environ.update({"insights.token": first.encode("latin-1"), "insights.slash": slash, "PATH_INFO": "/" + rest,
                        "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + "/" + first})
        return inner(environ, start_response)

    inner, app.wsgi_app = app.wsgi_app, strip_token
    app.explorer, app.token = explorer, token  # type: ignore[attr-defined]
    return app


def _body() -> object:
    if len(request.get_data()) >= MAX_BODY:  # a body sent without a length stops being read there
        raise RequestEntityTooLarge(f"The request is larger than {MAX_BODY:,} bytes.")
    return request.get_json(force=True, silent=True)  # force: check() has seen the type


class _Handler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_S  # socketserver sets it on each connection: idle clients are dropped

    def log(self, *args: object) -> None:
        pass  # a line per request or timed-out client would land in whichever notebook cell runs


class _Server(ThreadedWSGIServer):
    """werkzeug's threaded server, serving at most THREADS connections at once (more get 503)."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port, None, handler=_Handler)
        self._slots = threading.BoundedSemaphore(THREADS)

    def process_request(self, request, client_address) -> None:  # type: ignore[override]
        if self._slots.acquire(blocking=False):
            return super().process_request(request, client_address)
        try:
            request.sendall(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        finally:
            self.shutdown_request(request)

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[override]
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class InsightsServer:
    """A running Insights page (05_captum_insights): ``url`` is what the browser opens (it
    carries the token), ``stop()`` cancels a running Fetch and frees the port."""

    def __init__(self, url: str, local_url: str, server: _Server, explorer: InsightsExplorer, token: str) -> None:
        self.url, self.local_url, self.token, self.explorer, self._server = url, local_url, token, explorer, server
        self.host, self.port = server.host, server.port
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"captum-insights-{self.port}", daemon=True)
        self._thread.start()
        _RUNNING.add(self)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Stop serving within about CANCEL_WAIT_S, a running Fetch included; again: nothing."""
        self.explorer.close()
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()

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
    token, server = secrets.token_urlsafe(24), _Server(host, port)
    base = _jupyter_base_url() if proxy or (proxy is None and os.environ.get("JUPYTERHUB_SERVICE_PREFIX")) else None
    server.app = create_app(visualizer, token, max_passes=max_passes, colab=colab, any_host=host in ("", "0.0.0.0", "::"),
                            proxy_context=f"{base}proxy/{server.port}" if base else None)
    shown = {"": LOOPBACK, "0.0.0.0": LOOPBACK, "::": "[::1]"}.get(host, f"[{host}]" if ":" in host else host)
    local_url = f"http://{shown}:{server.port}/{token}/"
    url = f"{base}proxy/{server.port}/{token}/" if base else local_url
    return InsightsServer(url, local_url, server, server.app.explorer, token)


def _jupyter_base_url() -> str:
    """JupyterHub's prefix, else the base URL of the Jupyter server that started this kernel
    (its parent process), else of the only one running, else "/"."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if not prefix:
        from jupyter_server.serverapp import list_running_servers

        servers = list(list_running_servers())
        ours = [s for s in servers if s.get("pid") == os.getppid()] or (servers if len(servers) == 1 else [])
        prefix = ours[0].get("base_url", "/") if ours else "/"
    return prefix if prefix.endswith("/") else prefix + "/"


def open_insights(visualizer: AttributionVisualizer, *, height: int = 820, host: str = LOOPBACK, port: int = 0,
                  proxy: bool | None = None, max_passes: int = MAX_PASSES) -> InsightsServer:
    """Open Captum Insights for ``visualizer`` in the notebook cell (05_captum_insights); returns
    at once. ``proxy``: through jupyter-server-proxy (default: on JupyterHub; True for a Jupyter
    server on another machine). ``max_passes``: the work one Fetch may do."""
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


def photo_label(path: str | Path) -> int:
    """The ImageNet class a bundled or walkthrough photo shows, by file name."""
    labels = {**PHOTOS, **WALKTHROUGH_PHOTOS}
    if Path(path).name not in labels:
        raise ValueError(f"no label known for {Path(path).name!r}; known photos: {', '.join(labels)}")
    return labels[Path(path).name]


def build_visualizer(model: torch.nn.Module, paths: list[str | Path] | None = None) -> AttributionVisualizer:
    """The visualizer 05_captum_insights builds: softmax scores, the 1000 class names, an
    ImageFeature with a zero baseline that normalizes its input, one Batch with labels."""
    paths = list(paths) if paths is not None else photo_paths()
    return AttributionVisualizer(
        models=[model], score_func=lambda o: torch.nn.functional.softmax(o, 1), classes=list(categories()),
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0], input_transforms=[transform_normalize])],
        dataset=[Batch(torch.stack([transform(load_image(p)) for p in paths]), labels=[photo_label(p) for p in paths])])


def run_standalone(host: str = LOOPBACK, port: int = 0, model_name: str | None = None) -> int:
    """``python -m captum_course insights``: notebook 05's explorer on the photos in img/, served
    until Ctrl-C or SIGTERM (either also cancels a running Fetch)."""
    from .models import load_model

    paths = photo_paths()
    try:
        handle = serve(build_visualizer(load_model(model_name), paths), host=host, port=port, proxy=False)
    except OSError as err:
        print(f"Cannot listen on {host}:{port}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"Captum Insights on {len(paths)} photos: {handle.local_url}")
    if host not in (LOOPBACK, "localhost", "::1"):
        print(f"Listening on {host}: whoever can reach port {handle.port} and knows this address can use it")
    elif sys.platform == "linux" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        print(f"No display here. From your laptop: ssh -L {handle.port}:127.0.0.1:{handle.port} "
              f"{getpass.getuser()}@{socket.gethostname()}  then open http://127.0.0.1:{handle.port}/{handle.token}/")
    print("Press Ctrl-C to stop.", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # set here: a shell's background job ignores SIGINT
        signal.signal(signum, lambda *_: stopping.set())
    while handle.running and not stopping.wait(0.2):
        pass
    handle.stop()
    print("Stopped.", flush=True)
    return 0
