"""Captum Insights in a real headless Chromium: the served page, notebook 05 run inside
JupyterLab 4 (the full notebook, whose solutions open more explorers), Notebook 7 and the classic
Notebook (the learner copy, what a class opens), and the page behind jupyter-server-proxy as on
JupyterHub.

Needs Debian's ``chromium`` and the ``playwright`` package (see tests/browser.py); without
them these tests skip locally and fail under CI=true. Nothing here reaches the internet.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest

from browser import JupyterServer, launch_chromium, skip_or_fail
from captum_course.handouts import learner_notebook
from captum_course.insights import build_visualizer
from captum_helpers import categories, photo_label, photo_paths

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "notebooks" / "05_captum_insights.ipynb"
FETCH_TIMEOUT_MS = 180_000  # Integrated Gradients on 3 photos takes seconds; a busy CI runner, longer
FIRST_PAGE = photo_paths()[:4]  # Insights shows 4 examples a Fetch, whatever img/ holds

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
def insights(lite0, insights_server):
    """Notebook 05's explorer served from this process (conftest's shared fixture)."""
    return lambda **kwargs: insights_server(build_visualizer(lite0), **kwargs)


def fetch_and_check_rows(frame) -> None:
    """Press Fetch in an Insights page (a Page or a FrameLocator); check what a user sees:
    one row per photo with its predicted classes, its label and two pictures."""
    frame.get_by_role("button", name="Fetch").click()
    originals = frame.locator("img[alt=original]")
    expect(originals).to_have_count(len(FIRST_PAGE), timeout=FETCH_TIMEOUT_MS)
    expect(frame.locator("img[alt=attribution]")).to_have_count(len(FIRST_PAGE))
    for image in [*originals.all(), *frame.locator("img[alt=attribution]").all()]:
        expect(image).to_have_attribute("src", re.compile(r"^data:image/png;base64,."))
        assert image.evaluate("img => img.complete && img.naturalWidth") > 0  # a picture that decodes
    expect(frame.locator("text=Photo (Image)")).to_have_count(len(FIRST_PAGE))  # each photo once
    page_text = frame.locator("body").inner_text()
    for path in FIRST_PAGE:
        assert categories()[photo_label(path)] in page_text
    assert "espresso (0." in page_text and "missile (0." in page_text  # predictions with scores


def test_served_page_fetch_shows_one_row_per_photo(page, insights):
    handle = insights()
    assert page.goto(handle.url.replace(handle.token, "not-the-token")).status == 403
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
    expect(page.get_by_role("alert")).to_contain_text("150,529 times per photo")  # and what to lower
    expect(page.get_by_text("CAPTUM INSIGHTS", exact=False)).to_be_visible()  # the page is still there


@pytest.mark.parametrize("app, path, learner", [("lab", "lab/tree/notebooks/", False),
                                               ("notebook", "notebooks/notebooks/", True)],
                         ids=["jupyterlab-4", "notebook-7"])
def test_notebook_05_run_all_shows_insights_and_fetches(page, tmp_path, app, path, learner):
    """Start JupyterLab or Notebook 7, open notebook 05, Run All Cells, use Insights in the output."""
    notebook = _course(tmp_path, learner)
    with JupyterServer(app, root_dir=tmp_path / "course", tmp_path=tmp_path) as lab:
        page.goto(lab.url(f"{path}{NOTEBOOK.name}?token={lab.token}"))
        lab.wait_for_kernel()
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

        iframe = page.locator(".jp-OutputArea-output iframe")
        expect(iframe).to_have_count(_open_insights_calls(notebook), timeout=180_000)  # solutions open more
        iframe.first.scroll_into_view_if_needed()
        frame = page.frame_locator(".jp-OutputArea-output iframe").first
        expect(frame.get_by_text("Instance Attribution")).to_be_visible(timeout=60_000)
        fetch_and_check_rows(frame)
        outputs = page.locator(".jp-OutputArea-output").all_text_contents()
        assert any("Model: efficientnet_lite0" in text for text in outputs), outputs  # the offline model


def test_notebook_05_run_all_in_the_classic_notebook(page, tmp_path):
    """The same in the classic Notebook (nbclassic), on the learner copy: its own menus and output areas."""
    notebook = _course(tmp_path, learner=True)
    with JupyterServer("nbclassic", root_dir=tmp_path / "course", tmp_path=tmp_path) as classic:
        page.goto(classic.url(f"nbclassic/notebooks/notebooks/{NOTEBOOK.name}?token={classic.token}"))
        classic.wait_for_kernel()
        expect(page.locator("#kernel_indicator_icon.kernel_idle_icon")).to_be_attached(timeout=120_000)
        page.locator("#celllink").click()  # Cell -> Run All
        page.locator("#run_all_cells a").click()

        iframe = page.locator(".output_area iframe")
        expect(iframe).to_have_count(_open_insights_calls(notebook), timeout=180_000)
        iframe.first.scroll_into_view_if_needed()
        frame = page.frame_locator(".output_area iframe").first
        expect(frame.get_by_text("Instance Attribution")).to_be_visible(timeout=60_000)
        fetch_and_check_rows(frame)
        outputs = page.locator(".output_area").all_text_contents()
        assert any("Model: efficientnet_lite0" in text for text in outputs), outputs


def _open_insights_calls(path):
    cells = json.loads(path.read_text())["cells"]
    return sum(len(re.findall(r"^\w+ = open_insights\(", "".join(c["source"]), re.M))
               for c in cells if c["cell_type"] == "code")


def _course(tmp_path, learner: bool) -> Path:
    """A course folder in ``tmp_path`` with notebook 05, or its learner copy, and the photos; the
    browser's kernel writes outputs there, never into the repository."""
    notebooks = tmp_path / "course" / "notebooks"
    notebooks.mkdir(parents=True)
    if learner:
        nbformat.write(learner_notebook(nbformat.read(NOTEBOOK, as_version=4))[0], notebooks / NOTEBOOK.name)
    else:
        shutil.copy(NOTEBOOK, notebooks)
    (tmp_path / "course" / "img").symlink_to(ROOT / "img")
    return notebooks / NOTEBOOK.name


def test_behind_jupyter_server_proxy_as_on_jupyterhub(page, insights, tmp_path, monkeypatch):
    """A Jupyter server with a token and base URL /user/alice/, as JupyterHub starts one; the
    kernel's explorer is reached at {prefix}proxy/{port}/, through the Jupyter server."""
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    handle = insights()
    assert handle.url == f"/user/alice/proxy/{handle.port}/{handle.token}/"
    with JupyterServer("server", root_dir=tmp_path, tmp_path=tmp_path, base_url="/user/alice/") as jupyter:
        denied = page.goto(f"http://127.0.0.1:{jupyter.port}{handle.url}")
        assert denied.status in (302, 403) or "login" in page.url  # the proxy needs the token
        page.goto(f"http://127.0.0.1:{jupyter.port}{handle.url}?token={jupyter.token}")
        expect(page.get_by_text("Instance Attribution")).to_be_visible()
        assert page.url.startswith(f"http://127.0.0.1:{jupyter.port}/user/alice/proxy/{handle.port}/")
        fetch_and_check_rows(page)
        # logged in to Jupyter, as another user of the hub's machine could be: still no way in
        for path in ["", "init", "static/js/"]:
            assert page.goto(f"http://127.0.0.1:{jupyter.port}/user/alice/proxy/{handle.port}/{path}").status == 403
