"""``python -m captum_course insights``: notebook 05's Captum Insights on the photos in img/,
without a notebook (for a projector, or a machine reached over ssh).

It serves the explorer's page (``captum_explorer/explorer.js``, the notebook widget's front end)
from a loopback port. It answers only under a secret path ``/<token>/``, for an allowed Host,
and takes POSTs only as JSON from its own page (``webserver.protect``). Behind the page is the
same explorer as the notebook's widget (``captum_explorer.InsightsExplorer``): a work budget per
Fetch, each example once, and work that became useless cancelled.
"""
from __future__ import annotations

import atexit
import getpass
import os
import secrets
import signal
import socket
import sys
import threading
import weakref
from pathlib import Path

import torch
from flask import Flask, Response, jsonify
from werkzeug.exceptions import BadRequest, Conflict, HTTPException, UnprocessableEntity

from captum_explorer import (MAX_PASSES, AttributionVisualizer, Batch, Cancelled, ImageFeature,
                             InsightsError, InsightsExplorer, Refused, check_settings)
from captum_explorer.widget import FRONT_END
from captum_helpers import (categories, load_image, load_model, photo_label, photo_paths,
                            transform, transform_normalize)

from .webserver import LOOPBACK, Server, client_gone, json_body, protect

PAGE = """<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8"><title>Captum Insights</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="margin:16px"><div id="explorer"></div>
<script type="module">
import {{ mountServer }} from "./explorer.js";
mountServer(document.getElementById("explorer"), "./", "{language}");
</script></body></html>
"""


def build_visualizer(model: torch.nn.Module,
                     paths: list[str | Path] | None = None) -> AttributionVisualizer:
    """The visualizer notebook 05 builds in its cells: softmax scores, the 1000 class names, an
    ImageFeature with a zero baseline that normalizes its input, one Batch with labels."""
    paths = list(paths) if paths is not None else photo_paths()
    return AttributionVisualizer(
        models=[model], score_func=lambda o: torch.nn.functional.softmax(o, 1),
        classes=list(categories()),
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0],
                               input_transforms=[transform_normalize])],
        dataset=[Batch(torch.stack([transform(load_image(p)) for p in paths]),
                       labels=[photo_label(p) for p in paths])])


def create_app(visualizer: AttributionVisualizer, token: str, *, max_passes: int = MAX_PASSES,
               any_host: bool = False) -> Flask:
    """The explorer's app for one visualizer: the page and its script, ``init``, ``fetch`` and
    ``attribute``, under ``/<token>/`` with the checks of ``webserver.protect``."""
    explorer = InsightsExplorer(visualizer, max_passes)
    app = Flask(__name__, static_folder=None)
    lang = explorer.language
    html = PAGE.format(lang="zh-CN" if lang == "zh" else "en", language=lang)
    script = FRONT_END.read_text(encoding="utf-8")

    @app.route("/")
    def index() -> Response:
        return Response(html, mimetype="text/html")

    @app.route("/explorer.js")
    def front_end() -> Response:
        return Response(script, mimetype="text/javascript")

    @app.route("/init")
    def init() -> Response:
        return jsonify(explorer.config())

    @app.route("/fetch", methods=["POST"])
    def fetch() -> Response:
        settings = check_settings(json_body(), explorer.language)
        return jsonify(explorer.fetch(settings, gone=client_gone))

    @app.route("/attribute", methods=["POST"])
    def attribute() -> Response:
        body = json_body()
        indices = [body.get(k) if isinstance(body, dict) else None
                   for k in ("inputIndex", "modelIndex", "labelIndex")]
        return jsonify(explorer.attribute(*indices, gone=client_gone))

    @app.errorhandler(Exception)  # the page shows the message; the server keeps serving
    def failed(err: Exception) -> tuple[Response, int]:
        if isinstance(err, InsightsError):
            code = {Refused: UnprocessableEntity.code, Cancelled: Conflict.code}.get(
                type(err), BadRequest.code)
            return jsonify(error=str(err)), code
        if isinstance(err, HTTPException):
            return jsonify(error=err.description), err.code
        # e.g. DeepLift on a model it can't take
        app.logger.warning("Insights could not compute this: %r", err)
        return jsonify(error=f"{type(err).__name__}: {err}"), 500

    app.explorer, app.token = explorer, token  # type: ignore[attr-defined]
    return protect(app, token, any_host=any_host)


class InsightsServer:
    """A running Insights page: ``url`` is what the browser opens (it carries the token),
    ``stop()`` cancels a running Fetch and frees the port."""

    def __init__(self, url: str, server: Server, explorer: InsightsExplorer, token: str) -> None:
        self.url, self.token, self.explorer, self._server = url, token, explorer, server
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
    # torch still computing in a daemon thread at exit aborts the process, so wait for the
    # cancel to land even on a busy machine
    for handle in list(_RUNNING):
        handle.explorer.close(timeout=30)
        handle.stop()


def serve(visualizer: AttributionVisualizer, *, host: str = LOOPBACK, port: int = 0,
          max_passes: int = MAX_PASSES) -> InsightsServer:
    """Serve the explorer for ``visualizer`` in a daemon thread; ``port=0`` picks a free port and
    ``host`` stays loopback unless you ask (``"0.0.0.0"``: every network)."""
    token, server = secrets.token_urlsafe(24), Server(host, port)
    app = create_app(visualizer, token, max_passes=max_passes,
                     any_host=host in ("", "0.0.0.0", "::"))
    shown = {"": LOOPBACK, "0.0.0.0": LOOPBACK, "::": "[::1]"}.get(
        host, f"[{host}]" if ":" in host else host)
    handle = InsightsServer(f"http://{shown}:{server.port}/{token}/", server, app.explorer, token)
    server.start(app)
    return handle


def run_standalone(host: str = LOOPBACK, port: int = 0, model_name: str | None = None) -> int:
    """``python -m captum_course insights``: notebook 05's explorer on the photos in img/, served
    until Ctrl-C or SIGTERM (either also cancels a running Fetch)."""
    paths = photo_paths()
    try:
        handle = serve(build_visualizer(load_model(model_name), paths), host=host, port=port)
    except OSError as err:
        print(f"Cannot listen on {host}:{port}: {err.strerror or err}", file=sys.stderr)
        return 2
    print(f"Captum Insights on {len(paths)} photos: {handle.url}")
    if host not in (LOOPBACK, "localhost", "::1"):
        print(f"Listening on {host}: whoever can reach port {handle.port} "
              "and knows this address can use it")
    elif sys.platform == "linux" and not (os.environ.get("DISPLAY")
                                          or os.environ.get("WAYLAND_DISPLAY")):
        print(f"No display here. From your laptop: ssh -L {handle.port}:127.0.0.1:{handle.port} "
              f"{getpass.getuser()}@{socket.gethostname()}  "
              f"then open http://127.0.0.1:{handle.port}/{handle.token}/")
    print("Press Ctrl-C to stop.", flush=True)
    stopping = threading.Event()
    # set here: a shell's background job ignores SIGINT
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    while handle.running and not stopping.wait(0.2):
        pass
    handle.stop()
    print("Stopped.", flush=True)
    return 0
