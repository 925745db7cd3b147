"""The command line's Captum Insights (``python -m captum_course insights``): the explorer's page
(captum_explorer/explorer.js, as in the notebook's widget) served from a loopback port by
captum_course.insights, for a projector or a machine reached over ssh. The app through a test
client, the server over HTTP, what an attacker on the same machine can do, cancellation, a
script and the command line. Notebook 05's widget is tested in test_insights.py, the engine in
test_explorer.py; the shared server fixture ``insights_server`` is in conftest.py."""
from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
from pathlib import Path

import pytest
import torch

from captum_course.insights import build_visualizer, create_app
from captum_course.webserver import MAX_BODY, THREADS
from captum_explorer.widget import FRONT_END
from captum_helpers import categories, photo_label, photo_paths
from explorers import (CANCEL_S, IG_FAST, MAKE_VISUALIZER, SLOW_FETCH, TinyNet,
                       add_walkthrough_photos, http, img_photos, labels_of, raw, seconds_until_idle,
                       slow_explorer, tiny_batches, tiny_visualizer, wait_until_computing)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def client():
    """``client(visualizer, **create_app_kwargs)``: a Flask test client and the app's token."""
    def make(visualizer, **kwargs):
        app = create_app(visualizer, "the-token", **kwargs)
        return app.test_client(), app
    return make


def post(test_client, route: str, body, **headers) -> tuple[int, object]:
    data = body if isinstance(body, str) else json.dumps(body)
    response = test_client.post(f"/the-token/{route}", data=data, content_type="application/json",
                                headers=headers)
    return response.status_code, response.get_json(silent=True)


@pytest.fixture(scope="module")
def photo_app(lite0, tmp_path_factory):
    return create_app(build_visualizer(lite0, img_photos("img", tmp_path_factory)), "the-token")


def test_the_page_and_its_settings_need_the_token(photo_app):
    web = photo_app.test_client()
    page = web.get("/the-token/")
    html = page.get_data(as_text=True)
    assert page.mimetype == "text/html" and '<html lang="en">' in html
    # the notebook's front end, from a relative URL (keeps the token), talking to "./"
    assert "<title>Captum Insights</title>" in html
    assert 'import { mountServer } from "./explorer.js";' in html
    assert re.search(r'mountServer\(document\.getElementById\("explorer"\), "\./", "en"\)',
                     html)
    script = web.get("/the-token/explorer.js")
    assert (script.status_code == 200 and script.mimetype == "text/javascript"
            and script.get_data(as_text=True) == FRONT_END.read_text(encoding="utf-8"))
    assert not re.search(r"https?://", html)  # nothing from the network
    # relative, so it works behind a proxy
    assert web.get("/the-token").headers["Location"] == "the-token/"
    config = web.get("/the-token/init").get_json()
    assert (config["classes"] == list(categories())
            and config["selected_method"] == "Integrated Gradients")
    occlusion = config["method_arguments"]["Occlusion"]  # captum's own default is "", which fails
    assert ((occlusion["sliding_window_shapes"]["value"], occlusion["strides"]["value"])
            == ("3 32 32", "3 32 32"))
    assert config == photo_app.explorer.config()
    for path in ["/", "/init", "/explorer.js", "/the-tokem/init", "/the-token-x/init",
                 "/the-tokem/explorer.js"]:
        assert web.get(path).status_code == 403, path


def test_a_fetch_shows_each_photo_once_and_a_click_explains_another_class(photo_app):
    web = photo_app.test_client()
    status, rows = post(web, "fetch", IG_FAST)
    assert (status == 200 and len(rows) == 3
            and {row["predicted"][0]["label"] for row in rows} >= {"espresso"})
    assert [row["actual"]["label"] for row in rows] == [
        categories()[photo_label(p)] for p in photo_paths()]
    assert all(row["model_index"] == 0 for row in rows)
    runner_up = rows[0]["predicted"][1]["index"]
    status, output = post(web, "attribute",
                          {"inputIndex": 0, "modelIndex": 0, "labelIndex": runner_up})
    assert status == 200 and output["active_index"] == runner_up
    assert output["feature_outputs"][0]["modified"] != rows[0]["feature_outputs"][0]["modified"]
    status, answer = post(web, "attribute", {"inputIndex": 3, "modelIndex": 0, "labelIndex": 1})
    assert status == 400 and "press Fetch again" in answer["error"]
    # none predicted: an empty page
    assert post(web, "fetch", {**IG_FAST, "classes": ["goldfish"]}) == (200, [])


@pytest.mark.parametrize("body", [
    "{not json", "", "[1, 2, 3]", "null",
    '{"attribution_method": "Magic", "arguments": {}}',
    '{"attribution_method": "Integrated Gradients", "arguments": {"n_steps": "many"}}',
    '{"attribution_method": "Integrated Gradients", "arguments": {"n_stepz": 5}}',
    '{"attribution_method": "Integrated Gradients", "classes": "espresso"}',
    '{"attribution_method": "Occlusion", "arguments": {"strides": "3 eight 8"}}',
    '{"attribution_method": "Occlusion", "arguments": {"sliding_window_shapes": "15 15"}}',
    '{"attribution_method": "Occlusion", "arguments": {"perturbations_per_eval": 100000}}',
    '{"attribution_method": "Occlusion", "arguments": {"strides": "3 0 8"}}',
], ids=lambda b: b[:40] or "empty")
def test_malformed_fetches_get_a_message_and_the_server_keeps_serving(client, body):
    web, _ = client(tiny_visualizer(tiny_batches(2)))
    status, answer = post(web, "fetch", body)
    assert 400 <= status < 500 and answer["error"], answer
    status, rows = post(web, "fetch", IG_FAST)
    assert status == 200 and len(rows) == 2


def test_over_budget_is_refused_before_any_attribution_saying_what_to_lower(client):
    model, batches = TinyNet(), tiny_batches(3)
    with torch.no_grad():
        predicted = model(batches[0].inputs).argmax(1).item()
    batches[0].labels = [predicted]  # the only photo the model gets right
    web, _ = client(tiny_visualizer(batches, model=model), max_passes=3 * 3 * 20)
    # 3 photos x 60: allowed
    assert post(web, "fetch", {**IG_FAST, "arguments": {"n_steps": 20}})[0] == 200
    model.images = 0
    status, answer = post(web, "fetch", {**IG_FAST, "arguments": {"n_steps": 21}})
    assert (status == 422 and "63 model passes per photo, 189 for 3" in answer["error"]
            and "n_steps" in answer["error"])
    assert model.images == 3  # the predictions only
    status, rows = post(web, "fetch",
                        {**IG_FAST, "arguments": {"n_steps": 21}, "prediction": "correct"})
    # fewer photos: the other way under the budget
    assert status == 200 and labels_of(rows) == [predicted]
    status, answer = post(web, "fetch",
                          {**IG_FAST, "attribution_method": "Feature Ablation", "arguments": {}})
    assert (status == 422 and "769 model passes per photo" in answer["error"]
            and "Occlusion" in answer["error"])


def test_the_chinese_edition_serves_its_page_and_messages_in_chinese(client, monkeypatch):
    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", "zh")
    web, app = client(tiny_visualizer(tiny_batches(2)), max_passes=100)
    monkeypatch.delenv("CAPTUM_COURSE_LANGUAGE")  # fixed when the app is made
    html = web.get("/the-token/").get_data(as_text=True)
    assert '<html lang="zh-CN">' in html and '"./", "zh")' in html
    status, answer = post(web, "fetch", {"attribution_method": "Magic", "arguments": {}})
    assert status == 400 and "attribution_method 必须是以下之一" in answer["error"]
    status, answer = post(web, "fetch", {**IG_FAST, "arguments": {"n_steps": 21}})
    assert status == 422 and "每张照片要做 63 次模型传播的计算" in answer["error"]
    status, answer = post(web, "attribute", {"inputIndex": 0, "modelIndex": 0, "labelIndex": 1})
    assert status == 400 and "请再点一次 Fetch" in answer["error"]
    assert len(post(web, "fetch", IG_FAST)[1]) == 2
    english, _ = client(tiny_visualizer(tiny_batches(1)))
    assert '<html lang="en">' in english.get("/the-token/").get_data(as_text=True)
    status, answer = post(english, "fetch", {"attribution_method": "Magic", "arguments": {}})
    assert status == 400 and "attribution_method must be one of" in answer["error"]



# --- the server over HTTP ----------------------------------------------------------------------


def test_serves_on_loopback_with_the_token_and_stop_frees_the_port(insights_server):
    handle = insights_server(tiny_visualizer(tiny_batches(1)))
    assert handle._server.socket.getsockname()[0] == "127.0.0.1"
    assert (handle.url == f"http://127.0.0.1:{handle.port}/{handle.token}/"
            and len(handle.token) >= 32)
    assert http(handle.url + "init")[0] == 200
    handle.stop()
    with pytest.raises(urllib.error.URLError):
        http(handle.url + "init", timeout=5)
    # the port is free again
    again = insights_server(tiny_visualizer(tiny_batches(1)), port=handle.port)
    assert http(again.url + "init")[0] == 200 and again.token != handle.token
    handle.stop()  # a second stop() is harmless


def test_two_explorers_in_one_process_each_serve_their_own(insights_server):
    first = insights_server(tiny_visualizer(tiny_batches(1)))
    second = insights_server(tiny_visualizer(tiny_batches(3),
                                             classes=[f"other {i}" for i in range(10)]))
    assert http(first.url + "init")[1]["classes"][0] == "class 0"
    assert http(second.url + "init")[1]["classes"][0] == "other 0"
    # tokens are per server
    assert http(f"http://127.0.0.1:{first.port}/{second.token}/init")[0] == 403
    first.stop()
    assert len(http(second.url + "fetch", IG_FAST)[1]) == 3


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
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user],
                   check=True)
    probe = textwrap.dedent(f"""
        import json, urllib.request, urllib.error
        answers = []
        for path, body in [("/", None), ("/init", None), ("/fetch", b'{{}}'),
                           ("/proxy/{handle.port}/fetch", b'{{}}')]:
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
    assert http(handle.url + "init", Host=f"rebind.test:{handle.port}")[0] == 403
    assert http(handle.url + "fetch", IG_FAST, Host=f"rebind.test:{handle.port}")[0] == 403
    assert http(handle.url + "init", Host=f"localhost:{handle.port}")[0] == 200
    assert model.calls == 0


def test_a_cross_site_post_is_refused_even_with_the_token(tiny_server):
    handle, model = tiny_server
    body = json.dumps(IG_FAST).encode()
    status, answer = http(handle.url + "fetch", body, Origin="https://evil.test",
                          **{"Content-Type": "text/plain"})
    assert status == 403 and "evil.test" in answer["error"]
    # a form's type
    status, answer = http(handle.url + "fetch", body, **{"Content-Type": "text/plain"})
    assert status == 415
    assert model.calls == 0
    same_origin = f"http://127.0.0.1:{handle.port}"
    assert http(handle.url + "fetch", IG_FAST, Origin=same_origin)[0] == 200


def test_a_2_mb_body_gets_413_and_the_server_keeps_serving(tiny_server):
    handle, model = tiny_server
    body = b"[" + b"1," * (MAX_BODY + 100) + b"1]"
    path = f"/{handle.token}/fetch"
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{handle.port}\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n")
    answer = raw(handle.port, (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    chunked = ((head + "Transfer-Encoding: chunked\r\n\r\n").encode() + b"%x\r\n" % len(body) + body
               + b"\r\n0\r\n\r\n")
    assert raw(handle.port, chunked).startswith(b"HTTP/1.1 413")  # no length given: still bounded
    assert model.calls == 0
    assert http(handle.url + "fetch", IG_FAST)[0] == 200


def test_half_open_connections_hold_a_bounded_number_of_threads(tiny_server, monkeypatch):
    handle, _ = tiny_server
    monkeypatch.setattr("captum_course.webserver._Handler.timeout", 1.0)
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


@pytest.fixture
def slow_server(insights_server):
    """A server whose Fetch takes about 10 s, with no budget; and its model."""
    return slow_explorer(insights_server)


def test_a_client_that_leaves_stops_paying_and_the_next_fetch_is_prompt(slow_server):
    handle, model = slow_server
    body = json.dumps(SLOW_FETCH).encode()
    request = (f"POST /{handle.token}/fetch HTTP/1.1\r\nHost: 127.0.0.1:{handle.port}\r\n"
               "Content-Type: application/json\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
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
    first = threading.Thread(
        target=lambda: answers.update(first=http(handle.url + "fetch", SLOW_FETCH)))
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


# --- a script and the command line ---------------------------------------------------------


@pytest.mark.once
def test_a_script_that_ends_during_a_fetch_exits_cleanly():
    script = MAKE_VISUALIZER + textwrap.dedent("""
        from captum_course.insights import serve
        import json, threading, urllib.request
        handle = serve(make("a"), max_passes=10**9)
        body = json.dumps({"attribution_method": "Integrated Gradients",
                           "arguments": {"n_steps": 400}, "prediction": "all",
                           "classes": []}).encode()
        request = urllib.request.Request(handle.url + "fetch", body,
                                         {"Content-Type": "application/json"})
        threading.Thread(target=urllib.request.urlopen, args=(request,), daemon=True).start()
        time.sleep(2)
        print(handle.url, flush=True)
    """)  # the script ends while its Fetch runs
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    # before: SIGABRT, "terminate called without an active exception"
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("http://127.0.0.1:")


def start_cli(course: Path) -> tuple[subprocess.Popen, str, str]:
    """run_standalone in a subprocess on the photos of ``course``/img; its output up to the URL."""
    env = {**os.environ, "CAPTUM_COURSE_ROOT": str(course),
           "CAPTUM_HELPERS_MODEL": "efficientnet_lite0"}
    env.pop("DISPLAY", None), env.pop("WAYLAND_DISPLAY", None)
    code = ("from captum_course.insights import run_standalone; "
            "raise SystemExit(run_standalone('127.0.0.1', 0, None))")
    process = subprocess.Popen([sys.executable, "-c", code], cwd=course, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            break
    text = "".join(lines)
    url = next((word for word in text.split() if word.startswith("http://127.0.0.1:")), None)
    assert url, text
    return process, url, text


@pytest.mark.once
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_command_line_serves_until_a_signal_that_also_ends_a_running_fetch(tmp_path, signum):
    (tmp_path / "img").mkdir()
    photos = add_walkthrough_photos(tmp_path / "img")
    process, url, text = start_cli(tmp_path)
    try:
        port, token = url.split(":")[2].split("/")[0], url.rstrip("/").split("/")[-1]
        assert f"on {len(photos)} photos" in text
        assert (f"ssh -L {port}:127.0.0.1:{port}" in text
                and f"http://127.0.0.1:{port}/{token}/" in text)
        assert http(f"http://127.0.0.1:{port}/init")[0] == 403
        # 4 a page, then the rest
        rows = http(url + "fetch", IG_FAST)[1] + http(url + "fetch", IG_FAST)[1]
        assert [row["actual"]["index"] for row in rows] == [photo_label(p) for p in photos]
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
