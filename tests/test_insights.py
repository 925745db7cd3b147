"""Captum Insights in the notebook (captum_explorer.widget, notebook 05): the course's own front
end (captum_explorer/explorer.js) in an anywidget, driven here through its traits as the page
drives them, in this process and in a real kernel. The engine's own tests are in
test_explorer.py, the browser tests in test_insights_browser.py, the command line's web server
in test_insights_server.py."""
from __future__ import annotations

import base64
import io
import json
import math
import os
import re
import time
from pathlib import Path

import pytest
import torch
from PIL import Image

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from captum_course.insights import build_visualizer
from captum_explorer import InsightsError
from captum_explorer.widget import (FRONT_END, HEARTBEAT_S, INTERRUPTED, InsightsWidget,
                                    open_insights)
from captum_helpers import categories, photo_label
from captum_helpers.speed import passes_per_example
from explorers import (CANCEL_S, IG_FAST, MAKE_VISUALIZER, OCCLUSION_COARSE, SLOW_FETCH, TinyNet,
                       img_photos, labels_of, listening_ports, seconds_until_idle, slow_explorer,
                       tiny_batches, tiny_visualizer, wait_until_computing)

ROOT = Path(__file__).resolve().parent.parent
MESSAGE_CAP = 10 * 2**20  # about what one websocket message may carry (jupyter/notebook #3468)


@pytest.fixture
def widgets():
    """``widgets(visualizer, **kwargs)``: InsightsWidgets, closed after the test."""
    made = []

    def make(visualizer, **kwargs):
        made.append(InsightsWidget(visualizer, **kwargs))
        return made[-1]
    yield make
    for widget in made:
        widget.close()


def press(widget: InsightsWidget, settings: dict, timeout: float = 120) -> list:
    """What the page's Fetch button does: set ``config`` (and ``output`` to []), then wait."""
    widget.config = settings
    assert widget._done.wait(timeout), "the Fetch did not end"
    return widget.output


@pytest.fixture(scope="module", params=["img", "img-with-walkthrough-photos"])
def photos(request, tmp_path_factory):
    return img_photos(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def photo_widget(lite0, tmp_path_factory):
    """Notebook 05's explorer on the photos in img/."""
    widget = InsightsWidget(build_visualizer(lite0, img_photos("img", tmp_path_factory)))
    yield widget
    widget.close()


# --- the widget's front end -------------------------------------------------------------------


def data_uri_png(uri: str) -> Image.Image:
    """The picture of a ``data:image/png;base64,...`` URI, as a Fetch sends it."""
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix), uri[:40]
    picture = Image.open(io.BytesIO(base64.b64decode(uri[len(prefix):], validate=True)))
    assert picture.format == "PNG"
    return picture


def test_the_front_end_is_the_packages_explorer_js_and_needs_no_network(widgets):
    """The widget's _esm is captum_explorer/explorer.js as the package ships it: an ES module
    with the anywidget entry point and no import or URL of its own (it works offline, in every
    front end)."""
    assert FRONT_END == ROOT / "captum_explorer" / "explorer.js"
    text = FRONT_END.read_text(encoding="utf-8")
    assert widgets(tiny_visualizer(tiny_batches(1)))._esm == text
    assert re.search(r"^export default \{\s*render\s*\};?\s*$", text, re.M)
    assert re.search(r"^function render\(", text, re.M)
    for name in ("mount", "mountServer", "mountStatic"):  # the server's page and the website's
        assert re.search(rf"^export (async )?function {name}\(", text, re.M), name
    assert not re.search(r"https?://", text, re.I)
    assert not re.search(r"^\s*import\b|\bimport\s*\(|\brequire\s*\(", text, re.M)
    # installed with the package, not only in the repository
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert ("captum_explorer" in setuptools["packages"]
            and "*.js" in setuptools["package-data"]["captum_explorer"])


def test_the_widget_shows_the_pages_settings_and_says_what_to_do(photo_widget):
    config = photo_widget.insights_config
    assert (config["classes"] == list(categories())
            and config["selected_method"] == "Integrated Gradients")
    occlusion = config["method_arguments"]["Occlusion"]  # captum's own default is "", which fails
    assert (occlusion["sliding_window_shapes"]["value"],
            occlusion["strides"]["value"]) == ("3 32 32", "3 32 32")
    assert photo_widget.insights_config == photo_widget.explorer.config()
    assert photo_widget.heartbeat_s == HEARTBEAT_S
    assert "Captum Insights" in repr(photo_widget)  # what a saved notebook shows without its kernel


# --- what a Fetch shows -----------------------------------------------------------------------


@pytest.mark.parametrize("settings", [IG_FAST, OCCLUSION_COARSE],
                         ids=["integrated-gradients", "occlusion"])
def test_each_photo_shows_once_with_its_label_and_prediction(lite0, photos, settings):
    photo_widget = InsightsWidget(build_visualizer(lite0, photos))
    expected = [categories()[photo_label(p)] for p in photos]
    rows = []
    while len(rows) < len(photos):  # 4 rows a Fetch, as Insights shows; the next Fetch continues
        page = press(photo_widget, settings)
        assert 0 < len(page) <= 4 and photo_widget.status["state"] == "done", photo_widget.status
        rows += page
    # each once, in order (captum: 3 -> 6 rows); one model: one row per photo
    assert [row["actual"]["label"] for row in rows] == expected
    for row in rows:
        (feature,) = row["feature_outputs"]
        assert row["model_index"] == 0 and feature["type"] == "image"
        assert feature["base"] != feature["modified"]
        assert data_uri_png(feature["base"]).size == data_uri_png(feature["modified"]).size
        assert abs(feature["contribution"]) == pytest.approx(1.0)  # one feature: all of it
    predicted = {row["actual"]["label"]: row["predicted"][0]["label"] for row in rows}
    assert predicted["espresso"] == "espresso" and predicted["missile"] == "missile"
    photo_widget.close()


def test_a_fetch_sends_a_fraction_of_a_websocket_message(photo_widget):
    """captum's pictures were whole matplotlib figures (0.77-1.08 MB a row here); the explorer's
    are the photo and its map as PNGs of at most 224 pixels a side, far below the cap even for a
    full page of 4 rows."""
    rows = press(photo_widget, IG_FAST)
    sizes = [len(json.dumps(row)) for row in rows]
    print(f"bytes per row: {sizes}")
    assert max(sizes) * 4 < MESSAGE_CAP / 10
    feature = rows[0]["feature_outputs"][0]
    for picture in (data_uri_png(feature["base"]), data_uri_png(feature["modified"])):
        # the photo's own size (transform's 224 x 224), not a figure's with its margins
        assert picture.size == (224, 224) and picture.mode == "RGB"


def test_class_filter_and_a_filter_nothing_matches(photo_widget):
    rows = press(photo_widget, {**IG_FAST, "classes": ["espresso"]})
    assert {row["predicted"][0]["label"] for row in rows} == {"espresso"}
    # no photo is predicted a goldfish: an empty page that says so, where captum's widget spins
    # for ever
    assert press(photo_widget, {**IG_FAST, "classes": ["goldfish"]}) == []
    assert (photo_widget.status["state"] == "empty"
            and "Filter by Classes" in photo_widget.status["text"])


def test_clicking_another_class_explains_that_class(photo_widget):
    rows = press(photo_widget, IG_FAST)
    runner_up = rows[0]["predicted"][1]["index"]
    photo_widget.label_details = {"inputIndex": 0, "modelIndex": 0, "labelIndex": runner_up}
    assert photo_widget._done.wait(60)
    assert photo_widget.attribution["active_index"] == runner_up
    assert photo_widget.status["state"] == "done", photo_widget.status
    assert (photo_widget.attribution["feature_outputs"][0]["modified"]
            != rows[0]["feature_outputs"][0]["modified"])
    # so that the same click again is a change the kernel sees
    assert photo_widget.label_details == {}


def test_a_click_on_a_row_that_is_not_there_says_to_fetch_again(widgets):
    widget = widgets(tiny_visualizer(tiny_batches(2)))
    rows = press(widget, IG_FAST)
    for details in [{"inputIndex": len(rows), "modelIndex": 0, "labelIndex": 1},
                    {"inputIndex": 0, "modelIndex": 1, "labelIndex": 1},
                    {"inputIndex": 0, "modelIndex": 0, "labelIndex": 10},
                    {"inputIndex": "0", "modelIndex": 0, "labelIndex": 1}]:
        widget.label_details = details
        assert widget._done.wait(10)
        assert (widget.status["state"] == "error"
                and "press Fetch again" in widget.status["text"]), (details, widget.status)
        # an error too leaves no click behind: the same click again reaches the kernel
        assert widget.label_details == {}
    widget.label_details = {"inputIndex": 1, "modelIndex": 0, "labelIndex": 7}
    assert widget._done.wait(30) and widget.status["state"] == "done", widget.status
    assert (widget.attribution["active_index"] == 7
            and widget.attribution["actual"] == rows[1]["actual"])


def test_fetch_from_python_presses_the_button(photo_widget):
    rows = photo_widget.fetch("Saliency")
    assert len(rows) == 3 and photo_widget.config == {}  # the same settings again are a change too
    status = photo_widget.status
    assert status["state"] == "done" and "Saliency: 3 photos in" in status["text"]
    # the done status carries the time it took, as its text says it
    assert 0 < status["seconds"] < 600
    assert f"in {status['seconds']:.1f} s" in status["text"]


# --- the tiny model: settings, budget, paging -----------------------------------------------------


@pytest.mark.parametrize("config", [
    {"attribution_method": "Magic", "arguments": {}},
    {"attribution_method": "Integrated Gradients", "arguments": {"n_steps": "many"}},
    {"attribution_method": "Integrated Gradients", "arguments": {"n_stepz": 5}},
    {"attribution_method": "Integrated Gradients", "classes": "espresso"},
    {"attribution_method": "Occlusion", "arguments": {"strides": "3 eight 8"}},
    {"attribution_method": "Occlusion", "arguments": {"sliding_window_shapes": "15 15"}},
    {"attribution_method": "Occlusion", "arguments": {"perturbations_per_eval": 100000}},
    {"attribution_method": "Occlusion", "arguments": {"strides": "3 0 8"}},
], ids=lambda c: json.dumps(c)[:40])
def test_bad_settings_say_what_is_wrong_and_the_widget_goes_on(widgets, config):
    widget = widgets(tiny_visualizer(tiny_batches(2)))
    assert press(widget, config) == [] and widget.status["state"] == "error"
    assert (config["attribution_method"] in widget.status["text"]
            or "attribution_method" in widget.status["text"])
    assert len(press(widget, IG_FAST)) == 2 and widget.status["state"] == "done"


def test_a_model_that_fails_shows_its_error_in_the_widget(widgets):
    model = TinyNet()
    widget = widgets(tiny_visualizer(tiny_batches(1), model=model))
    model.forward = lambda x: (_ for _ in ()).throw(RuntimeError("this layer cannot run"))
    press(widget, IG_FAST)
    assert (widget.status["state"] == "error"
            and "RuntimeError: this layer cannot run" in widget.status["text"])
    assert "Choose another method" in widget.status["text"]


@pytest.mark.parametrize("settings", [
    {"attribution_method": "Integrated Gradients",
     "arguments": {"n_steps": 7, "method": "riemann_left"}},
    {"attribution_method": "Saliency", "arguments": {}},
], ids=["integrated-gradients", "saliency"])
def test_the_budget_counts_the_passes_captum_makes(widgets, settings):
    """passes_per_example against the images the model really sees: forward passes, and for
    gradient methods one backward pass (counted as two) per forward pass."""
    model = TinyNet()
    widget = widgets(tiny_visualizer(tiny_batches(1), model=model), max_passes=10 ** 6)
    model.images = 0
    assert len(press(widget, {**settings, "prediction": "all", "classes": []})) == 1
    # the prediction for the filter, and captum's own for the row
    attribution_images = model.images - 2
    assert attribution_images * 3 == passes_per_example(
        settings["attribution_method"], {"n_steps": 7}, (3, 16, 16))


def test_the_budget_counts_the_work_incremental_occlusion_does():
    """The explorer's Occlusion is IncrementalOcclusion: its cost is the share of captum's
    convolution work it computes (counted before, without computing) times captum's passes."""
    from captum_helpers import IncrementalOcclusion

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                torch.nn.Linear(4, 10)).eval()
    photo = torch.rand(1, 3, 16, 16)
    arguments = {"sliding_window_shapes": (3, 5, 5), "strides": (3, 4, 3)}
    explainer = IncrementalOcclusion(model)
    explainer.attribute(photo, target=0, baselines=0, **arguments)
    done = explainer.macs / explainer.full_macs  # what it computed
    passes = passes_per_example("Occlusion", arguments, (3, 16, 16))
    assert passes == 4 * 5 + 1 and 0 < done < 1
    assert passes_per_example("Occlusion", arguments, (3, 16, 16), model) == math.ceil(
        passes * done)


def test_over_budget_is_refused_before_any_attribution_saying_what_to_lower(widgets):
    model, batches = TinyNet(), tiny_batches(3)
    with torch.no_grad():
        predicted = model(batches[0].inputs).argmax(1).item()
    batches[0].labels = [predicted]  # the only photo the model gets right
    widget = widgets(tiny_visualizer(batches, model=model), max_passes=3 * 3 * 20)
    # 3 photos x 60: allowed
    assert len(press(widget, {**IG_FAST, "arguments": {"n_steps": 20}})) == 3
    model.images = 0
    press(widget, {**IG_FAST, "arguments": {"n_steps": 21}})
    assert (widget.status["state"] == "error"
            and "63 model passes per photo, 189 for 3" in widget.status["text"])
    assert "lower n_steps" in widget.status["text"] and model.images == 3  # the predictions only
    assert labels_of(press(widget, {**IG_FAST, "arguments": {"n_steps": 21},
                                    "prediction": "correct"})) == [predicted]
    # from Python: raised
    with pytest.raises(InsightsError, match="769 model passes per photo.*use Occlusion"):
        widget.fetch("Feature Ablation")


def test_the_walkthrough_occlusion_costs_785_passes_a_photo():
    walkthrough = {"sliding_window_shapes": (3, 15, 15), "strides": (3, 8, 8)}
    # ceil(209 / 8) + 1 = 28
    assert passes_per_example("Occlusion", walkthrough, (3, 224, 224)) == 28 * 28 + 1
    assert passes_per_example("Occlusion", {"sliding_window_shapes": (3, 32, 32),
                                            "strides": (3, 32, 32)}, (3, 224, 224)) == 7 * 7 + 1


def test_each_example_once_and_paging_through_a_larger_dataset(widgets):
    widget = widgets(tiny_visualizer(tiny_batches(5)))
    assert labels_of(press(widget, IG_FAST)) == [0, 1, 2, 3]  # Insights shows 4 at a time
    assert labels_of(press(widget, IG_FAST)) == [4]  # the rest, without repeating any
    assert labels_of(press(widget, IG_FAST)) == [0, 1, 2, 3]  # then from the start again
    # a one-shot generator
    widget = widgets(tiny_visualizer(batch for batch in tiny_batches(2, per_batch=3)))
    assert labels_of(press(widget, IG_FAST)) == [0, 1, 2, 3]
    assert labels_of(press(widget, IG_FAST)) == [4, 5]
    assert labels_of(press(widget, IG_FAST)) == [0, 1, 2, 3]


def test_a_model_changed_after_opening_is_the_one_explained(widgets):
    model = TinyNet()
    widget = widgets(tiny_visualizer(tiny_batches(1), model=model))
    first = press(widget, IG_FAST)[0]["predicted"][0]["index"]
    with torch.no_grad():
        model[-1].bias[(first + 1) % 10] += 100.0  # say, a few steps of training
    assert press(widget, IG_FAST)[0]["predicted"][0]["index"] == (first + 1) % 10
    # the cancel hooks are gone after a Fetch
    assert not any(m._forward_pre_hooks for m in model.modules())


# --- off the main thread, and stopping ------------------------------------------------------------


@pytest.fixture
def slow(widgets):
    """A widget whose Fetch takes about 10 s, with no budget; and its model."""
    return slow_explorer(widgets)


def test_a_fetch_runs_in_a_thread_and_the_model_stays_usable(slow):
    widget, model = slow
    started = time.monotonic()
    widget.config = SLOW_FETCH  # what the front end's message does, on the kernel's main thread
    assert time.monotonic() - started < 0.5 and widget.status["state"] == "computing"
    wait_until_computing(model)
    with torch.no_grad():
        # the notebook's own call is not cancelled
        assert model(torch.rand(1, 3, 16, 16)).shape == (1, 10)
    assert not widget._done.is_set() and "photo 1 of 2" in widget.status["text"]


def test_a_new_fetch_replaces_a_running_one(slow):
    widget, model = slow
    widget.config = SLOW_FETCH
    wait_until_computing(model)
    started = time.monotonic()
    rows = press(widget, IG_FAST)
    assert len(rows) == 2 and time.monotonic() - started < CANCEL_S + 1
    assert (widget.status["state"] == "done"
            and "Integrated Gradients: 2 photos" in widget.status["text"])
    assert seconds_until_idle(model) < 0.5  # the first one is gone, and wrote nothing
    assert widget.output == rows


def test_stop_and_close_end_a_running_fetch(slow):
    widget, model = slow
    widget.config = SLOW_FETCH
    wait_until_computing(model)
    widget.stop("Stopped: the kernel was interrupted.")
    assert seconds_until_idle(model) < CANCEL_S
    assert (widget._done.wait(1) and widget.status["state"] == "stopped"
            and "Press Fetch" in widget.status["text"])
    assert len(press(widget, IG_FAST)) == 2  # it goes on
    widget.config = SLOW_FETCH
    wait_until_computing(model, model.calls + 5)
    started = time.monotonic()
    widget.close()
    assert time.monotonic() - started < CANCEL_S and seconds_until_idle(model) < 0.5


@pytest.mark.skipif(not Path("/proc/self/net/tcp").exists(), reason="reads Linux's /proc")
def test_the_widget_opens_no_port(widgets):
    """Everything goes over the kernel's own connection: no server, no port of its own (the
    kernel's ports are checked in the kernel test below)."""
    before = listening_ports()
    widget = widgets(tiny_visualizer(tiny_batches(2)))
    assert len(press(widget, IG_FAST)) == 2
    widget.label_details = {"inputIndex": 0, "modelIndex": 0, "labelIndex": 3}
    assert widget._done.wait(30) and widget.status["state"] == "done"
    assert listening_ports() == before


def test_open_insights_outside_a_notebook_points_to_the_command_line(capsys):
    widget = open_insights(tiny_visualizer(tiny_batches(1)))
    try:
        assert "python -m captum_course insights" in capsys.readouterr().out
    finally:
        widget.close()


# --- the Chinese edition ---------------------------------------------------------------------


def test_a_widget_of_the_chinese_edition_says_everything_in_chinese(widgets, monkeypatch):
    """Made with CAPTUM_COURSE_LANGUAGE=zh (or in notebooks/zh-CN/), the widget tells its front end
    the language and sends its statuses and errors in Chinese; the choice is fixed when it is
    made."""
    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", "zh")
    model = TinyNet(delay=0.05)
    widget = widgets(tiny_visualizer(tiny_batches(2), model=model), max_passes=100)
    monkeypatch.delenv("CAPTUM_COURSE_LANGUAGE")
    assert widget.language == "zh" and widget.explorer.language == "zh"
    assert widget.status == {"state": "idle", "text": "选择一种方法，然后点击 Fetch。",
                             "seq": 1}
    assert "实时小部件" in repr(widget)
    assert press(widget, {"attribution_method": "Magic", "arguments": {}}) == []
    assert (widget.status["state"] == "error"
            and "attribution_method 必须是以下之一" in widget.status["text"])
    # 63 passes a photo, 126 for 2: over 100
    press(widget, {**IG_FAST, "arguments": {"n_steps": 21}})
    text = widget.status["text"]
    assert (widget.status["state"] == "error" and "每张照片要做 63 次模型传播的计算" in text
            and "调低 n_steps" in text)
    assert len(press(widget, IG_FAST)) == 2
    assert (widget.status["state"] == "done"
            and widget.status["text"].startswith("Integrated Gradients：2 张照片"))
    widget.explorer.max_passes = 10 ** 9  # a Fetch long enough to stop
    widget.config = SLOW_FETCH
    wait_until_computing(model, model.calls + 5)
    widget.stop(widget._t(*INTERRUPTED))  # what Kernel -> Interrupt does
    assert widget._done.wait(CANCEL_S + 1) and widget.status["state"] == "stopped"
    assert widget.status["text"] == "已停止：内核被中断了。点击 Fetch 重新开始。"
    english = widgets(tiny_visualizer(tiny_batches(1)))  # without the variable: English
    assert english.language == "en" and english.status["text"] == "Pick a method and press Fetch."


def test_the_front_end_picks_its_own_lines_by_the_widgets_language():
    """explorer.js writes its own lines from a table, TEXTS, with an English and a Chinese
    entry for each, and picks the entry by the widget's ``language`` trait."""
    text = FRONT_END.read_text(encoding="utf-8")
    table = text.split("const TEXTS = {", 1)[1].split("\n};", 1)[0]
    english, chinese = table.split("\n  zh: {", 1)
    assert english.lstrip().startswith("en: {")

    def keys(entry: str) -> list[str]:
        return sorted(re.findall(r"^    (\w+):", entry, re.M))
    assert keys(english) == keys(chinese) and {"lost", "waiting"} <= set(keys(english))
    # the "lost" line (no heartbeat: a restart or a shutdown) and "waiting", both languages
    assert "No word from the kernel" in english and "内核已经" in chinese
    assert "Waiting for the kernel" in english and "正在等待内核" in chinese
    assert not re.search(r"[\u4e00-\u9fff]", english)
    assert "TEXTS[language] || TEXTS.en" in text
    render = text.split("\nfunction render(", 1)[1].split("\n}\n", 1)[0]
    assert re.search(r'language = model\.get\("language"\)', render)
    assert "textsFor(language)" in render and 'model.get("heartbeat_s")' in render


# --- in a real kernel ------------------------------------------------------------------------


def execute(kernel, code: str, timeout: float = 120) -> tuple[dict, list[dict]]:
    msg_id = kernel.execute(code)
    outputs = []
    while True:
        message = kernel.get_iopub_msg(timeout=timeout)
        if message["parent_header"].get("msg_id") != msg_id:
            continue
        if message["msg_type"] in ("display_data", "execute_result", "stream", "error"):
            outputs.append(message["content"])
        if message["msg_type"] == "status" and message["content"]["execution_state"] == "idle":
            break
    return kernel.get_shell_msg(timeout=timeout), outputs


def printed(kernel, expression: str) -> str:
    reply, outputs = execute(kernel, f"print({expression})")
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(o.get("text", "") for o in outputs).strip()


def calls_until_still(kernel, quiet: float = 0.5, timeout: float = 30) -> float:
    """Seconds until the kernel's models stop running (no new pass for ``quiet`` seconds)."""
    start = last_change = time.monotonic()
    last = printed(kernel, "calls[0]")
    while time.monotonic() - last_change < quiet:
        assert time.monotonic() - start < timeout, "the computation goes on"
        time.sleep(0.1)
        now = printed(kernel, "calls[0]")
        if now != last:
            last, last_change = now, time.monotonic()
    return last_change - start


def test_in_a_kernel_cells_run_during_a_fetch_and_interrupt_and_shutdown_stop_it(tmp_path):
    """The kernel JupyterLab starts: the widget displays, a Fetch leaves the kernel free for other
    cells, Kernel -> Interrupt stops it and says so, the widget hears the kernel's heartbeat, and a
    shutdown during a Fetch exits cleanly."""
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "IPYTHONDIR": str(tmp_path / "ipython"), "MPLBACKEND": "agg"}
    manager, kernel = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        kernel_ports = (listening_ports(manager.provisioner.process.pid)
                        if Path("/proc/self/net/tcp").exists() else None)
        info = manager.get_connection_info()
        assert kernel_ports is None or {info[f"{name}_port"] for name in (
            "shell", "iopub", "stdin", "control", "hb")} <= kernel_ports
        code = MAKE_VISUALIZER + ("from captum_explorer import open_insights\n"
                                  "w = open_insights(make('a'), max_passes=10**9)")
        reply, outputs = execute(kernel, code)
        assert reply["content"]["status"] == "ok", reply["content"]
        assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {})
                   for o in outputs), outputs
        fetch = f"w.config = {SLOW_FETCH!r}"
        started = time.monotonic()
        assert execute(kernel, fetch)[0]["content"]["status"] == "ok"
        assert time.monotonic() - started < 5  # the cell pressing Fetch returns at once
        before = int(printed(kernel, "calls[0]"))
        started = time.monotonic()
        # another cell, during the Fetch
        assert printed(kernel, "sum(range(10**6))") == str(sum(range(10 ** 6)))
        print(f"a cell during a Fetch: {time.monotonic() - started:.2f} s")
        deadline = time.monotonic() + 10  # the worker goes on while the kernel answers cells
        while int(printed(kernel, "calls[0]")) == before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (int(printed(kernel, "calls[0]")) > before
                and printed(kernel, "w.status['state']") == "computing")
        # no port beyond the kernel's own
        if kernel_ports is not None:
            assert listening_ports(manager.provisioner.process.pid) == kernel_ports

        # Kernel -> Interrupt, with the kernel idle and the Fetch running
        manager.interrupt_kernel()
        assert calls_until_still(kernel) < CANCEL_S
        assert printed(kernel, "w.status['text']").startswith(
            "Stopped: the kernel was interrupted.")

        beats = []
        deadline = time.monotonic() + 3 * HEARTBEAT_S
        # the heartbeat goes on without any cell running
        while not beats and time.monotonic() < deadline:
            message = kernel.get_iopub_msg(timeout=3 * HEARTBEAT_S)
            if (message["msg_type"] == "comm_msg"
                    and "beat" in json.dumps(message["content"]["data"])):
                beats.append(message)
        assert beats, "no heartbeat from the widget"

        assert execute(kernel, fetch)[0]["content"]["status"] == "ok"
        time.sleep(1)
        started = time.monotonic()
        manager.request_shutdown()
        while manager.is_alive() and time.monotonic() - started < 30:
            time.sleep(0.1)
        assert not manager.is_alive(), "the kernel did not exit during a Fetch"
        # not SIGABRT (-6) from torch in a dying thread
        assert manager.provisioner.process.returncode == 0
    finally:
        kernel.stop_channels()
        if manager.is_alive():
            manager.shutdown_kernel(now=True)
        manager.cleanup_resources()
