"""A web server on a loopback port that only the notebook's user can use (for insights.py).

A port on 127.0.0.1 is open to every user of the machine (The Littlest JupyterHub puts a whole
class on one host), to their jupyter-server-proxy, and to web pages through DNS rebinding or a
cross-site POST. So, as Jupyter's own server does, it needs a secret: every URL starts with
``/<token>/``. It also answers only for an allowed Host, takes POSTs only as JSON from its own
origin and up to MAX_BODY bytes, serves at most THREADS connections and drops idle ones.
"""
from __future__ import annotations

import hmac
import os
import select
import socket
import threading
from urllib.parse import urlsplit

from flask import Flask, Response, request
from werkzeug.exceptions import Forbidden, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

LOOPBACK, LOOPBACK_NAMES = "127.0.0.1", {"127.0.0.1", "localhost", "::1"}
COLAB_DOMAINS = ("-colab.googleusercontent.com", ".colab.dev")  # where Colab's proxy serves a kernel port
MAX_BODY = 1 << 20  # bytes; Insights' own requests are under 1 KB
THREADS, IDLE_TIMEOUT_S = 16, 10.0  # an Insights page opens about 6 connections


def protect(app: Flask, token: str, *, any_host: bool = False, proxy_context: str | None = None,
            colab: bool = False) -> Flask:
    """Serve ``app`` under ``/<token>/`` only, with the checks above. ``any_host``: the server
    listens on every network; ``proxy_context``: the path jupyter-server-proxy forwards from;
    ``colab``: Colab's proxy, which sends its own Host and may drop a POST's type."""
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # also bounds a body sent without a length

    @app.before_request
    def check() -> Response | None:
        name, origin = urlsplit("//" + request.host).hostname or "", urlsplit(request.headers.get("Origin", ""))
        colab_ok = lambda n: colab and (n or "").endswith(COLAB_DOMAINS)  # noqa: E731
        if not (any_host or name in LOOPBACK_NAMES or colab_ok(name)
                or (proxy_context and request.headers.get("X-Forwarded-Context") == proxy_context)):
            raise Forbidden(f"Host {request.host!r} is not allowed: open the address open_insights showed.")
        if not hmac.compare_digest(request.environ["private.token"], token.encode()):
            raise Forbidden("This Captum Insights server needs its token: open the address open_insights showed.")
        if request.method == "POST" and "Origin" in request.headers and (
                origin.netloc.lower() != request.host.lower() and not colab_ok(origin.hostname)):
            raise Forbidden(f"Requests from {origin.geturl()} are refused: only Insights' own page may ask.")
        if request.method == "POST" and request.mimetype != "application/json" and (request.mimetype or not colab):
            raise UnsupportedMediaType("The request must be JSON.")  # a form's type: another page's POST
        if (request.content_length or 0) > MAX_BODY:
            raise RequestEntityTooLarge(f"The request is larger than {MAX_BODY:,} bytes.")
        if not request.environ["private.slash"]:  # /<token>: the page's relative URLs would lose it
            return Response(status=308, headers={"Location": f"{token}/"})
        return None

    def strip_token(environ: dict, start_response):  # /<token>/rest: the app sees /rest
        first, slash, rest = environ.get("PATH_INFO", "")[1:].partition("/")
        environ.update({"private.token": first.encode("latin-1"), "private.slash": slash, "PATH_INFO": "/" + rest,
                        "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + "/" + first})
        return inner(environ, start_response)

    inner, app.wsgi_app = app.wsgi_app, strip_token
    return app


def jupyter_base_url() -> str:
    """Where jupyter-server-proxy serves this machine's ports (``{base}proxy/{port}/``): JupyterHub's
    prefix, else the base URL of the Jupyter server that started this kernel (its parent
    process), else of the only one running, else "/"."""
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if not prefix:
        from jupyter_server.serverapp import list_running_servers

        servers = list(list_running_servers())
        ours = [s for s in servers if s.get("pid") == os.getppid()] or (servers if len(servers) == 1 else [])
        prefix = ours[0].get("base_url", "/") if ours else "/"
    return prefix if prefix.endswith("/") else prefix + "/"


def json_body() -> object:
    """The request's JSON (None if it is not JSON); ``protect`` has checked its type."""
    if len(request.get_data()) >= MAX_BODY:  # a body sent without a length stops being read there
        raise RequestEntityTooLarge(f"The request is larger than {MAX_BODY:,} bytes.")
    return request.get_json(force=True, silent=True)


def client_gone() -> bool:
    """Has the client of the current request closed its connection?"""
    sock = request.environ.get("werkzeug.socket")  # werkzeug's server passes the socket
    try:
        return bool(sock and select.select([sock], [], [], 0)[0] and not sock.recv(1, socket.MSG_PEEK))
    except OSError:
        return True


class _Handler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_S  # socketserver sets it on each connection: idle clients are dropped

    def log(self, *args: object) -> None:
        pass  # a line per request or timed-out client would land in whichever notebook cell runs


class Server(ThreadedWSGIServer):
    """werkzeug's threaded server, run in a daemon thread by ``start(app)``, serving at most
    THREADS connections at once (more get 503). ``stop()`` frees the port; again: nothing."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port, None, handler=_Handler)
        self._slots = threading.BoundedSemaphore(THREADS)
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"captum-insights-{self.port}", daemon=True)

    def start(self, app: Flask) -> None:
        self.app = app
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        if self._thread.is_alive():
            self.shutdown()
            self._thread.join()
        self.server_close()

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
