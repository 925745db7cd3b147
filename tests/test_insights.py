"""Captum Insights as the suite serves it (captum_helpers.insights, notebook 05), without a
browser: the Flask app through a test client, the server's lifecycle, a real kernel, and
the command line. The browser tests are in test_insights_browser.py."""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from captum.insights import AttributionVisualizer, Batch
from captum.insights.attr_vis.attribution_calculation import AttributionCalculation
from captum.insights.attr_vis.features import ImageFeature
from PIL import Image
from torch import nn

from captum_helpers import categories, photo_paths
from captum_helpers.insights import (
    MAX_PERTURBATIONS,
    InsightsExplorer,
    build_visualizer,
    create_app,
    open_insights,
    serve,
)

SERVER_LIFETIME_S = 120.0  # a server a test forgets stops by itself after this
IG_FAST = {"attribution_method": "Integrated Gradients", "arguments": {"n_steps": 4, "method": "gausslegendre"},
           "prediction": "all", "classes": []}
OCCLUSION_COARSE = {"attribution_method": "Occlusion", "prediction": "all", "classes": [],
                    "arguments": {"sliding_window_shapes": "3 56 56", "strides": "3 56 56",
                                  "perturbations_per_eval": 16}}
PHOTO_NAMES = [p.name for p in photo_paths()]


# --- fixtures ----------------------------------------------------------------------------


class TinyNet(nn.Sequential):
    """A 10-class image model that answers in milliseconds, for tests about the plumbing."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(4, 10))
        self.eval()


TINY_CLASSES = [f"class {i}" for i in range(10)]


def tiny_visualizer(dataset, model: nn.Module | None = None, classes=TINY_CLASSES) -> AttributionVisualizer:
    return AttributionVisualizer(
        models=[model or TinyNet()], score_func=lambda o: torch.softmax(o, 1), classes=list(classes),
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0], input_transforms=[])],
        dataset=dataset,
    )


def tiny_batches(count: int, per_batch: int = 1) -> list[Batch]:
    """Batches of random 3x16x16 'photos'; example k has label k (mod 10)."""
    torch.manual_seed(1)
    return [Batch(torch.rand(per_batch, 3, 16, 16), labels=[(b * per_batch + i) % 10 for i in range(per_batch)])
            for b in range(count)]


@pytest.fixture(scope="module")
def photo_client(lite0):
    """The suite's app for notebook 05's visualizer, on the real model and the bundled photos."""
    return create_app(build_visualizer(lite0)).test_client()


@pytest.fixture
def served():
    """Start servers with ``served(visualizer, **kwargs)``; all are stopped after the test."""
    handles = []

    def start(visualizer, **kwargs):
        handle = serve(visualizer, **kwargs)
        watchdog = threading.Timer(SERVER_LIFETIME_S, handle.stop)
        watchdog.daemon = True
        watchdog.start()
        handles.append((handle, watchdog))
        return handle

    yield start
    for handle, watchdog in handles:
        watchdog.cancel()
        handle.stop()
        assert not handle.running


def post(client, route: str, body) -> tuple[int, object]:
    data = body if isinstance(body, str) else json.dumps(body)
    response = client.post(route, data=data, content_type="application/json")
    return response.status_code, response.get_json(silent=True)


def http(url: str, body=None, timeout: float = 60) -> tuple[int, object]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def png(data: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def row_summary(rows) -> list[tuple[str, str]]:
    """(correct label, top predicted label) for each row the page would show."""
    return [(row[0]["actual"]["label"], row[0]["predicted"][0]["label"]) for row in rows]


# --- the app, through a test client ------------------------------------------------------


def test_init_lists_the_classes_and_methods(photo_client):
    response = photo_client.get("/init")
    assert response.status_code == 200
    config = response.get_json()
    assert config["classes"] == list(categories())
    assert {"Integrated Gradients", "Occlusion", "Saliency"} <= set(config["methods"])
    assert config["selected_method"] == "Integrated Gradients"
    # Occlusion starts from the walkthrough's window, not captum's empty (failing) strings
    occlusion = config["method_arguments"]["Occlusion"]
    assert occlusion["sliding_window_shapes"]["value"] == "3 15 15" and occlusion["strides"]["value"] == "3 8 8"


def test_index_is_insights_page_with_relative_assets(photo_client):
    html = photo_client.get("/").get_data(as_text=True)
    assert "<title>Captum Insights</title>" in html
    assert 'src="./static/js/' in html  # relative: works under /user/x/proxy/port/ too
    script = html.split('src="./static/js/')[1].split('"')[0]
    assert photo_client.get(f"/static/js/{script}").status_code == 200


@pytest.mark.parametrize("settings", [IG_FAST, OCCLUSION_COARSE], ids=["integrated-gradients", "occlusion"])
def test_fetch_returns_one_attribution_per_photo(photo_client, settings):
    status, rows = post(photo_client, "/fetch", settings)
    assert status == 200, rows
    # captum's own server repeats a 3-photo dataset to fill 4 rows: 6 rows, each photo twice
    assert len(rows) == len(PHOTO_NAMES) == 3
    assert row_summary(rows)[1:] == [("espresso", "espresso"), ("missile", "missile")]
    assert "cat" in row_summary(rows)[0][1]
    for row in rows:
        (feature,) = row[0]["feature_outputs"]
        photo, heat_map = png(feature["base"]), png(feature["modified"])
        assert photo.shape == heat_map.shape == (224, 224, 3)
        assert photo.std() > 20  # the photo itself, in its colours (not normalized values)
        assert heat_map.std() > 5  # a map with structure, not a blank square
        assert abs(feature["contribution"]) == pytest.approx(1.0)  # one feature: all of it


def test_fetch_class_filter_keeps_the_matching_photos(photo_client):
    status, rows = post(photo_client, "/fetch", {**IG_FAST, "classes": ["espresso"]})
    assert status == 200 and row_summary(rows) == [("espresso", "espresso")]
    # no photo is predicted a teapot: an empty page, not a server stuck in a loop (as captum's)
    status, rows = post(photo_client, "/fetch", {**IG_FAST, "classes": ["teapot"]})
    assert (status, rows) == (200, [])


def test_clicking_another_class_explains_that_class(photo_client):
    status, rows = post(photo_client, "/fetch", IG_FAST)
    runner_up = rows[2][0]["predicted"][1]["index"]  # the rocket's second guess
    status, output = post(photo_client, "/attribute", {"inputIndex": 2, "modelIndex": 0, "labelIndex": runner_up})
    assert status == 200
    assert output["active_index"] == runner_up
    assert output["feature_outputs"][0]["modified"] != rows[2][0]["feature_outputs"][0]["modified"]


@pytest.mark.parametrize("route", ["/fetch", "/attribute"])
@pytest.mark.parametrize("body", [
    "{not json", "", "[1, 2, 3]", "null", '"fetch"',
    '{"attribution_method": "Magic", "arguments": {}, "prediction": "all", "classes": []}',
    '{"attribution_method": "Integrated Gradients", "arguments": {"n_steps": "many"}}',
    '{"attribution_method": "Integrated Gradients", "arguments": {"n_stepz": 5}}',
    '{"attribution_method": "Integrated Gradients", "classes": "espresso"}',
    '{"attribution_method": "Occlusion", "arguments": {"strides": "3 eight 8"}}',
    '{"inputIndex": 99, "modelIndex": 0, "labelIndex": 3}',
    '{"inputIndex": "0", "modelIndex": 0, "labelIndex": 3}',
    '{"inputIndex": 0, "modelIndex": 5, "labelIndex": 3}',
    '{"inputIndex": 0, "modelIndex": 0, "labelIndex": 1000}',
], ids=lambda b: b[:30] or "empty")
def test_malformed_requests_get_a_4xx_and_the_server_keeps_serving(route, body):
    client = create_app(tiny_visualizer(tiny_batches(2))).test_client()
    assert post(client, "/fetch", IG_FAST)[0] == 200  # so /attribute has rows to refer to
    status, answer = post(client, route, body)
    assert 400 <= status < 500, answer
    assert answer["error"]  # a message the page shows
    assert client.get("/init").status_code == 200
    status, rows = post(client, "/fetch", IG_FAST)
    assert status == 200 and len(rows) == 2


def test_settings_that_would_run_for_hours_are_refused_with_a_reason(photo_client):
    ablation = {**IG_FAST, "attribution_method": "Feature Ablation", "arguments": {}}
    status, answer = post(photo_client, "/fetch", ablation)
    assert status == 422
    assert "150,528" in answer["error"] and "Occlusion" in answer["error"]
    tiny_window = {**OCCLUSION_COARSE, "arguments": {"sliding_window_shapes": "1 1 1", "strides": "1 1 1"}}
    status, answer = post(photo_client, "/fetch", tiny_window)
    assert status == 422 and f"{MAX_PERTURBATIONS:,}" in answer["error"]
    status, answer = post(photo_client, "/fetch", {**OCCLUSION_COARSE, "arguments": {"sliding_window_shapes": "15 15"}})
    assert status == 422 and "3 numbers" in answer["error"]


def test_each_example_once_and_paging_through_a_larger_dataset():
    client = create_app(tiny_visualizer(tiny_batches(5))).test_client()
    labels = lambda rows: [row[0]["actual"]["index"] for row in rows]  # noqa: E731
    assert labels(post(client, "/fetch", IG_FAST)[1]) == [0, 1, 2, 3]  # Insights shows 4 at a time
    assert labels(post(client, "/fetch", IG_FAST)[1]) == [4]  # the rest, without repeating any
    assert labels(post(client, "/fetch", IG_FAST)[1]) == [0, 1, 2, 3]  # then from the start again


def test_a_one_shot_generator_dataset_is_shown_again_after_its_end():
    client = create_app(tiny_visualizer(batch for batch in tiny_batches(2, per_batch=2))).test_client()
    labels = lambda rows: [row[0]["actual"]["index"] for row in rows]  # noqa: E731
    assert labels(post(client, "/fetch", IG_FAST)[1]) == [0, 1, 2, 3]
    assert labels(post(client, "/fetch", IG_FAST)[1]) == [0, 1, 2, 3]


@pytest.fixture(scope="module")
def fresh_lite0() -> nn.Module:
    """EfficientNet-Lite0 as load_model returns it: parameters that require gradients."""
    from captum_helpers import load_model

    return load_model("efficientnet_lite0", verbose=False)


@pytest.mark.parametrize("method", ["Integrated Gradients", "Saliency", "Guided Backprop", "Occlusion"])
def test_same_attributions_as_captum_and_the_users_model_untouched(fresh_lite0, method):
    """The suite's faster path (BatchNorm folded, channels_last, no parameter gradients)
    computes what captum's own calculation computes, and leaves the model as it was."""
    model = fresh_lite0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    explorer = InsightsExplorer(build_visualizer(model, photo_paths()[:1]))
    arguments = {"Integrated Gradients": {"n_steps": 8, "method": "gausslegendre"},
                 "Occlusion": {"sliding_window_shapes": (3, 56, 56), "strides": (3, 56, 56),
                               "perturbations_per_eval": 16}
                 }.get(method, {})
    score_func = explorer.attribution_calculation.score_func
    stock = AttributionCalculation([model], explorer.classes, explorer.features, score_func)
    _, baselines, inputs = stock.calculate_predicted_scores((explorer.dataset[0].inputs,), None, model)
    target = torch.tensor([967])
    expected = stock.calculate_attribution(baselines, inputs, None, target, method, dict(arguments), model)[0]
    got = explorer.attribution_calculation.calculate_attribution(
        baselines, inputs, None, target, method, dict(arguments), model)[0]
    assert got.shape == expected.shape
    assert float((got - expected).norm() / expected.norm()) < 0.02
    assert all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._backward_hooks for m in model.modules())


def test_a_model_changed_after_opening_is_the_one_explained():
    model = TinyNet()
    client = create_app(tiny_visualizer(tiny_batches(1), model=model)).test_client()
    first = post(client, "/fetch", IG_FAST)[1][0][0]["predicted"][0]["index"]
    with torch.no_grad():
        model[-1].bias[(first + 1) % 10] += 100.0  # say, a few steps of training
    assert post(client, "/fetch", IG_FAST)[1][0][0]["predicted"][0]["index"] == (first + 1) % 10


# --- the server: loopback, stop, two at once, the hub path -------------------------------


def test_serves_on_loopback_only_and_stop_frees_the_port(served):
    handle = served(tiny_visualizer(tiny_batches(1)))
    assert handle._server.socket.getsockname()[0] == "127.0.0.1"
    assert handle.url == f"http://127.0.0.1:{handle.port}/"
    assert http(handle.url + "init")[0] == 200
    handle.stop()
    assert not handle.running
    with pytest.raises(urllib.error.URLError):
        http(handle.url + "init", timeout=5)
    again = served(tiny_visualizer(tiny_batches(1)), port=handle.port)  # the port is free again
    assert http(again.url + "init")[0] == 200
    handle.stop()  # a second stop() is harmless


def test_two_explorers_in_one_process_each_serve_their_own(served):
    first = served(tiny_visualizer(tiny_batches(1)))
    second = served(tiny_visualizer(tiny_batches(3), classes=[f"other {i}" for i in range(10)]))
    assert first.port != second.port
    assert http(first.url + "init")[1]["classes"][0] == "class 0"
    assert http(second.url + "init")[1]["classes"][0] == "other 0"
    assert len(http(first.url + "fetch", IG_FAST)[1]) == 1
    assert len(http(second.url + "fetch", IG_FAST)[1]) == 3
    first.stop()
    assert len(http(second.url + "fetch", IG_FAST)[1]) == 3


def test_a_malformed_request_over_http_leaves_the_server_serving(served):
    handle = served(tiny_visualizer(tiny_batches(1)))
    assert http(handle.url + "fetch", b"{oops")[0] == 400
    assert http(handle.url + "attribute", b"{oops")[0] == 400
    assert http(handle.url + "fetch", IG_FAST)[0] == 200


def test_on_jupyterhub_the_url_goes_through_jupyter_server_proxy(served, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    handle = served(tiny_visualizer(tiny_batches(1)))
    assert handle.url == f"/user/alice/proxy/{handle.port}/"
    assert handle.local_url == f"http://127.0.0.1:{handle.port}/"
    assert handle._server.socket.getsockname()[0] == "127.0.0.1"  # the proxy reaches it locally
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX")
    assert served(tiny_visualizer(tiny_batches(1)), proxy=True).url.startswith("/proxy/")


def test_open_insights_outside_a_notebook_prints_the_url(capsys, served, monkeypatch):
    monkeypatch.setattr("captum_helpers.insights.serve", served)
    handle = open_insights(tiny_visualizer(tiny_batches(1)))
    assert handle.url in capsys.readouterr().out
    assert handle.running


# --- a real kernel ---------------------------------------------------------------------------

MAKE_VISUALIZER = """
import torch
from torch import nn
from captum.insights import AttributionVisualizer, Batch
from captum.insights.attr_vis.features import ImageFeature
from captum_helpers import open_insights

def make(prefix):
    model = nn.Sequential(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)).eval()
    return AttributionVisualizer(models=[model], score_func=lambda o: torch.softmax(o, 1),
        classes=[prefix + str(i) for i in range(3)],
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0], input_transforms=[])],
        dataset=[Batch(torch.rand(2, 3, 8, 8), labels=[0, 1])])
"""
KERNEL_CODE = MAKE_VISUALIZER + """
first = open_insights(make("a"))
second = open_insights(make("b"))
"""


def test_in_a_kernel_two_explorers_open_and_shutdown_is_not_held(tmp_path):
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), "MPLBACKEND": "agg"}
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
    manager, client = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        started = time.monotonic()
        reply, outputs = execute(client, KERNEL_CODE)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert time.monotonic() - started < 60  # the cell returns; no server blocks it
        iframes = [o["data"]["text/html"] for o in outputs if "text/html" in o.get("data", {})]
        assert len(iframes) == 2 and all("<iframe" in html for html in iframes)
        urls = [html.split('src="')[1].split('"')[0] for html in iframes]
        assert [http(url + "init")[1]["classes"][0] for url in urls] == ["a0", "b0"]
        assert all(len(http(url + "fetch", IG_FAST)[1]) == 2 for url in urls)
        execute(client, "first.stop()")
        assert http(urls[1] + "init")[0] == 200
        manager.request_shutdown()
        deadline = time.monotonic() + 15
        while manager.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not manager.is_alive(), "the kernel did not exit: the Insights server holds it open"
        with pytest.raises(urllib.error.URLError):
            http(urls[1] + "init", timeout=5)
    finally:
        client.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
        manager.cleanup_resources()


def execute(client, code: str, timeout: float = 120) -> tuple[dict, list[dict]]:
    msg_id = client.execute(code)
    outputs = []
    while True:
        message = client.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] in ("display_data", "execute_result"):
            outputs.append(message["content"])
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
    return client.get_shell_msg(timeout=timeout), outputs


def test_a_script_that_opened_insights_still_exits():
    script = MAKE_VISUALIZER + textwrap.dedent("""
        from captum_helpers.insights import serve
        handle = serve(make("a"))
        print(handle.url, flush=True)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("http://127.0.0.1:")


# --- the command line --------------------------------------------------------------------


def test_command_line_serves_the_photos_until_ctrl_c(tmp_path):
    env = {**os.environ, "CAPTUM_HELPERS_MODEL": "efficientnet_lite0"}
    process = subprocess.Popen([sys.executable, "-m", "captum_helpers", "insights", "--port", "0"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "Ctrl-C" in line:
                break
        text = "".join(lines)
        assert "Ctrl-C" in text, text
        url = next(word for word in text.split() if word.startswith("http://127.0.0.1:"))
        assert f"on {len(PHOTO_NAMES)} photos" in text
        assert http(url + "init")[1]["classes"] == list(categories())
        rows = http(url + "fetch", IG_FAST, timeout=120)[1]
        assert [row[0]["actual"]["label"] for row in rows] == ["tabby", "espresso", "missile"]
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        assert "Stopped." in process.stdout.read()
        with pytest.raises(urllib.error.URLError):
            http(url + "init", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def test_command_line_options_choose_host_and_port(tmp_path):
    from browser import free_port

    port = free_port()
    env = {**os.environ, "CAPTUM_HELPERS_MODEL": "efficientnet_lite0"}
    process = subprocess.Popen([sys.executable, "-m", "captum_helpers", "insights", "--host", "127.0.0.1",
                                "--port", str(port)], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if "Ctrl-C" in line:
                break
        assert http(f"http://127.0.0.1:{port}/init")[0] == 200
        process.terminate()
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
