"""Captum Insights in a real headless Chromium: the served page, notebook 05 run inside
JupyterLab, and the page behind jupyter-server-proxy as on JupyterHub.

Needs Debian's ``chromium`` and the ``playwright`` package (see tests/browser.py); without
them these tests skip locally and fail under CI=true. Nothing here reaches the internet.
"""
from __future__ import annotations

import json
import re
import shutil
import threading
from pathlib import Path

import pytest

from browser import JupyterServer, launch_chromium, skip_or_fail
from captum_helpers.insights import build_visualizer, serve

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05_captum_insights.ipynb"
SERVER_LIFETIME_S = 300.0
FETCH_TIMEOUT_MS = 180_000  # Integrated Gradients on 3 photos takes seconds; a busy CI runner, longer
PHOTO_LABELS = ["tabby", "espresso", "missile"]

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # reported by the `browser` fixture, so that CI fails rather than skips
    sync_playwright = None


@pytest.fixture(scope="module")
def browser():
    if sync_playwright is None:
        skip_or_fail("the playwright package is not installed")
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.fixture
def insights(lite0):
    """Notebook 05's explorer served from this process, stopped after the test."""
    handles = []

    def start(**kwargs):
        handle = serve(build_visualizer(lite0), **kwargs)
        watchdog = threading.Timer(SERVER_LIFETIME_S, handle.stop)
        watchdog.daemon = True
        watchdog.start()
        handles.append((handle, watchdog))
        return handle

    yield start
    for handle, watchdog in handles:
        watchdog.cancel()
        handle.stop()


def fetch_and_check_rows(frame) -> None:
    """Press Fetch in an Insights page (a Page or a FrameLocator); check what a user sees:
    one row per photo with its predicted classes, its label and two pictures."""
    frame.get_by_role("button", name="Fetch").click()
    originals = frame.locator("img[alt=original]")
    expect(originals).to_have_count(3, timeout=FETCH_TIMEOUT_MS)
    expect(frame.locator("img[alt=attribution]")).to_have_count(3)
    for image in [*originals.all(), *frame.locator("img[alt=attribution]").all()]:
        expect(image).to_have_attribute("src", re.compile(r"^data:image/png;base64,."))
        assert image.evaluate("img => img.complete && img.naturalWidth") == 224
    rows = frame.locator("text=Photo (Image)")
    expect(rows).to_have_count(3)
    page_text = frame.locator("body").inner_text()
    for label in PHOTO_LABELS:
        assert label in page_text
    assert "espresso (0." in page_text and "missile (0." in page_text  # predictions with scores


def test_served_page_fetch_shows_one_row_per_photo(page, insights):
    handle = insights()
    page.goto(handle.url)
    expect(page.get_by_text("Integrated Gradients", exact=True)).to_be_attached()
    fetch_and_check_rows(page)


def test_page_filters_by_class_and_reports_refused_settings(page, insights):
    handle = insights()
    page.goto(handle.url)
    page.get_by_placeholder("add new class...").press_sequentially("espresso")
    page.get_by_role("option", name="espresso", exact=True).click()  # not "espresso maker"
    page.get_by_role("button", name="Fetch").click()
    expect(page.locator("img[alt=original]")).to_have_count(1, timeout=FETCH_TIMEOUT_MS)

    page.select_option("select[name=selected_method]", "Feature Ablation")
    page.get_by_role("button", name="Fetch").click()
    expect(page.get_by_role("alert")).to_contain_text("150,528")
    expect(page.get_by_text("CAPTUM INSIGHTS", exact=False)).to_be_visible()  # the page is still there


def test_notebook_05_in_jupyterlab_shows_insights_and_fetches(page, tmp_path):
    """Start JupyterLab, open notebook 05, Run All Cells, use Insights inside the output."""
    notebooks = tmp_path / "course" / "notebooks"
    notebooks.mkdir(parents=True)
    shutil.copy(NOTEBOOK, notebooks)  # the browser's kernel writes outputs; keep the repo's copy clean
    (tmp_path / "course" / "img").symlink_to(ROOT / "img")
    with JupyterServer("lab", root_dir=tmp_path / "course", tmp_path=tmp_path) as lab:
        page.goto(lab.url(f"lab/tree/notebooks/{NOTEBOOK.name}?token={lab.token}"))
        lab.wait_for_kernel()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

        iframe = page.locator(".jp-OutputArea-output iframe")
        expect(iframe).to_have_count(_open_insights_calls(NOTEBOOK), timeout=180_000)  # solutions open more
        iframe.first.scroll_into_view_if_needed()
        frame = page.frame_locator(".jp-OutputArea-output iframe").first
        expect(frame.get_by_text("Instance Attribution")).to_be_visible(timeout=60_000)
        fetch_and_check_rows(frame)
        outputs = page.locator(".jp-OutputArea-output").all_text_contents()
        assert any("Model: efficientnet_lite0" in text for text in outputs), outputs  # the offline model


def _open_insights_calls(path):
    cells = json.loads(path.read_text())["cells"]
    return sum("open_insights(" in "".join(c["source"]) for c in cells if c["cell_type"] == "code")


def test_behind_jupyter_server_proxy_as_on_jupyterhub(page, insights, tmp_path, monkeypatch):
    """A Jupyter server with a token and base URL /user/alice/, as JupyterHub starts one; the
    kernel's explorer is reached at {prefix}proxy/{port}/, through the Jupyter server."""
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    handle = insights()
    assert handle.url == f"/user/alice/proxy/{handle.port}/"
    with JupyterServer("server", root_dir=tmp_path, tmp_path=tmp_path, base_url="/user/alice/") as jupyter:
        denied = page.goto(f"http://127.0.0.1:{jupyter.port}{handle.url}")
        assert denied.status in (302, 403) or "login" in page.url  # the proxy needs the token
        page.goto(f"http://127.0.0.1:{jupyter.port}{handle.url}?token={jupyter.token}")
        expect(page.get_by_text("Instance Attribution")).to_be_visible()
        assert page.url.startswith(f"http://127.0.0.1:{jupyter.port}/user/alice/proxy/{handle.port}/")
        fetch_and_check_rows(page)
