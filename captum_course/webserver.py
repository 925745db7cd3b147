"""A web server on a loopback port that only its user can use (for the command line's explorer,
insights.py).

A port on 127.0.0.1 is open to every user of the machine (The Littlest JupyterHub puts a whole
class on one host), to their jupyter-server-proxy, and to web pages through DNS rebinding or a
cross-site POST. So, as Jupyter's own server does, it needs a secret: every URL starts with
``/<token>/``. It also answers only for an allowed Host, takes POSTs only as JSON from its own
origin and up to MAX_BODY bytes, serves at most THREADS connections and drops idle ones.
"""
from __future__ import annotations

import hmac
import select
import socket
import threading
from urllib.parse import urlsplit

from flask import Flask, Response, request
from werkzeug.exceptions import Forbidden, RequestEntityTooLarge, UnsupportedMediaType
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

LOOPBACK, LOOPBACK_NAMES = "127.0.0.1", {"127.0.0.1", "localhost", "::1"}
MAX_BODY = 1 << 20  # bytes; the explorer's own requests are under 1 KB
THREADS, IDLE_TIMEOUT_S = 16, 10.0  # far more than the explorer's one page needs


def protect(app: Flask, token: str, *, any_host: bool = False) -> Flask:
    """Serve ``app`` under ``/<token>/`` only, with the checks above. ``any_host``: the server
    listens on every network, and any Host may reach it."""
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY  # also bounds a body sent without a length

    @app.before_request
    def check() -> Response | None:
        name, origin = (urlsplit("//" + request.host).hostname or "",
                        urlsplit(request.headers.get("Origin", "")))
        if not (any_host or name in LOOPBACK_NAMES):
            raise Forbidden(f"Host {request.host!r} is not allowed: "
                            "open the address the command printed.")
        if not hmac.compare_digest(request.environ["private.token"], token.encode()):
            raise Forbidden("This Captum Insights server needs its token: "
                            "open the address the command printed.")
        if (request.method == "POST" and "Origin" in request.headers
                and origin.netloc.lower() != request.host.lower()):
            raise Forbidden(f"Requests from {origin.geturl()} are refused: "
                            "only Insights' own page may ask.")
        if request.method == "POST" and request.mimetype != "application/json":
            # a form's type: another page's POST
            raise UnsupportedMediaType("The request must be JSON.")
        if (request.content_length or 0) > MAX_BODY:
            raise RequestEntityTooLarge(f"The request is larger than {MAX_BODY:,} bytes.")
        if not request.environ["private.slash"]:  # /<token>: the page's relative URLs would lose it
            return Response(status=308, headers={"Location": f"{token}/"})
        return None

    def strip_token(environ: dict, start_response):  # /<token>/rest: the app sees /rest
        first, slash, rest = environ.get("PATH_INFO", "")[1:].partition("/")
        environ.update({"private.token": first.encode("latin-1"), "private.slash": slash,
                        "PATH_INFO": "/" + rest,
                        "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + "/" + first})
        return inner(environ, start_response)

    inner, app.wsgi_app = app.wsgi_app, strip_token
    return app


def json_body() -> object:
    """The request's JSON (None if it is not JSON); ``protect`` has checked its type."""
    if len(request.get_data()) >= MAX_BODY:  # a body sent without a length stops being read there
        raise RequestEntityTooLarge(f"The request is larger than {MAX_BODY:,} bytes.")
    return request.get_json(force=True, silent=True)


def client_gone() -> bool:
    """Has the client of the current request closed its connection?"""
    sock = request.environ.get("werkzeug.socket")  # werkzeug's server passes the socket
    try:
        return bool(sock and select.select([sock], [], [], 0)[0]
                    and not sock.recv(1, socket.MSG_PEEK))
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
