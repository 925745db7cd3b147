"""``python -m captum_course insights``: notebook 05's Captum Insights on the photos in img/,
without a notebook (for a projector, or a machine reached over ssh)."""
from __future__ import annotations

import getpass
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import torch
from captum.insights import AttributionVisualizer, Batch
from captum.insights.attr_vis.features import ImageFeature

from captum_helpers import categories, load_image, load_model, photo_label, photo_paths, transform, transform_normalize
from captum_helpers.insights import serve
from captum_helpers.webserver import LOOPBACK


def build_visualizer(model: torch.nn.Module, paths: list[str | Path] | None = None) -> AttributionVisualizer:
    """The visualizer notebook 05 builds in its cells: softmax scores, the 1000 class names, an
    ImageFeature with a zero baseline that normalizes its input, one Batch with labels."""
    paths = list(paths) if paths is not None else photo_paths()
    return AttributionVisualizer(
        models=[model], score_func=lambda o: torch.nn.functional.softmax(o, 1), classes=list(categories()),
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0], input_transforms=[transform_normalize])],
        dataset=[Batch(torch.stack([transform(load_image(p)) for p in paths]), labels=[photo_label(p) for p in paths])])


def run_standalone(host: str = LOOPBACK, port: int = 0, model_name: str | None = None) -> int:
    """``python -m captum_course insights``: notebook 05's explorer on the photos in img/, served
    until Ctrl-C or SIGTERM (either also cancels a running Fetch)."""
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
