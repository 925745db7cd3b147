"""The course website: every notebook of both editions as a page with its outputs, and the guides.

    python -m captum_course site [--out site/] [--jobs 2]    # or: make site

The notebooks run as a machine without internet runs them: ResNet18 where its
weights are in the torch hub cache, else the offline model. Each edition runs on its own, since
the Chinese edition prints and plots in Chinese, its own code's words. A run is kept in
``build/runs/`` under a key made of the notebook's code, its edition, the model and the helper
package's source; a build whose key is there takes the kept run instead of running it again.
Test runs that execute a notebook in full the same way (``tests/test_notebook_06.py``,
``tests/run_chinese_edition.py``) keep theirs there too when ``$CAPTUM_COURSE_RUNS`` names the
folder.

Sphinx then builds each edition with myst-nb (stored outputs, nothing executed), the
sphinx-book-theme (launch buttons, download) and ``docs/conf.py``: English into ``site/``,
Chinese into ``site/zh-CN/``, searchable in its own language, each page linked to its twin.
"""
from __future__ import annotations

import functools
import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import nbformat

from captum_explorer.widget import FRONT_END
from captum_helpers.models import RESNET18_URL

from .handouts import (NOTEBOOKS_DIR, ROOT, course_notebooks, execute_notebook, model_in_use,
                       translations)
from . import explorer_page
from .jupyter import offline_env

DOCS = ROOT / "docs"
EXPLORER_NOTEBOOK = "05_captum_insights"  # its first explorer is live on its page
RUNS_ENV = "CAPTUM_COURSE_RUNS"
RUNS = ROOT / "build" / "runs"
SOURCES = ROOT / "build" / "site-sources"
EDITIONS = {"en": NOTEBOOKS_DIR, **translations()}
# The guides, as pages of the site: (page, English source, Chinese source or None: the English one).
GUIDES = [
    ("guides/cheatsheet", "cheatsheet.md", "cheatsheet.zh-CN.md"),
    ("guides/instructor", "instructor.md", "instructor.zh-CN.md"),
    ("guides/hub", "hub.md", None),
    ("guides/insights", "insights.md", None),
    ("guides/colab", "colab.md", None),
    ("guides/benchmarks", "benchmarks.md", None),
    ("guides/setup", "setup.md", None),
    ("guides/site", "site.md", None),
    ("guides/development", "development.md", None),
    ("guides/translation", "translation.zh-CN.md", "translation.zh-CN.md"),  # in Chinese in both
]
MODELS = {"resnet18": "ResNet18", "efficientnet_lite0": "EfficientNet-Lite0"}
# What a page says above its outputs, in each edition.
WORDS = {
    "en": {
        "ran": "The outputs on this page come from running the notebook on {model} "
               "({when}, {place}).",
        "offline": "the course's offline model; with internet the notebook loads ResNet18 and its "
                   "numbers differ",
        "cached": "the walkthrough's model",
        "colab": "To run it on Colab, run the set-up cell from the [Colab guide]({colab}) first.",
        "live": "Try it here: press Fetch, then click another class under Predicted. It runs in "
                "your browser on results computed when this page was built.",
        "another": "Another explorer opens here; it needs a running kernel to show anything.",
        "only_in": "This guide is in Chinese only: it is for those who keep the Chinese edition "
                   "up to date.",
    },
    "zh-CN": {
        "ran": "本页的输出来自在 {model} 上运行这个笔记本（{when}，{place}）。",
        "offline": "课程的离线模型；联网时笔记本会加载 ResNet18，数字会不同",
        "cached": "原教程使用的模型",
        "colab": "在 Colab 上运行前，请先运行 [Colab 指南]({colab})里的安装单元。",
        "live": "在这里试一试：点击 Fetch，然后点击 Predicted 下的另一个类别。"
                "它在你的浏览器里运行，用的是构建本页时算好的结果。",
        "another": "这里会再打开一个探索器；它需要一个正在运行的内核才能显示内容。",
        "only_in": "本指南目前只有英文版。",
    },
}


class Run(NamedTuple):
    """One notebook of one edition, executed (or taken from the kept runs)."""
    path: Path
    edition: str
    notebook: nbformat.NotebookNode
    seconds: float  # 0 when it was kept from an earlier run
    error: str | None


def helpers_digest() -> str:
    """A fingerprint of the code the notebooks import: a change to it makes every run stale."""
    files = [f for package in ("captum_helpers", "captum_explorer")
             for f in sorted((ROOT / package).glob("*.py")) + sorted((ROOT / package).glob("*.js"))]
    return hashlib.sha256(b"".join(f.name.encode() + f.read_bytes() for f in files)).hexdigest()


def edition_of(path: Path) -> str:
    return path.parent.name if path.parent.name in EDITIONS else "en"


def run_key(path: Path, model: str) -> str:
    """The key a run of the notebook at ``path`` on ``model`` is kept under."""
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    blob = json.dumps([code, edition_of(path), model, helpers_digest()]).encode()
    return f"{edition_of(path)}-{path.stem}-{hashlib.sha256(blob).hexdigest()[:16]}"


def keep_run(path: str | Path, executed: nbformat.NotebookNode,
             runs: str | Path | None = None) -> Path | None:
    """Keep an executed copy of the notebook at ``path`` (its own cells, outputs included) in
    ``runs`` (default: ``$CAPTUM_COURSE_RUNS``; nothing is kept when neither is set).

    The copy must have the notebook's cells, in order; a test that ran extra cells removes them
    first.
    """
    runs = runs or os.environ.get(RUNS_ENV)
    model = model_in_use(executed)
    if not runs or model is None:
        return None
    path, runs = Path(path), Path(runs)
    runs.mkdir(parents=True, exist_ok=True)
    executed = nbformat.from_dict(executed)
    code = [c for c in executed.cells
            if c.cell_type == "code" and c.get("execution_count") is not None]
    for count, cell in enumerate(code, 1):  # numbered as a Run All numbers them, whatever ran first
        cell.execution_count = count
        for output in cell.outputs:
            if output.get("output_type") == "execute_result":
                output.execution_count = count
    # what the page says
    executed.metadata["captum_course_run"] = {"date": time.strftime("%Y-%m-%d")}
    target = runs / f"{run_key(path, model)}.ipynb"
    nbformat.write(executed, target)
    return target


def with_outputs(path: Path, kept: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The notebook at ``path`` with the outputs of ``kept``, a run of the same code cells: the
    key leaves Markdown out, so the page shows today's text beside the kept run's outputs."""
    nb = nbformat.read(path, as_version=4)
    ran = [c for c in kept.cells if c.cell_type == "code"]
    for cell, done in zip([c for c in nb.cells if c.cell_type == "code"], ran, strict=True):
        cell.outputs, cell.execution_count = done.outputs, done.execution_count
    nb.metadata.update({k: v for k, v in kept.metadata.items()
                        if k in ("widgets", "captum_course_run")})
    return nb


def run_env(torch_home: str | Path) -> dict[str, str]:
    """The environment of a kernel whose run a page shows: offline (``offline_env``), with
    matplotlib's inline backend, so that figures are outputs, and the edition told by the folder."""
    env = offline_env(torch_home)
    env.pop("MPLBACKEND", None)  # the kernel's own default: inline
    env.pop("CAPTUM_COURSE_LANGUAGE", None)
    env["CAPTUM_COURSE_CHECKS"] = "strict"  # full notebooks: every check must find its answer
    return env


def build_model(torch_home: Path) -> str:
    """The model a build's notebooks load, decided as ``load_model`` does without internet."""
    # as resnet18_checkpoint()
    cached = torch_home / "hub" / "checkpoints" / os.path.basename(RESNET18_URL)
    return "resnet18" if cached.exists() else "efficientnet_lite0"


def run_notebooks(paths: list[Path], runs: Path, jobs: int = 2, torch_home: Path | None = None,
                  model: str | None = None) -> list[Run]:
    """The notebooks at ``paths``, each executed offline or taken from ``runs``; ``jobs`` at a time.

    ``model`` is the model the runs are expected to use (default: the one ``load_model`` picks
    offline with ``torch_home``, by default ``$TORCH_HOME``); a run is kept under the model it
    printed.
    """
    torch_home = torch_home or Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    model = model or build_model(torch_home)
    env = run_env(torch_home)
    if jobs > 1:  # kernels side by side: one thread each, or PyTorch's threads wait on each other
        env["OMP_NUM_THREADS"] = "1"

    def one(path: Path) -> Run:
        name = f"{edition_of(path)}/{path.name}"
        kept = runs / f"{run_key(path, model)}.ipynb"
        if kept.exists():
            print(f"{name}: kept run", flush=True)
            return Run(path, edition_of(path),
                       with_outputs(path, nbformat.read(kept, as_version=4)), 0.0, None)
        print(f"{name}: running ...", flush=True)
        done = execute_notebook(path, env=env)
        print(f"{name}: {done.seconds:.0f} s, " + (f"FAILED: {done.error}" if done.error else "ok"),
              flush=True)
        if not done.error:
            keep_run(path, done.notebook, runs)
        return Run(path, edition_of(path), done.notebook, done.seconds, done.error)

    with ThreadPoolExecutor(max(1, jobs)) as pool:  # each run is a kernel process of its own
        return list(pool.map(one, paths))


def all_notebooks(editions: list[str] | None = None) -> list[Path]:
    """Every notebook of the given editions (default: all), English first."""
    return [p for code, folder in EDITIONS.items() if editions is None or code in editions
            for p in course_notebooks(folder)]


def tidy(nb: nbformat.NotebookNode, edition: str,
         live: str | None = None) -> nbformat.NotebookNode:
    """The executed notebook as a page shows it, with no script from another host.

    A progress bar (a tqdm widget) becomes the text line tqdm prints in a terminal, from the
    widget's last state; notebook 05's first explorer becomes ``live``, the explorer on results
    computed when the site is built (``explorer_page.html``), under a caption (a second explorer,
    or the first without ``live``, a caption saying it needs a kernel); progress bars written to
    stderr keep their last line.
    """
    nb = nbformat.from_dict(nb)
    state = (nb.metadata.pop("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
             .get("state", {}))
    explorers = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            widget = state.get(view.get("model_id"), {}) if view else {}
            if widget.get("model_name") == "AnyModel":
                explorers += 1
                outputs += _explorer_outputs(edition, live if explorers == 1 else None)
            elif view:
                outputs += _progress_output(widget, state)
            elif output.get("output_type") == "stream" and "\r" in output.get("text", ""):
                output.text = output.text.rstrip("\n").split("\r")[-1] + "\n"
                outputs.append(output)
            else:
                outputs.append(output)
        cell.outputs = outputs
    return nb


def _progress_output(widget: dict, state: dict) -> list[nbformat.NotebookNode]:
    """A tqdm bar (an HBox of a label, the bar and the counts, as HTML) as the line it ends on."""
    if widget.get("model_name") != "HBoxModel":
        return []  # a widget the page cannot show
    parts = [state.get(child.removeprefix("IPY_MODEL_"), {}).get("state", {})
             for child in widget.get("state", {}).get("children", [])]
    text = html.unescape(" ".join(p["value"] for p in parts if isinstance(p.get("value"), str)))
    return [nbformat.v4.new_output("stream", name="stdout",
                                   text=re.sub(r"\s+", " ", text).strip() + "\n")]


def _explorer_outputs(edition: str, live: str | None) -> list[nbformat.NotebookNode]:
    """An explorer's place on its page: the live one under a caption, or a caption alone."""
    caption = WORDS[edition]["live" if live else "another"]
    outputs = [nbformat.v4.new_output("display_data", data={"text/markdown": f"*{caption}*",
                                                            "text/plain": caption})]
    if live:
        outputs.append(nbformat.v4.new_output("display_data", data={"text/html": live,
                                                                    "text/plain": caption}))
    return outputs


def page_notebook(run: Run, model: str, when: str,
                  explorer: dict | None = None) -> nbformat.NotebookNode:
    """The notebook of ``run`` as its page: tidied, and saying what produced its outputs;
    ``explorer``: the results its live explorer shows (``explorer_page.results``)."""
    words = WORDS[run.edition]
    found = model_in_use(run.notebook) or model
    live = None
    if explorer is not None:
        data = explorer_page.page_data(explorer, "zh" if run.edition == "zh-CN" else "en",
                                       MODELS.get(explorer["model"], explorer["model"]))
        live = explorer_page.html(data, FRONT_END.read_text(encoding="utf-8"))
    nb = tidy(run.notebook, run.edition, live)
    place = words["cached" if found == "resnet18" else "offline"]
    when = run.notebook.metadata.get("captum_course_run", {}).get("date", when)
    # the link is written from the notebook's folder, as a link of its own Markdown: relink() then
    # leads it to the guide's page
    colab = Path(os.path.relpath(DOCS / "colab.md", run.path.parent)).as_posix()
    note = (words["ran"].format(model=MODELS.get(found, found), when=when, place=place) + " "
            + words["colab"].format(colab=colab))
    title = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"), 0)
    nb.cells.insert(title + 1, nbformat.v4.new_markdown_cell(f"```{{note}}\n{note}\n```"))
    return nb


class Settings(NamedTuple):
    """Where the launch buttons and the links to files that are not pages lead (docs/site.md)."""
    repository: str = "https://github.com/your-org/captum-course"
    branch: str = "main"
    jupyterhub_url: str = ""
    binderhub_url: str = "https://mybinder.org"


@functools.cache  # every link of every page looks its target up here
def pages(edition: str) -> dict[str, Path]:
    """{page name: source file} of one edition: the notebooks, then the guides; the front page
    is ``docs/index.md`` (``docs/index.zh-CN.md``)."""
    found = {"index": DOCS / ("index.md" if edition == "en" else f"index.{edition}.md")}
    found.update({p.stem: p for p in course_notebooks(EDITIONS[edition])})
    for page, english, translated in GUIDES:
        source = DOCS / (translated if edition != "en" and translated else english)
        found[page] = source.resolve()
    return found


def page_of(target: Path, edition: str) -> str | None:
    """The page of ``edition`` that the repository file ``target`` is, if it is one."""
    if target.name in ("README.md", f"README.{edition}.md") and target.parent == ROOT:
        return "index"
    for edition_ in (edition, "en"):
        for name, source in pages(edition_).items():
            if source.resolve() == target.resolve():
                return name
    return None


LINK = re.compile(r"(\]\()([^)\s#]+)(#[^)\s]*)?(\))")


def relink(text: str, source: Path, page: str, edition: str, settings: Settings) -> str:
    """Markdown links of ``source`` (a file of the repository) as the page ``page`` needs them:
    to another page of the site, relative; to any other file of the repository, on its host."""
    up = "../" * page.count("/")

    def one(match: re.Match) -> str:
        href = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", href) or href.startswith("/"):
            return match.group(0)  # https:, mailto:, ...
        target = (source.parent / href).resolve()
        other = page_of(target, edition)
        if other is not None:
            suffix = ".ipynb" if pages(edition).get(other, Path()).suffix == ".ipynb" else ".md"
            new = up + other + suffix
        else:
            try:
                inside = target.relative_to(ROOT).as_posix()
            except ValueError:
                return match.group(0)
            kind = "tree" if target.is_dir() else "blob"
            new = f"{settings.repository}/{kind}/{settings.branch}/{inside}"
        return match.group(1) + new + (match.group(3) or "") + match.group(4)

    return LINK.sub(one, text)


def stage(edition: str, runs: dict[Path, Run], settings: Settings, when: str, out: Path,
          explorer: dict | None = None) -> None:
    """Write one edition's Sphinx sources into ``out``: its pages, links mended, notebooks
    executed; ``explorer``: the results of notebook 05's live explorer."""
    shutil.rmtree(out, ignore_errors=True)
    model = next((model_in_use(r.notebook) for r in runs.values() if model_in_use(r.notebook)), "")
    for page, source in pages(edition).items():
        target = out / (page + source.suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".ipynb":
            nb = page_notebook(runs[source], model, when,
                               explorer if source.stem == EXPLORER_NOTEBOOK else None)
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source = relink(cell.source, source, page, edition, settings)
            nbformat.write(nb, target)
            continue
        text = relink(source.read_text(encoding="utf-8"), source, page, edition, settings)
        if page == "index":
            text += toctrees(edition, notebooks_of(edition), [g[0] for g in GUIDES])
        elif source.parent == DOCS and written_in(source) != edition:
            note = WORDS[edition]["only_in"]
            text = re.sub(r"^(# .+\n)", lambda m: m.group(1) + f"\n*{note}*\n", text, count=1)
        target.write_text(text, encoding="utf-8")


def written_in(source: Path) -> str:
    """The edition a guide is written for: ``NAME.zh-CN.md`` is Chinese, the others English."""
    return next((code for code in EDITIONS
                 if code != "en" and source.name.endswith(f".{code}.md")), "en")


def notebooks_of(edition: str) -> list[str]:
    return [p.stem for p in course_notebooks(EDITIONS[edition])]


def toctrees(edition: str, notebooks: list[str], guides: list[str]) -> str:
    """The front page's tables of contents, which are also the site's navigation."""
    caption = {"en": ("Notebooks", "Guides"), "zh-CN": ("笔记本", "指南")}[edition]
    return "".join(f"\n```{{toctree}}\n:caption: {name}\n:maxdepth: 1\n:hidden:\n\n"
                   + "\n".join(entries) + "\n```\n"
                   for name, entries in zip(caption, (notebooks, guides)))


def glossary_terms() -> list[str]:
    """The Chinese terms of the glossary (docs/translation.zh-CN.md), those the course uses and
    those it avoids: whole words for the Chinese search, which would otherwise index 积分梯度
    only as 积分 and 梯度 and so find no page for it."""
    text = (DOCS / "translation.zh-CN.md").read_text(encoding="utf-8").split("## 术语表", 1)[1]
    rows = [line for line in text.splitlines()
            if line.startswith("| ") and "---" not in line][1:]  # less the header
    cells = [cell for line in rows for cell in line.split("|")[2:4]]
    return sorted({t for t in re.findall(r"[\u4e00-\u9fff]{2,}", " ".join(cells))})


def check_runs(runs: list[Run]) -> None:
    """Raise ``RuntimeError`` naming every run that failed."""
    failed = [f"{r.edition}/{r.path.name}: {r.error}" for r in runs if r.error]
    if failed:
        raise RuntimeError("notebooks failed: " + "; ".join(failed))


def explorer_results(runs_dir: str | Path = RUNS) -> dict:
    """Notebook 05's live explorer's results for the build's model, kept in ``runs_dir``."""
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    return explorer_page.results(build_model(torch_home), Path(runs_dir))


def build_site(out: str | Path = ROOT / "site", runs_dir: str | Path = RUNS, jobs: int = 2,
               settings: Settings = Settings(), sources: Path = SOURCES) -> list[Run]:
    """Run (or take the kept runs of) every notebook, then build both editions into ``out``.

    Raises ``RuntimeError`` when a notebook fails or Sphinx warns (the build treats warnings as
    errors); returns the runs.
    """
    out, runs_dir = Path(out), Path(runs_dir)
    runs = run_notebooks(all_notebooks(), runs_dir, jobs)
    check_runs(runs)
    by_path = {r.path: r for r in runs}
    when = time.strftime("%Y-%m-%d")
    if out.is_dir() and any(out.iterdir()):
        if not (out / ".buildinfo").exists():  # Sphinx leaves it in every site it builds
            raise RuntimeError(f"{out} holds files this command did not write: "
                               "choose a new or empty folder")
        shutil.rmtree(out)
    explorer = explorer_results(runs_dir)
    for edition in EDITIONS:
        stage(edition, by_path, settings, when, sources / edition, explorer)
    words = sources / "search-words.txt"
    words.write_text("".join(f"{term} 1000 n\n" for term in glossary_terms()), encoding="utf-8")
    for edition in EDITIONS:
        others = [name for other in EDITIONS if other != edition for name in pages(other)]
        context = dict(settings._asdict(), other_pages=others, search_words=str(words))
        env = dict(os.environ, COURSE_EDITION=edition, COURSE_SITE=json.dumps(context))
        html = sources / "html" / edition  # myst-nb also writes jupyter_execute/ beside it
        shutil.rmtree(html, ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-q",
             "-c", str(DOCS), "-d", str(sources / f".doctrees-{edition}"),
             str(sources / edition), str(html)],
            env=env, text=True, capture_output=True)
        if done.returncode:
            raise RuntimeError(f"Sphinx ({edition}) failed:\n{done.stderr}{done.stdout}")
        target = out if edition == "en" else out / edition
        shutil.copytree(html, target, dirs_exist_ok=True)
        print(f"{edition}: {target / 'index.html'}", flush=True)
    return runs
