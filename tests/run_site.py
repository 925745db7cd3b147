"""The course website, built as `make site` builds it and read in headless Chromium from its files,
as a newcomer opens site/index.html: every page of both editions loads with no console error and
asks no other host for anything; each notebook page shows its figures and says which model made
them; search finds an English and a Chinese term; the language switch leads to the same page in
the other edition; every launch button and download names the page's notebook, which exists at
that path in the repository.

Not collected with the unit tests (its name does not start with ``test_``): `make test-site` runs
it after the parts that keep their notebook runs in build/runs/ (captum_course/site.py), so that
only the runs not kept there execute here."""
from __future__ import annotations

import html
import re
import time
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import nbformat
import pytest
from playwright.sync_api import expect, sync_playwright

from browser import launch_chromium
from captum_course.site import (EDITIONS, EXPLORER_NOTEBOOK, MODELS, ROOT, RUNS, SOURCES, Settings,
                                build_site, pages)

SETTINGS = Settings(repository="https://github.com/your-org/captum-course", branch="main",
                    jupyterhub_url="https://hub.example.org")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    start = time.perf_counter()
    runs = build_site(out, RUNS, jobs=1, settings=SETTINGS)
    seconds = time.perf_counter() - start
    ran = [r for r in runs if r.seconds]
    print(f"site built in {seconds:.0f} s, {len(ran)} of {len(runs)} notebooks run "
          f"({sum(r.seconds for r in ran):.0f} s of it)")
    assert not (out / "jupyter_execute").exists() and not (out.parent / "jupyter_execute").exists()
    return out


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def _html(site: Path, edition: str, page: str) -> Path:
    return (site if edition == "en" else site / edition) / f"{page}.html"


def _every_page(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html")
                  if "_static" not in p.parts and "_sources" not in p.parts)


def _open(browser, path: Path, query: str = ""):
    """A fresh page on ``path`` (file://), recording console errors, page errors and other hosts
    asked."""
    page = browser.new_page()
    problems = []
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("request", lambda r: None if r.url.startswith(("file://", "data:", "blob:", "about:"))
            else problems.append(f"asked another host: {r.url}"))
    page.goto(path.as_uri() + query)
    page.wait_for_load_state("load")
    return page, problems


def test_every_page_loads_without_errors_and_asks_no_other_host(site, browser):
    paths = _every_page(site)
    assert len(paths) >= 2 * len(pages("en"))
    found = {}
    for path in paths:
        page, problems = _open(browser, path)
        page.wait_for_timeout(50)  # scripts run on load
        if problems:
            found[path.relative_to(site).as_posix()] = problems
        page.close()
    assert not found


@pytest.mark.parametrize("edition", list(EDITIONS))
def test_each_notebook_page_shows_its_figures_and_names_its_model(site, browser, edition):
    made = {}
    for name, source in pages(edition).items():
        if source.suffix != ".ipynb":
            continue
        staged = nbformat.read(SOURCES / edition / f"{name}.ipynb", as_version=4)
        pictures = sum("image/png" in o.get("data", {})
                       for c in staged.cells for o in c.get("outputs", []))
        page, _ = _open(browser, _html(site, edition, name))
        shown = page.locator("main .cell_output img")
        assert shown.count() == pictures, (f"{edition}/{name}: {shown.count()} pictures shown, "
                                           f"{pictures} made")
        for image in shown.all():
            image.scroll_into_view_if_needed()
            assert image.evaluate(
                "img => img.complete && img.naturalWidth") > 0, f"{edition}/{name}"
        note = page.locator("main .admonition.note").first.inner_text()
        assert any(model in note for model in MODELS.values()), f"{edition}/{name}: {note!r}"
        page.close()
        made[name] = pictures
    # every notebook has figures but the recap, which loads no model, and notebook 05, whose
    # pictures are its live explorer's (the next test): the count above can fail
    assert made and all(n > 0 for name, n in made.items()
                        if "recap" not in name and name != EXPLORER_NOTEBOOK), made


def test_notebook_05_explorer_works_from_the_files_with_no_kernel(site, browser):
    """Notebook 05's page holds the explorer live, on results computed at build time: from
    file://, offline, Fetch shows a row per course photo with both pictures, another class
    changes its map, a method refused at its defaults says why, and the page's data stays
    under its 3 MB."""
    from captum_course.explorer_page import MAX_BYTES

    for edition in EDITIONS:
        staged = nbformat.read(SOURCES / edition / "05_captum_insights.ipynb", as_version=4)
        assert "application/vnd.jupyter.widget-view+json" not in str(staged)
        live = [o.data["text/html"] for c in staged.cells for o in c.get("outputs", [])
                if "captum-explorer-live" in o.get("data", {}).get("text/html", "")]
        assert len(live) == 1, f"{edition}: {len(live)} live explorers on notebook 05's page"
        data = re.search(r'class="captum-explorer-data">(.*?)</script>', live[0], re.S).group(1)
        assert len(data) <= MAX_BYTES, (edition, len(data))
        page, problems = _open(browser, _html(site, edition, "05_captum_insights"))
        explorer = page.locator(".captum-insights").first
        explorer.get_by_role("button", name="Fetch").click()
        maps = explorer.locator("img[alt=attribution]")
        expect(maps).to_have_count(len(re.findall(r'"base":', data)))
        expect(explorer.locator("img[alt=original]")).to_have_count(maps.count())
        for image in maps.all():
            assert image.evaluate("img => img.complete && img.naturalWidth") > 0, edition
        before = maps.first.get_attribute("src")
        explorer.get_by_role("button", name=re.compile(r"\(\d\.\d{3}\)$")).nth(1).click()
        expect(maps.first).not_to_have_attribute("src", before)
        explorer.locator("select[name=selected_method]").select_option("Feature Ablation")
        explorer.get_by_role("button", name="Fetch").click()
        status = explorer.locator(".captum-insights-status")
        expect(status).to_have_attribute("data-state", "error")
        expect(status).to_contain_text("150,529")
        assert not problems, (edition, problems)
        page.close()


@pytest.mark.parametrize("edition, term, page_name", [
    ("en", "occlusion", "03_occlusion"), ("en", "GradCAM", "04_layer_gradcam"),
    ("zh-CN", "遮挡", "03_occlusion"), ("zh-CN", "集成梯度", "02_integrated_gradients"),
    # a translation the course avoids: the glossary says which it uses
    ("zh-CN", "积分梯度", "guides/translation")])
def test_search_finds_the_page(site, browser, edition, term, page_name):
    page, problems = _open(browser, _html(site, edition, "search"), f"?q={term}")
    results = page.locator("#search-results ul.search li a")
    expect(results.first).to_be_visible(timeout=15_000)
    hrefs = [unquote(a.get_attribute("href")) for a in results.all()]
    assert any(h.split("?")[0].split("#")[0].endswith(f"{page_name}.html") for h in hrefs), hrefs
    assert not problems


@pytest.mark.parametrize("edition", list(EDITIONS))
def test_the_switch_leads_to_the_same_page_in_the_other_edition(site, browser, edition):
    other = "zh-CN" if edition == "en" else "en"
    for name in ["index", "02_integrated_gradients", "guides/cheatsheet", "guides/hub"]:
        page, _ = _open(browser, _html(site, edition, name))
        assert page.locator("html").get_attribute("lang").startswith(edition[:2])
        page.locator("a.course-language").click()
        page.wait_for_load_state("load")
        assert Path(unquote(urlsplit(page.url).path)) == _html(site, other, name).resolve()
        assert page.locator("html").get_attribute("lang").startswith(other[:2])
        page.close()


def _repository_path(href: str) -> str | None:
    """The repository path a launch or download link opens."""
    url = urlsplit(href)
    query = parse_qs(url.query)
    if "urlpath" in query:  # Binder and nbgitpuller: lab/tree/[repo/]PATH
        path = query["urlpath"][0].split("/tree/", 1)[1]
        return path.split("/", 1)[1] if "repo" in query else path
    match = re.search(r"/blob/[^/]+/(.+)$", url.path)  # Colab, GitHub
    return match.group(1) if match else None


@pytest.mark.parametrize("edition", list(EDITIONS))
def test_launch_buttons_open_the_pages_notebook_from_the_repository(site, browser, edition):
    for name, source in pages(edition).items():
        if source.suffix != ".ipynb":
            continue
        page, _ = _open(browser, _html(site, edition, name))
        links = {kind: page.locator(f"a[href*='{host}']").first.get_attribute("href")
                 for kind, host in [("binder", "mybinder.org/v2/gh"),
                                    ("jupyterhub", "hub.example.org"),
                                    ("colab", "colab.research.google.com")]}
        for kind, href in links.items():
            assert _repository_path(href) == source.relative_to(ROOT).as_posix(), (kind, href)
            assert (ROOT / _repository_path(href)).is_file()
        # nbgitpuller clones this repository and branch
        pull = parse_qs(urlsplit(links["jupyterhub"]).query)
        assert (pull["repo"], pull["branch"]) == ([SETTINGS.repository], [SETTINGS.branch])
        assert links["binder"].startswith(f"{SETTINGS.binderhub_url}"
                                          "/v2/gh/your-org/captum-course/main?")
        download = page.locator("a.btn-download-source-button").first.get_attribute("href")
        # with its outputs
        got = nbformat.read(_html(site, edition, name).parent / download, as_version=4)
        code = [[c.source for c in nb.cells if c.cell_type == "code"]
                for nb in (got, nbformat.read(source, 4))]
        assert code[0] == code[1], f"{edition}/{name}: {download} is not this notebook"
        page.close()


CJK = re.compile(r"[\u4e00-\u9fff]")
RAW_TABLE = re.compile(r"^\|.*\|\s*\n\|[\s:|-]*-{3,}[\s:|-]*\|\s*$", re.MULTILINE)


def test_the_english_pages_code_holds_no_chinese(site, browser):
    for name, source in pages("en").items():
        if source.suffix != ".ipynb":
            continue
        page, _ = _open(browser, _html(site, "en", name))
        code = "\n".join(page.locator("main .cell_input pre").all_inner_texts())
        assert code and not CJK.search(code), f"{name}: {CJK.findall(code)[:10]}"
        page.close()


def _tables_made(output) -> int:
    """The tables an output carries: HTML tables (the trust notebooks' `trust.Table`), and
    Markdown tables in a text/markdown output."""
    data = output.get("data", {})
    return (data.get("text/html", "").count("<table")
            + len(RAW_TABLE.findall(data.get("text/markdown", ""))))


@pytest.mark.parametrize("edition", list(EDITIONS))
def test_tables_a_cell_displays_render_as_tables(site, browser, edition):
    made_in_all = 0
    for name, source in pages(edition).items():
        if source.suffix != ".ipynb":
            continue
        staged = nbformat.read(SOURCES / edition / f"{name}.ipynb", as_version=4)
        made = sum(_tables_made(o) for c in staged.cells for o in c.get("outputs", []))
        made_in_all += made
        page, _ = _open(browser, _html(site, edition, name))
        shown = page.locator("main .cell_output table").count()
        text = page.locator("main").inner_text()
        assert shown >= made, f"{edition}/{name}: {shown} tables shown, {made} displayed"
        assert not re.search(r"\|\s*:?-{3,}", text), f"{edition}/{name}: a table left as raw text"
        page.close()
    # notebooks 06, 07 and 08 display their results as tables: the count above can fail
    assert made_in_all >= 12


def test_every_link_names_a_page_or_a_repository_file_that_exists(site):
    """Links between pages lead to a page of the site; links into the repository (the files that
    are not pages) name a file or folder the repository has."""
    into = re.compile(rf"^{re.escape(SETTINGS.repository)}/(blob|tree)/{SETTINGS.branch}/([^?#]+)")
    broken = []
    for path in _every_page(site):
        for href in re.findall(r'href="([^"]+)"', path.read_text(encoding="utf-8")):
            href = html.unescape(href)
            if match := into.match(href):
                target = ROOT / unquote(match.group(2))
                if not (target.is_file() if match.group(1) == "blob" else target.is_dir()):
                    broken.append((path.relative_to(site).as_posix(), href))
            elif not re.match(r"^([a-z][a-z0-9+.-]*:|#|//)", href):
                target = (path.parent / unquote(href.split("#")[0].split("?")[0])).resolve()
                if not target.exists():
                    broken.append((path.relative_to(site).as_posix(), href))
    assert not broken, f"{len(broken)} links lead nowhere: {broken[:10]}"


def test_the_note_on_each_notebook_page_leads_to_the_sites_colab_guide(site, browser):
    for edition in EDITIONS:
        page, _ = _open(browser, _html(site, edition, "02_integrated_gradients"))
        link = page.locator("main .admonition.note a").first
        target = (_html(site, edition, "02_integrated_gradients").parent
                  / unquote(link.get_attribute("href"))).resolve()
        assert target == _html(site, edition, "guides/colab").resolve(), link.get_attribute("href")
        page.close()


@pytest.mark.parametrize("edition", list(EDITIONS))
def test_the_instructor_guides_expected_outputs_are_those_of_the_kept_runs(site, edition):
    """The section `python -m captum_course expected` writes into each instructor's guide shows
    what the runs the site was built from printed, for each model the guide and the runs share
    (numbers up to their last digit: another CPU may round it differently)."""
    from captum_course import expected

    computed = expected.computed_blocks(edition, RUNS)
    written = expected.written_blocks(expected.GUIDES[edition].read_text(encoding="utf-8"))
    shared = sorted(set(computed) & set(written))
    if not shared:
        pytest.skip(f"{edition}: the guide has no block for {sorted(computed)}, the runs' model; "
                    "`python -m captum_course expected` adds it")
    stale = [m for m in shared if not expected.same(written[m], computed[m])]
    assert not stale, (f"{edition}: the guide's block of {stale} differs from the runs: "
                       "`python -m captum_course expected` writes it again")
