"""Shared fixtures for the helper package's tests: a local HTTP server, served ResNet18
weights with a real torch hub hash, and the fallback model loaded once.

Nothing here reaches the internet, writes into img/ or touches ~/.cache/torch.
"""
import os

os.environ.setdefault("MPLBACKEND", "agg")  # before anything imports matplotlib.pyplot

import hashlib
import io
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
import torch
import torchvision

PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY")
SERVER_LIFETIME_S = 120.0  # the server shuts itself down after this even if teardown never runs
REQUEST_TIMEOUT_S = 5.0  # a stalled client connection is dropped after this
INSIGHTS_LIFETIME_S = 300.0  # an Insights server a test forgot stops after this


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving ``files`` (path -> bytes), counting requests."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = REQUEST_TIMEOUT_S

            def do_GET(self) -> None:
                path = self.path.split("?")[0].lstrip("/")
                server.hits[path] += 1
                body = server.files.get(path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.watchdog = threading.Timer(SERVER_LIFETIME_S, self.httpd.shutdown)
        self.watchdog.daemon = True

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path}"

    @property
    def total_hits(self) -> int:
        return sum(self.hits.values())

    def start(self) -> "LocalServer":
        self.thread.start()
        self.watchdog.start()
        return self

    def stop(self) -> None:
        self.watchdog.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=REQUEST_TIMEOUT_S)


@pytest.fixture
def no_proxy(monkeypatch):
    """Make urllib talk to 127.0.0.1 directly even where a proxy is configured."""
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def http_server(no_proxy):
    """A local HTTP server, started for the test and stopped after it; fill ``.files``."""
    server = LocalServer().start()
    yield server
    server.stop()
    assert not server.thread.is_alive(), "the local HTTP server did not stop"


@pytest.fixture
def closed_port_url(no_proxy):
    """A URL on 127.0.0.1 where nothing listens: the connection is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/resnet18-f37072fd.pth"


@pytest.fixture(scope="session")
def resnet18_file() -> tuple[bytes, str]:
    """A random-weight ResNet18 state dict as torch.save bytes, and a torch hub file name
    carrying the first 8 hex digits of its sha256 (what torch.hub checks)."""
    torch.manual_seed(0)
    buffer = io.BytesIO()
    torch.save(torchvision.models.resnet18().state_dict(), buffer)
    data = buffer.getvalue()
    return data, f"resnet18-{hashlib.sha256(data).hexdigest()[:8]}.pth"


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty TORCH_HOME, so the torch hub cache is the test's own; no model forced."""
    home = tmp_path / "torch-home"
    monkeypatch.setenv("TORCH_HOME", str(home))
    monkeypatch.delenv("CAPTUM_HELPERS_MODEL", raising=False)
    return home


@pytest.fixture
def served_resnet18(http_server, resnet18_file, torch_home, monkeypatch):
    """ResNet18 weights downloadable from the local server: RESNET18_URL points there."""
    data, name = resnet18_file
    http_server.files[name] = data
    monkeypatch.setattr("captum_helpers.models.RESNET18_URL", http_server.url(name))
    return http_server, name, torch_home / "hub" / "checkpoints" / name


@pytest.fixture(scope="session")
def lite0():
    """The real fallback model, EfficientNet-Lite0 with ImageNet weights, loaded once.

    Its parameters need no gradients (attributions only need the input's), which keeps
    Integrated Gradients fast on a laptop CPU.
    """
    from captum_helpers import load_model

    model = load_model("efficientnet_lite0", verbose=False)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture
def insights_server():
    """Start the command line's Captum Insights servers with ``insights_server(visualizer,
    **serve_kwargs)``: each stops by itself after INSIGHTS_LIFETIME_S, and all are stopped and
    checked after the test."""
    from captum_course.insights import serve

    handles = []

    def start(visualizer, **kwargs):
        handle = serve(visualizer, **kwargs)
        watchdog = threading.Timer(INSIGHTS_LIFETIME_S, handle.stop)
        watchdog.daemon = True
        watchdog.start()
        handles.append((handle, watchdog))
        return handle

    yield start
    for handle, watchdog in handles:
        watchdog.cancel()
        handle.stop()
        assert not handle.running, f"{handle} did not stop"


@pytest.fixture
def tiny_course(tmp_path):
    """notebooks/ with one notebook that reads ../data/answer.txt and one that fails."""
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "answer.txt").write_text("forty-two")
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# Reading the answer\n\nFrom a file beside the notebooks."),
        new_code_cell("print('Model: tiny (made by the test)')\n"
                      "open('../data/answer.txt').read().upper()"),
    ]), folder / "01_answer.ipynb")
    nbformat.write(new_notebook(cells=[
        new_markdown_cell("# Dividing by zero"),
        new_code_cell("1 / 0"),
        new_code_cell("print('never runs')"),
    ]), folder / "02_broken.ipynb")
    return folder
