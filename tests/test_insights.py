"""Captum Insights as the course serves it (captum_helpers.insights, notebook 05), without a
browser: the app through a test client, the server over HTTP, what an attacker on the same
machine can do, cancellation, a real kernel and the command line. The browser tests are in
test_insights_browser.py; the shared server fixture ``insights_server`` is in conftest.py."""
from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import types
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from captum.insights import AttributionVisualizer, Batch
from captum.insights.attr_vis.features import ImageFeature
from PIL import Image
from torch import nn

from captum_course.insights import build_visualizer
from captum_helpers import categories, photo_label, photo_paths
from captum_helpers.insights import create_app, open_insights, passes_per_example
from captum_helpers.webserver import MAX_BODY, THREADS

ROOT = Path(__file__).resolve().parent.parent
IG_FAST = {"attribution_method": "Integrated Gradients", "arguments": {"n_steps": 4, "method": "gausslegendre"},
           "prediction": "all", "classes": []}
OCCLUSION_COARSE = {"attribution_method": "Occlusion", "prediction": "all", "classes": [],
                    "arguments": {"sliding_window_shapes": "3 112 112", "strides": "3 112 112"}}
CANCEL_S = 2.0  # stop(), a newer Fetch, a client leaving, Ctrl-C: the computation ends within this


# --- small models and datasets -----------------------------------------------------------


class TinyNet(nn.Sequential):
    """A 10-class image model that answers in milliseconds; ``delay`` seconds per forward
    pass make a Fetch long enough to cancel. ``calls`` counts forward passes."""

    def __init__(self, delay: float = 0.0) -> None:
        torch.manual_seed(0)
        super().__init__(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))
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
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0], input_transforms=[])],
        dataset=dataset)


def tiny_batches(count: int, per_batch: int = 1) -> list[Batch]:
    """Batches of random 3x16x16 'photos'; example k has label k (mod 10)."""
    torch.manual_seed(1)
    return [Batch(torch.rand(per_batch, 3, 16, 16), labels=[(b * per_batch + i) % 10 for i in range(per_batch)])
            for b in range(count)]


def labels_of(rows) -> list[int]:
    return [row[0]["actual"]["index"] for row in rows]


@pytest.fixture
def client():
    """``client(visualizer, **create_app_kwargs)``: a Flask test client and the app's token."""
    def make(visualizer, **kwargs):
        app = create_app(visualizer, "the-token", **kwargs)
        return app.test_client(), app
    return make


def post(test_client, route: str, body, **headers) -> tuple[int, object]:
    data = body if isinstance(body, str) else json.dumps(body)
    response = test_client.post(f"/the-token/{route}", data=data, content_type="application/json", headers=headers)
    return response.status_code, response.get_json(silent=True)


def http(url: str, body=None, timeout: float = 120, method: str | None = None, **headers) -> tuple[int, object]:
    """(status, JSON or text) of a request straight to ``url`` (never through a proxy)."""
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
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


# --- the photos of img/, however many there are ---------------------------------------------


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


@pytest.fixture(scope="module", params=["img", "img-with-walkthrough-photos"])
def photos(request, tmp_path_factory) -> list[Path]:
    """The photos in img/, and a copy with the walkthrough's three added: no test depends on
    how many photos img/ holds."""
    if request.param == "img":
        return photo_paths()
    return add_walkthrough_photos(tmp_path_factory.mktemp("img"))


@pytest.fixture(scope="module")
def photo_app(lite0, photos):
    return create_app(build_visualizer(lite0, photos), "the-token")


def test_the_page_and_its_settings_need_the_token(photo_app):
    web = photo_app.test_client()
    html = web.get("/the-token/").get_data(as_text=True)
    assert "<title>Captum Insights</title>" in html and 'src="./static/js/' in html  # relative: keeps the token
    script = html.split('src="./static/js/')[1].split('"')[0]
    assert web.get(f"/the-token/static/js/{script}").status_code == 200
    assert web.get("/the-token").headers["Location"] == "the-token/"  # relative, so it works behind a proxy
    config = web.get("/the-token/init").get_json()
    assert config["classes"] == list(categories()) and config["selected_method"] == "Integrated Gradients"
    occlusion = config["method_arguments"]["Occlusion"]  # captum's own default is "", which fails
    assert (occlusion["sliding_window_shapes"]["value"], occlusion["strides"]["value"]) == ("3 32 32", "3 32 32")
    for path in ["/", "/init", f"/static/js/{script}", "/the-tokem/init", "/the-token-x/init"]:
        assert web.get(path).status_code == 403, path


@pytest.mark.parametrize("settings", [IG_FAST, OCCLUSION_COARSE], ids=["integrated-gradients", "occlusion"])
def test_each_photo_shows_once_with_its_label_and_prediction(photo_app, photos, settings):
    web = photo_app.test_client()
    expected = [categories()[photo_label(p)] for p in photos]
    rows = []
    while len(rows) < len(photos):  # 4 rows a page, as Insights shows; the next Fetch continues
        status, page = post(web, "fetch", settings)
        assert status == 200 and 0 < len(page) <= 4, page
        rows += page
    assert [row[0]["actual"]["label"] for row in rows] == expected  # each once, in order (captum: 3 -> 6 rows)
    for row in rows:
        (feature,) = row[0]["feature_outputs"]
        assert feature["base"] and feature["modified"] and feature["base"] != feature["modified"]
        assert abs(feature["contribution"]) == pytest.approx(1.0)  # one feature: all of it
    predicted = {row[0]["actual"]["label"]: row[0]["predicted"][0]["label"] for row in rows}
    assert predicted["espresso"] == "espresso" and predicted["missile"] == "missile"


def test_class_filter_and_a_filter_nothing_matches(photo_app):
    web = photo_app.test_client()
    status, rows = post(web, "fetch", {**IG_FAST, "classes": ["espresso"]})
    assert status == 200 and {row[0]["predicted"][0]["label"] for row in rows} == {"espresso"}
    # no photo is predicted a goldfish: an empty page, where captum's server loops forever
    assert post(web, "fetch", {**IG_FAST, "classes": ["goldfish"]}) == (200, [])


def test_clicking_another_class_explains_that_class(photo_app):
    web = photo_app.test_client()
    rows = post(web, "fetch", IG_FAST)[1]
    runner_up = rows[0][0]["predicted"][1]["index"]
    status, output = post(web, "attribute", {"inputIndex": 0, "modelIndex": 0, "labelIndex": runner_up})
    assert status == 200 and output["active_index"] == runner_up
    assert output["feature_outputs"][0]["modified"] != rows[0][0]["feature_outputs"][0]["modified"]


# --- the app with a tiny model ------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "{not json", "", "[1, 2, 3]", "null",
    '{"attribution_method": "Magic", "arguments": {}}',
    '{"attribution_method": "Integrated Gradients", "arguments": {"n_steps": "many"}}',
    '{"attribution_method": "Integrated Gradients", "arguments": {"n_stepz": 5}}',
    '{"attribution_method": "Integrated Gradients", "classes": "espresso"}',
    '{"attribution_method": "Occlusion", "arguments": {"strides": "3 eight 8"}}',
    '{"attribution_method": "Occlusion", "arguments": {"sliding_window_shapes": "15 15"}}',
    '{"attribution_method": "Occlusion", "arguments": {"perturbations_per_eval": 100000}}',
], ids=lambda b: b[:40] or "empty")
def test_malformed_fetches_get_a_message_and_the_server_keeps_serving(client, body):
    web, _ = client(tiny_visualizer(tiny_batches(2)))
    status, answer = post(web, "fetch", body)
    assert 400 <= status < 500 and answer["error"], answer
    status, rows = post(web, "fetch", IG_FAST)
    assert status == 200 and len(rows) == 2


@pytest.mark.parametrize("settings", [
    {"attribution_method": "Integrated Gradients", "arguments": {"n_steps": 7, "method": "riemann_left"}},
    {"attribution_method": "Occlusion", "arguments": {"sliding_window_shapes": "3 5 5", "strides": "3 4 3",
                                                      "perturbations_per_eval": 1}},
    {"attribution_method": "Saliency", "arguments": {}},
], ids=["integrated-gradients", "occlusion", "saliency"])
def test_the_budget_counts_the_passes_captum_makes(client, settings):
    """passes_per_example against the images the model really sees: forward passes, and for
    gradient methods one backward pass (counted as two) per forward pass."""
    model = TinyNet()
    web, _ = client(tiny_visualizer(tiny_batches(1), model=model), max_passes=10 ** 6)
    model.images = 0
    assert post(web, "fetch", {**settings, "prediction": "all", "classes": []})[0] == 200
    attribution_images = model.images - 2  # the prediction for the filter, and captum's own for the row
    backward = settings["attribution_method"] != "Occlusion"
    arguments = {"n_steps": 7, "sliding_window_shapes": (3, 5, 5), "strides": (3, 4, 3)}
    assert attribution_images * (3 if backward else 1) == passes_per_example(
        settings["attribution_method"], arguments, (3, 16, 16))


def test_over_budget_is_refused_before_any_attribution_saying_what_to_lower(client):
    model, batches = TinyNet(), tiny_batches(3)
    with torch.no_grad():
        predicted = model(batches[0].inputs).argmax(1).item()
    batches[0].labels = [predicted]  # the only photo the model gets right
    web, _ = client(tiny_visualizer(batches, model=model), max_passes=3 * 3 * 20)
    assert post(web, "fetch", {**IG_FAST, "arguments": {"n_steps": 20}})[0] == 200  # 3 photos x 60: allowed
    model.images = 0
    status, answer = post(web, "fetch", {**IG_FAST, "arguments": {"n_steps": 21}})
    assert status == 422 and "63 times per photo, 189 for 3" in answer["error"] and "n_steps" in answer["error"]
    assert model.images == 3  # the predictions only
    status, rows = post(web, "fetch", {**IG_FAST, "arguments": {"n_steps": 21}, "prediction": "correct"})
    assert status == 200 and labels_of(rows) == [predicted]  # fewer photos: the other way under the budget
    status, answer = post(web, "fetch", {**IG_FAST, "attribution_method": "Feature Ablation", "arguments": {}})
    assert status == 422 and "769 times per photo" in answer["error"] and "Occlusion" in answer["error"]


def test_the_walkthrough_occlusion_costs_785_passes_a_photo():
    walkthrough = {"sliding_window_shapes": (3, 15, 15), "strides": (3, 8, 8)}
    assert passes_per_example("Occlusion", walkthrough, (3, 224, 224)) == 28 * 28 + 1  # ceil(209 / 8) + 1 = 28
    assert passes_per_example("Occlusion", {"sliding_window_shapes": (3, 32, 32), "strides": (3, 32, 32)},
                              (3, 224, 224)) == 7 * 7 + 1


def test_each_example_once_and_paging_through_a_larger_dataset(client):
    web, _ = client(tiny_visualizer(tiny_batches(5)))
    assert labels_of(post(web, "fetch", IG_FAST)[1]) == [0, 1, 2, 3]  # Insights shows 4 at a time
    assert labels_of(post(web, "fetch", IG_FAST)[1]) == [4]  # the rest, without repeating any
    assert labels_of(post(web, "fetch", IG_FAST)[1]) == [0, 1, 2, 3]  # then from the start again
    web, _ = client(tiny_visualizer(batch for batch in tiny_batches(2, per_batch=3)))  # a one-shot generator
    assert labels_of(post(web, "fetch", IG_FAST)[1]) == [0, 1, 2, 3]
    assert labels_of(post(web, "fetch", IG_FAST)[1]) == [4, 5]
    assert labels_of(post(web, "fetch", IG_FAST)[1]) == [0, 1, 2, 3]


def test_a_model_changed_after_opening_is_the_one_explained(client):
    model = TinyNet()
    web, _ = client(tiny_visualizer(tiny_batches(1), model=model))
    first = post(web, "fetch", IG_FAST)[1][0][0]["predicted"][0]["index"]
    with torch.no_grad():
        model[-1].bias[(first + 1) % 10] += 100.0  # say, a few steps of training
    assert post(web, "fetch", IG_FAST)[1][0][0]["predicted"][0]["index"] == (first + 1) % 10
    assert not any(m._forward_pre_hooks for m in model.modules())  # the cancel hooks are gone after a Fetch


# --- the server over HTTP ----------------------------------------------------------------------


def test_serves_on_loopback_with_the_token_and_stop_frees_the_port(insights_server):
    handle = insights_server(tiny_visualizer(tiny_batches(1)))
    assert handle._server.socket.getsockname()[0] == "127.0.0.1"
    assert handle.url == f"http://127.0.0.1:{handle.port}/{handle.token}/" and len(handle.token) >= 32
    assert http(handle.url + "init")[0] == 200
    handle.stop()
    with pytest.raises(urllib.error.URLError):
        http(handle.url + "init", timeout=5)
    again = insights_server(tiny_visualizer(tiny_batches(1)), port=handle.port)  # the port is free again
    assert http(again.url + "init")[0] == 200 and again.token != handle.token
    handle.stop()  # a second stop() is harmless


def test_two_explorers_in_one_process_each_serve_their_own(insights_server):
    first = insights_server(tiny_visualizer(tiny_batches(1)))
    second = insights_server(tiny_visualizer(tiny_batches(3), classes=[f"other {i}" for i in range(10)]))
    assert http(first.url + "init")[1]["classes"][0] == "class 0"
    assert http(second.url + "init")[1]["classes"][0] == "other 0"
    assert http(f"http://127.0.0.1:{first.port}/{second.token}/init")[0] == 403  # tokens are per server
    first.stop()
    assert len(http(second.url + "fetch", IG_FAST)[1]) == 3


def test_on_jupyterhub_the_url_goes_through_jupyter_server_proxy(insights_server, monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    handle = insights_server(tiny_visualizer(tiny_batches(1)))
    assert handle.url == f"/user/alice/proxy/{handle.port}/{handle.token}/"
    assert handle.local_url == f"http://127.0.0.1:{handle.port}/{handle.token}/"
    # the proxy forwards the hub's own Host, and says which path it serves us under
    context = {"X-Forwarded-Context": f"/user/alice/proxy/{handle.port}"}
    assert http(handle.local_url + "init", Host="hub.example.org", **context)[0] == 200
    assert http(handle.local_url + "init", Host="hub.example.org")[0] == 403


def test_proxy_outside_a_hub_uses_the_jupyter_servers_base_url(insights_server, monkeypatch, tmp_path):
    """A kernel started by a Jupyter server with base_url /user/bob/ and no hub variables:
    the server that is this process's parent is found in Jupyter's runtime folder."""
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    for pid, base_url in [(os.getppid(), "/user/bob/"), (os.getpid(), "/someone-else/")]:
        server = {"base_url": base_url, "pid": pid, "port": 8888, "url": f"http://127.0.0.1:8888{base_url}",
                  "hostname": "127.0.0.1", "secure": False, "token": "", "root_dir": str(tmp_path), "version": "2"}
        (tmp_path / f"jpserver-{pid}.json").write_text(json.dumps(server))
    handle = insights_server(tiny_visualizer(tiny_batches(1)), proxy=True)
    assert handle.url == f"/user/bob/proxy/{handle.port}/{handle.token}/"


def test_proxy_true_in_a_kernel_of_a_jupyter_server_at_user_bob(tmp_path):
    """A real Jupyter server with base_url /user/bob/ and no hub variables starts the kernel;
    open_insights(..., proxy=True) points the IFrame at /user/bob/proxy/PORT/TOKEN/, and the
    page answers there through jupyter-server-proxy."""
    from jupyter_client import BlockingKernelClient

    from browser import JupyterServer

    with JupyterServer("server", root_dir=tmp_path, tmp_path=tmp_path, base_url="/user/bob/") as jupyter:
        auth = {"Authorization": f"token {jupyter.token}"}
        kernel_id = http(jupyter.url("api/kernels"), {"name": "python3"}, **auth)[1]["id"]
        kernel = BlockingKernelClient(connection_file=str(Path(jupyter.env["JUPYTER_RUNTIME_DIR"])
                                                          / f"kernel-{kernel_id}.json"))
        kernel.load_connection_file()
        kernel.start_channels(hb=False)  # a heartbeat can miss its 1 s on a busy machine
        try:
            kernel.wait_for_ready(timeout=120)
            reply, outputs = execute(kernel, MAKE_VISUALIZER + "handle = open_insights(make('a'), proxy=True)")
            assert reply["content"]["status"] == "ok", reply["content"]
            src = next(o["data"]["text/html"] for o in outputs if "text/html" in o["data"]).split('src="')[1]
            url = src.split('"')[0]
            assert url.startswith("/user/bob/proxy/") and url.count("/") == 6, url
            assert http(f"http://127.0.0.1:{jupyter.port}{url}init", **auth)[1]["classes"] == ["a0", "a1", "a2"]
            assert len(http(f"http://127.0.0.1:{jupyter.port}{url}fetch", IG_FAST, **auth)[1]) == 2
        finally:
            kernel.stop_channels()


def test_on_colab_the_page_goes_through_colabs_kernel_port_proxy(insights_server, monkeypatch, capsys):
    """No real Colab here: a stand-in google.colab records the call open_insights makes."""
    calls = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(serve_kernel_port_as_iframe=lambda port, **kw: calls.append((port, kw)))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setattr("IPython.get_ipython", lambda: object())
    monkeypatch.setattr("captum_helpers.insights.serve", insights_server)
    handle = open_insights(tiny_visualizer(tiny_batches(1)), height=600)
    assert calls == [(handle.port, {"path": f"/{handle.token}/", "height": 600})]
    assert "below" in capsys.readouterr().out
    proxied = {"Host": "8-abc-colab.googleusercontent.com", "Origin": "https://8-abc-colab.googleusercontent.com"}
    assert http(handle.local_url + "fetch", IG_FAST, **proxied)[0] == 200
    assert http(handle.local_url + "fetch", IG_FAST, Origin="https://evil.test")[0] == 403
    assert http(handle.local_url + "fetch", IG_FAST, **{"Content-Type": "text/plain"})[0] == 415


def test_open_insights_outside_a_notebook_prints_the_url(capsys, insights_server, monkeypatch):
    monkeypatch.setattr("captum_helpers.insights.serve", insights_server)
    handle = open_insights(tiny_visualizer(tiny_batches(1)))
    assert handle.url in capsys.readouterr().out and handle.running


# --- what another user of the machine, or another web page, can do -------------------------------


@pytest.fixture
def tiny_server(insights_server):
    model = TinyNet()
    return insights_server(tiny_visualizer(tiny_batches(3), model=model)), model


def test_without_the_token_nothing_answers(tiny_server):
    handle, model = tiny_server
    base = f"http://127.0.0.1:{handle.port}"
    wrong = handle.token[:-1] + ("A" if handle.token[-1] != "A" else "B")
    for prefix in ["", f"/{wrong}", "/proxy", "/static"]:
        assert http(f"{base}{prefix}/")[0] == 403
        assert http(f"{base}{prefix}/init")[0] == 403
        assert http(f"{base}{prefix}/fetch", IG_FAST)[0] == 403
    assert model.calls == 0


def test_another_unix_user_gets_nothing(tiny_server):
    """The Littlest JupyterHub puts every learner on one 127.0.0.1: another account's request."""
    handle, model = tiny_server
    if os.geteuid() != 0:
        pytest.skip("creating a user needs root (CI runs as root)")
    user = f"insights-probe-{os.getpid()}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True)
    probe = textwrap.dedent(f"""
        import json, urllib.request, urllib.error
        answers = []
        for path, body in [("/", None), ("/init", None), ("/fetch", b'{{}}'), ("/proxy/{handle.port}/fetch", b'{{}}')]:
            req = urllib.request.Request("http://127.0.0.1:{handle.port}" + path, data=body,
                                         headers={{"Content-Type": "application/json"}})
            try:
                answers.append(urllib.request.urlopen(req, timeout=30).status)
            except urllib.error.HTTPError as err:
                answers.append(err.code)
        print(json.dumps(answers))
    """)
    try:
        result = subprocess.run(["runuser", "-u", user, "--", "/usr/bin/python3", "-c", probe],
                                capture_output=True, text=True, timeout=60, cwd="/")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == [403, 403, 403, 403]
    finally:
        subprocess.run(["userdel", user], check=False)
    assert model.calls == 0


def test_a_foreign_host_header_is_refused_even_with_the_token(tiny_server):
    """DNS rebinding: a page at http://rebind.test:PORT whose name resolves to 127.0.0.1."""
    handle, model = tiny_server
    assert http(handle.local_url + "init", Host=f"rebind.test:{handle.port}")[0] == 403
    assert http(handle.local_url + "fetch", IG_FAST, Host=f"rebind.test:{handle.port}")[0] == 403
    assert http(handle.local_url + "init", Host=f"localhost:{handle.port}")[0] == 200
    assert model.calls == 0


def test_a_cross_site_post_is_refused_even_with_the_token(tiny_server):
    handle, model = tiny_server
    body = json.dumps(IG_FAST).encode()
    status, answer = http(handle.local_url + "fetch", body, Origin="https://evil.test",
                          **{"Content-Type": "text/plain"})
    assert status == 403 and "evil.test" in answer["error"]
    status, answer = http(handle.local_url + "fetch", body, **{"Content-Type": "text/plain"})  # a form's type
    assert status == 415
    assert model.calls == 0
    same_origin = f"http://127.0.0.1:{handle.port}"
    assert http(handle.local_url + "fetch", IG_FAST, Origin=same_origin)[0] == 200


def test_a_2_mb_body_gets_413_and_the_server_keeps_serving(tiny_server):
    handle, model = tiny_server
    body = b"[" + b"1," * (MAX_BODY + 100) + b"1]"
    path = f"/{handle.token}/fetch"
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{handle.port}\r\nContent-Type: application/json\r\n"
            "Connection: close\r\n")
    answer = raw(handle.port, (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    chunked = (head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
    assert raw(handle.port, chunked).startswith(b"HTTP/1.1 413")  # no length given: still bounded
    assert model.calls == 0
    assert http(handle.url + "fetch", IG_FAST)[0] == 200


def test_half_open_connections_hold_a_bounded_number_of_threads(tiny_server, monkeypatch):
    handle, _ = tiny_server
    monkeypatch.setattr("captum_helpers.webserver._Handler.timeout", 1.0)
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", handle.port)) for _ in range(100)]
    try:
        time.sleep(0.5)
        assert threading.active_count() - before <= THREADS
        time.sleep(1.5)  # they time out and free their threads
        assert http(handle.url + "init")[0] == 200
    finally:
        for sock in idle:
            sock.close()


# --- cancelling ------------------------------------------------------------------------------


SLOW_FETCH = {**IG_FAST, "arguments": {"n_steps": 400, "method": "gausslegendre"}}  # 40 passes of 10 steps


@pytest.fixture
def slow_server(insights_server):
    """A server whose Fetch takes about 10 s (0.05 s per forward pass), with no budget."""
    model = TinyNet(delay=0.05)
    return insights_server(tiny_visualizer(tiny_batches(2), model=model), max_passes=10 ** 9), model


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


def test_a_client_that_leaves_stops_paying_and_the_next_fetch_is_prompt(slow_server):
    handle, model = slow_server
    body = json.dumps(SLOW_FETCH).encode()
    request = (f"POST /{handle.token}/fetch HTTP/1.1\r\nHost: 127.0.0.1:{handle.port}\r\n"
               f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    for _ in range(3):  # three clients that give up
        sock = socket.create_connection(("127.0.0.1", handle.port))
        sock.sendall(request)
        wait_until_computing(model, model.calls + 5)
        sock.close()
        assert seconds_until_idle(model) < CANCEL_S
    started = time.monotonic()
    assert http(handle.url + "fetch", IG_FAST)[0] == 200
    assert time.monotonic() - started < CANCEL_S + 1  # 2 photos x a few passes of 0.05 s


def test_a_new_fetch_replaces_a_running_one(slow_server):
    handle, model = slow_server
    answers = {}
    first = threading.Thread(target=lambda: answers.update(first=http(handle.url + "fetch", SLOW_FETCH)))
    first.start()
    wait_until_computing(model)
    started = time.monotonic()
    status, rows = http(handle.url + "fetch", IG_FAST)
    assert status == 200 and len(rows) == 2 and time.monotonic() - started < CANCEL_S + 1
    first.join(10)
    assert answers["first"][0] == 409 and "Cancelled" in answers["first"][1]["error"]


def test_stop_during_a_fetch_ends_the_computation(slow_server):
    handle, model = slow_server
    threading.Thread(target=http, args=(handle.url + "fetch", SLOW_FETCH), daemon=True).start()
    wait_until_computing(model)
    started = time.monotonic()
    handle.stop()
    assert time.monotonic() - started < CANCEL_S
    assert seconds_until_idle(model) < 0.5  # nothing left running in the background
    assert not handle.running


# --- a real kernel and a script -----------------------------------------------------------------

MAKE_VISUALIZER = """
import time, torch
from torch import nn
from captum.insights import AttributionVisualizer, Batch
from captum.insights.attr_vis.features import ImageFeature
from captum_helpers.insights import open_insights, serve

class Slow(nn.Module):
    def forward(self, x):
        time.sleep(0.05)
        return x

def make(prefix):
    model = nn.Sequential(nn.Conv2d(3, 2, 3), Slow(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3)).eval()
    return AttributionVisualizer(models=[model], score_func=lambda o: torch.softmax(o, 1),
        classes=[prefix + str(i) for i in range(3)],
        features=[ImageFeature("Photo", baseline_transforms=[lambda x: x * 0], input_transforms=[])],
        dataset=[Batch(torch.rand(2, 3, 8, 8), labels=[0, 1])])
"""


def test_in_a_kernel_two_explorers_open_and_shutdown_during_a_fetch_is_clean(tmp_path):
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), "MPLBACKEND": "agg"}
    env.pop("JUPYTERHUB_SERVICE_PREFIX", None)
    manager, kernel = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        code = MAKE_VISUALIZER + "first = open_insights(make('a'))\nsecond = open_insights(make('b'), max_passes=10**9)"
        reply, outputs = execute(kernel, code)
        assert reply["content"]["status"] == "ok", reply["content"]
        urls = [o["data"]["text/html"].split('src="')[1].split('"')[0] for o in outputs if "text/html" in o["data"]]
        assert len(urls) == 2 and all("/" in url.split(":")[-1] for url in urls)  # each with its token
        assert [http(url + "init")[1]["classes"][0] for url in urls] == ["a0", "b0"]
        assert len(http(urls[0] + "fetch", IG_FAST)[1]) == 2
        execute(kernel, "first.stop()")
        threading.Thread(target=http, args=(urls[1] + "fetch", SLOW_FETCH), daemon=True).start()
        time.sleep(2)  # the Fetch is running in the kernel now
        started = time.monotonic()
        manager.request_shutdown()
        while manager.is_alive() and time.monotonic() - started < 30:
            time.sleep(0.1)
        assert not manager.is_alive(), "the kernel did not exit: the Insights server holds it open"
        assert manager.provisioner.process.returncode == 0  # not SIGABRT (-6), as before
        with pytest.raises(urllib.error.URLError):
            http(urls[1] + "init", timeout=5)
    finally:
        kernel.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
        manager.cleanup_resources()


def execute(kernel, code: str, timeout: float = 120) -> tuple[dict, list[dict]]:
    msg_id = kernel.execute(code)
    outputs = []
    while True:
        message = kernel.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] in ("display_data", "execute_result"):
            outputs.append(message["content"])
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
    return kernel.get_shell_msg(timeout=timeout), outputs


def test_a_script_that_ends_during_a_fetch_exits_cleanly():
    script = MAKE_VISUALIZER + textwrap.dedent("""
        import json, threading, urllib.request
        handle = serve(make("a"), max_passes=10**9)
        body = json.dumps({"attribution_method": "Integrated Gradients", "arguments": {"n_steps": 400},
                           "prediction": "all", "classes": []}).encode()
        request = urllib.request.Request(handle.url + "fetch", body, {"Content-Type": "application/json"})
        threading.Thread(target=urllib.request.urlopen, args=(request,), daemon=True).start()
        time.sleep(2)
        print(handle.url, flush=True)
    """)  # the script ends while its Fetch runs
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr  # before: SIGABRT, "terminate called without an active exception"
    assert result.stdout.startswith("http://127.0.0.1:")


# --- the command line ------------------------------------------------------------------------


def start_cli(course: Path) -> tuple[subprocess.Popen, str, str]:
    """run_standalone in a subprocess on the photos of ``course``/img; its output up to the URL."""
    env = {**os.environ, "CAPTUM_COURSE_ROOT": str(course), "CAPTUM_HELPERS_MODEL": "efficientnet_lite0"}
    env.pop("DISPLAY", None), env.pop("WAYLAND_DISPLAY", None)
    code = "from captum_course.insights import run_standalone; raise SystemExit(run_standalone('127.0.0.1', 0, None))"
    process = subprocess.Popen([sys.executable, "-c", code], cwd=course, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    text = "".join(lines)
    url = next((word for word in text.split() if word.startswith("http://127.0.0.1:")), None)
    assert url, text
    return process, url, text


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_command_line_serves_until_a_signal_that_also_ends_a_running_fetch(tmp_path, signum):
    (tmp_path / "img").mkdir()
    photos = add_walkthrough_photos(tmp_path / "img")
    process, url, text = start_cli(tmp_path)
    try:
        port, token = url.split(":")[2].split("/")[0], url.rstrip("/").split("/")[-1]
        assert f"on {len(photos)} photos" in text
        assert f"ssh -L {port}:127.0.0.1:{port}" in text and f"http://127.0.0.1:{port}/{token}/" in text
        assert http(f"http://127.0.0.1:{port}/init")[0] == 403
        rows = http(url + "fetch", IG_FAST)[1] + http(url + "fetch", IG_FAST)[1]  # 4 a page, then the rest
        assert [row[0]["actual"]["index"] for row in rows] == [photo_label(p) for p in photos]
        long_fetch = {"attribution_method": "Occlusion", "prediction": "all", "classes": [],
                      "arguments": {"sliding_window_shapes": "3 32 32", "strides": "3 16 16",
                                    "perturbations_per_eval": 4}}  # 170 passes a photo, 4 photos
        threading.Thread(target=http, args=(url + "fetch", long_fetch), daemon=True).start()
        time.sleep(3)  # the Fetch computes now
        started = time.monotonic()
        process.send_signal(signum)
        assert "Stopped." in process.stdout.readline()
        assert time.monotonic() - started < CANCEL_S
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
