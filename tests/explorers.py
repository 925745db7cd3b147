"""What the tests of Captum Insights share: tiny models and datasets that answer in
milliseconds, the photos of img/ with and without the walkthrough's three, and plain HTTP."""
from __future__ import annotations

import json
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from captum_explorer import AttributionVisualizer, Batch, ImageFeature
from captum_helpers import photo_paths

IG_FAST = {"attribution_method": "Integrated Gradients",
           "arguments": {"n_steps": 4, "method": "gausslegendre"},
           "prediction": "all", "classes": []}
OCCLUSION_COARSE = {"attribution_method": "Occlusion", "prediction": "all", "classes": [],
                    "arguments": {"sliding_window_shapes": "3 112 112", "strides": "3 112 112"}}
# 40 passes of 10 steps
SLOW_FETCH = {**IG_FAST, "arguments": {"n_steps": 400, "method": "gausslegendre"}}
# a newer Fetch, close(), an interrupt, a client leaving, Ctrl-C: the computation ends within this
CANCEL_S = 2.0


class TinyNet(nn.Sequential):
    """A 10-class image model that answers in milliseconds; ``delay`` seconds per forward
    pass make a Fetch long enough to cancel. ``calls`` counts forward passes."""

    def __init__(self, delay: float = 0.0) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(4, 10))
        self.delay, self.calls, self.images = delay, 0, 0
        self.eval()

    def forward(self, x):
        self.calls, self.images = self.calls + 1, self.images + len(x)
        time.sleep(self.delay)
        return super().forward(x)


def tiny_visualizer(dataset, model: nn.Module | None = None, classes=None) -> AttributionVisualizer:
    return AttributionVisualizer(
        models=[model or TinyNet()], score_func=lambda o: torch.softmax(o, 1),
        classes=list(classes or [f"class {i}" for i in range(10)]),
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0],
                               input_transforms=[])],
        dataset=dataset)


def slow_explorer(open_explorer) -> tuple[object, TinyNet]:
    """What ``open_explorer`` (the tests' fixture that opens a widget, or a server) opens on two
    tiny photos whose Fetch takes about 10 s (0.05 s per forward pass), with no budget; and the
    model, whose calls tell how far the Fetch is."""
    model = TinyNet(delay=0.05)
    return open_explorer(tiny_visualizer(tiny_batches(2), model=model), max_passes=10 ** 9), model


def tiny_batches(count: int, per_batch: int = 1) -> list[Batch]:
    """Batches of random 3x16x16 'photos'; example k has label k (mod 10)."""
    torch.manual_seed(1)
    return [Batch(torch.rand(per_batch, 3, 16, 16),
                  labels=[(b * per_batch + i) % 10 for i in range(per_batch)])
            for b in range(count)]


def labels_of(rows) -> list[int]:
    """The labels of a Fetch's rows (one row per example and model)."""
    return [row["actual"]["index"] for row in rows]


def img_photos(which: str, tmp_path_factory) -> list[Path]:
    """The photos in img/ (``which="img"``), or a copy with the walkthrough's three added: no test
    depends on how many photos img/ holds."""
    if which == "img":
        return photo_paths()
    return add_walkthrough_photos(tmp_path_factory.mktemp("img"))


def add_walkthrough_photos(folder: Path) -> list[Path]:
    """Copy img/ into ``folder`` with the walkthrough's three photo names added (what
    `python -m captum_course photos` adds; here copies of the bundled photos)."""
    from captum_helpers import PHOTOS, WALKTHROUGH_PHOTOS

    bundled = [p for p in photo_paths() if p.name in PHOTOS]
    for path in bundled:
        shutil.copy(path, folder)
    for name, source in zip(WALKTHROUGH_PHOTOS, bundled):
        Image.open(source).convert("RGB").save(folder / name)
    (folder / "SOURCES.md").write_text("test copy\n")
    return [folder / p.name for p in bundled] + [folder / name for name in WALKTHROUGH_PHOTOS]


def http(url: str, body=None, timeout: float = 120, method: str | None = None,
         **headers) -> tuple[int, object]:
    """(status, JSON or text) of a request straight to ``url`` (never through a proxy)."""
    data = None if body is None else (body if isinstance(body, bytes)
                                      else json.dumps(body).encode())
    headers = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            status, text = response.status, response.read()
    except urllib.error.HTTPError as err:
        status, text = err.code, err.read()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.decode(errors="replace")


def raw(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send bytes to 127.0.0.1:port and return the status line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the whole body went: read its answer
        answer = b""
        while b"\r\n" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
    return answer


def listening_ports(pid: int | str = "self") -> set[int]:
    """The TCP ports process ``pid`` listens on (Linux: /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/{pid}/net/{table}")
        for line in path.read_text().splitlines()[1:] if path.exists() else []:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN, this process's
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def wait_until_computing(model: TinyNet, calls: int = 5, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while model.calls < calls:
        assert time.monotonic() < deadline, "the Fetch did not start"
        time.sleep(0.02)


def seconds_until_idle(model: TinyNet, quiet: float = 0.3, timeout: float = 30) -> float:
    """Seconds until the model stops being called (no call for ``quiet`` seconds)."""
    start = time.monotonic()
    last_calls, last_change = model.calls, start
    while time.monotonic() - last_change < quiet:
        assert time.monotonic() - start < timeout, "the computation goes on"
        time.sleep(0.02)
        if model.calls != last_calls:
            last_calls, last_change = model.calls, time.monotonic()
    return last_change - start


# a script's or a kernel's own visualizer, 0.05 s per forward pass: make(prefix) names its classes
MAKE_VISUALIZER = """
import time, torch
from torch import nn
from captum_explorer import AttributionVisualizer, Batch, ImageFeature

calls = [0]  # forward passes of every model make() built

class Slow(nn.Module):
    def forward(self, x):
        calls[0] += 1
        time.sleep(0.05)
        return x

def make(prefix):
    model = nn.Sequential(nn.Conv2d(3, 2, 3), Slow(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2, 3)).eval()
    return AttributionVisualizer(models=[model], score_func=lambda o: torch.softmax(o, 1),
        classes=[prefix + str(i) for i in range(3)],
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0],
                               input_transforms=[])],
        dataset=[Batch(torch.rand(2, 3, 8, 8), labels=[0, 1])])
"""
