"""Course materials for instructors: learner copies without solutions, and HTML handouts.

    python -m captum_course learner  [--out learner/]   # notebooks minus cells tagged "solution"
    python -m captum_course handouts [--out site/]      # execute every notebook, write HTML + index

Both are nbconvert's own preprocessors (TagRemovePreprocessor, ClearOutputPreprocessor,
ExecutePreprocessor) and its HTMLExporter, plus a small index page.

Both build every edition of the course: the English notebooks of ``notebooks/`` and each
translation in a subfolder of it (``notebooks/zh-CN/``), into the same subfolder of the output
(``learner/zh-CN/``, ``site/zh-CN/``). A translation's code cells are the English ones byte for
byte (tests/test_translations.py), so its handouts take the outputs of the English run instead of
computing everything twice.
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import nbformat
from nbconvert import HTMLExporter
from nbconvert.preprocessors import (
    CellExecutionError,
    ClearOutputPreprocessor,
    ExecutePreprocessor,
    TagRemovePreprocessor,
)

from captum_helpers.assets import course_root

ROOT = course_root()
NOTEBOOKS_DIR = ROOT / "notebooks"
SOLUTION_TAG = "solution"
LEARNER_KEY = "captum_course"  # notebook metadata of a learner copy
TRANSLATIONS = {"zh-CN": "中文"}  # subfolder of notebooks/ -> the name of its language, in it
CELL_TIMEOUT_S = 600  # the slowest cell (Occlusion on ResNet18) takes about a minute on 2 cores


class Executed(NamedTuple):
    """One notebook run top to bottom in a fresh kernel."""
    path: Path
    notebook: nbformat.NotebookNode  # with the outputs it produced, up to the failing cell
    seconds: float
    error: str | None  # None when every cell ran


def course_notebooks(notebooks_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """The notebooks of ``notebooks_dir`` in course order: the ``*.ipynb`` files named 00_..., 01_..."""
    paths = sorted(p for p in Path(notebooks_dir).glob("*.ipynb") if re.match(r"\d\d_", p.name))
    if not paths:
        raise FileNotFoundError(f"no notebooks (*.ipynb) in {notebooks_dir}")
    return paths


def learner_notebook(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """A copy of ``nb`` without its cells tagged ``solution`` and with outputs cleared.

    Returns the copy and how many cells were removed. Other cells keep their tags, so the
    ``exercise`` stubs stay recognizable.
    """
    copy = nbformat.from_dict(nb)  # a deep copy: the preprocessors change what they get
    before = len(copy.cells)
    remove = TagRemovePreprocessor(remove_cell_tags={SOLUTION_TAG}, enabled=True)
    copy, _ = remove.preprocess(copy, {})
    copy, _ = ClearOutputPreprocessor().preprocess(copy, {})
    return copy, before - len(copy.cells)


def translations(notebooks_dir: str | Path = NOTEBOOKS_DIR) -> dict[str, Path]:
    """The translated editions kept in subfolders of ``notebooks_dir``: {"zh-CN": .../zh-CN}."""
    found = {code: Path(notebooks_dir) / code for code in TRANSLATIONS}
    return {code: folder for code, folder in found.items() if any(folder.glob("*.ipynb"))}


def link_photos(out: str | Path, notebooks_dir: str | Path) -> None:
    """Make ``../img`` from ``out`` the folder that ``../img`` from ``notebooks_dir`` is.

    The notebooks open their photos as ``../img/NAME``; copies written one folder deeper
    (``learner/zh-CN/``) need ``learner/img``: a relative link, or a copy where links are refused.
    """
    photos, wanted = (Path(notebooks_dir) / ".." / "img").resolve(), Path(out).resolve().parent / "img"
    if not photos.is_dir() or wanted.exists() or wanted.is_symlink():
        return
    try:
        wanted.symlink_to(os.path.relpath(photos, wanted.parent), target_is_directory=True)
    except OSError:  # Windows without the right to make links
        shutil.copytree(photos, wanted)


class LearnerCopy(NamedTuple):
    """What regenerating one learner copy did."""
    removed: int  # solution cells left out
    status: str  # "written", "up to date", or "kept": the learner had changed it
    beside: Path | None = None  # where the new copy went instead, when the learner's was kept


def sources_digest(nb: nbformat.NotebookNode) -> str:
    """A fingerprint of what a learner writes: every cell's type and source, in order."""
    return hashlib.sha256(json.dumps([[c.cell_type, c.source] for c in nb.cells]).encode()).hexdigest()


def _read(path: Path) -> nbformat.NotebookNode | None:
    """The notebook at ``path``, or None when what is there does not read as one."""
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # noqa: BLE001: whatever is there is the learner's
        return None


def learner_changed(nb: nbformat.NotebookNode | None) -> bool:
    """Whether a learner copy holds cells other than those it was written with.

    Each copy records the fingerprint of its cells when it is written (notebook metadata
    ``captum_course.written``); running cells changes outputs only, which do not count. A file
    without the record, or one that does not read as a notebook (None), counts as changed.
    """
    return nb is None or nb.metadata.get(LEARNER_KEY, {}).get("written") != sources_digest(nb)


def write_learner_copy(copy: nbformat.NotebookNode, target: Path) -> tuple[str, Path | None]:
    """Write ``copy`` to ``target`` unless that would lose a learner's edits: (status, beside)."""
    digest = sources_digest(copy)
    copy.metadata[LEARNER_KEY] = {"written": digest}
    if target.exists():
        there = _read(target)
        if learner_changed(there):
            beside = target.with_name(f"{target.stem}.new.ipynb")
            if not beside.exists() or not learner_changed(_read(beside)):
                nbformat.write(copy, beside)
            return "kept", beside
        if there.metadata[LEARNER_KEY]["written"] == digest:
            return "up to date", None  # the same cells: the learner's outputs stay
    nbformat.write(copy, target)
    return "written", None


def build_learner_copies(
    out: str | Path, notebooks_dir: str | Path = NOTEBOOKS_DIR, editions: bool = True
) -> dict[Path, LearnerCopy]:
    """Write a learner copy of every notebook into ``out``; return {path: what was done}.

    Put ``out`` beside ``notebooks_dir`` (same depth) so the notebooks' ``../img/...`` paths work.
    With ``editions``, each translation (``notebooks_dir/zh-CN``) goes to the same subfolder of ``out``.
    Running it again never overwrites a copy the learner changed: theirs stays, and the course's
    new copy is written beside it as ``NAME.new.ipynb``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    link_photos(out, notebooks_dir)
    written = {}
    for path in course_notebooks(notebooks_dir):
        copy, removed = learner_notebook(nbformat.read(path, as_version=4))
        target = out / path.name
        written[target] = LearnerCopy(removed, *write_learner_copy(copy, target))
    for code, folder in (translations(notebooks_dir) if editions else {}).items():
        written.update(build_learner_copies(out / code, folder, editions=False))
    return written


def execute_notebook(
    path: str | Path, timeout: int = CELL_TIMEOUT_S, notebook: nbformat.NotebookNode | None = None
) -> Executed:
    """Run a notebook top to bottom in a fresh kernel started in its own folder.

    ``timeout`` is per cell, in seconds; ``notebook``, if given, runs instead of the file's
    contents (still in the file's folder). A failing cell stops the run; the error is returned,
    not raised, so a caller can report every notebook. The file itself is not changed.
    """
    path = Path(path)
    nb = notebook if notebook is not None else nbformat.read(path, as_version=4)
    executor = ExecutePreprocessor(timeout=timeout)
    start = time.perf_counter()
    try:
        executor.preprocess(nb, {"metadata": {"path": str(path.parent)}})
        error = None
    except (CellExecutionError, TimeoutError, RuntimeError) as err:  # a cell's error, a timeout, a dead kernel
        error = first_line(err)
    return Executed(path, nb, time.perf_counter() - start, error)


def model_in_use(nb: nbformat.NotebookNode) -> str | None:
    """The model an executed notebook ran on, from the ``Model: ...`` line ``load_model`` prints."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            match = re.search(r"^Model: (\S+)", output.get("text", ""), re.MULTILINE)
            if match:
                return match.group(1)
    return None


def build_handouts(
    out: str | Path, notebooks_dir: str | Path = NOTEBOOKS_DIR, timeout: int = CELL_TIMEOUT_S, editions: bool = True
) -> list[Executed]:
    """Execute every notebook of ``notebooks_dir`` and write ``out/<name>.html`` plus ``out/index.html``.

    A notebook that fails is still written, up to the failing cell, and marked in the index. With
    ``editions``, each translation goes to ``out/<code>/`` (its own index, a link to switch language
    on both) and takes its outputs from the English run; a translated notebook whose code is not
    the English code runs on its own. Returns the runs of every edition.
    """
    out, notebooks_dir = Path(out), Path(notebooks_dir)
    language = notebooks_dir.name if notebooks_dir.name in TRANSLATIONS else "en"
    runs = [_handout(path, out, timeout) for path in course_notebooks(notebooks_dir)]
    others = translations(notebooks_dir) if editions and language == "en" else {}
    (out / "index.html").write_text(
        index_page(runs, language, switch=[(f"{code}/index.html", code) for code in others]), encoding="utf-8")
    english = {run.path.name: run for run in runs}
    for code, folder in others.items():
        translated = [_handout(path, out / code, timeout, english.get(path.name)) for path in course_notebooks(folder)]
        (out / code / "index.html").write_text(
            index_page(translated, code, switch=[("../index.html", "en")]), encoding="utf-8")
        runs += translated
    return runs


def with_outputs_of(nb: nbformat.NotebookNode, run: Executed) -> nbformat.NotebookNode | None:
    """``nb`` with the outputs of ``run``, if its code cells are the ones that ran; None otherwise."""
    ran = run.notebook.cells
    if [(c.cell_type, c.source if c.cell_type == "code" else "") for c in nb.cells] != [
            (c.cell_type, c.source if c.cell_type == "code" else "") for c in ran]:
        return None
    copy = nbformat.from_dict(nb)
    for cell, done in zip(copy.cells, ran):
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = done.get("outputs", []), done.get("execution_count")
    return copy


def _handout(path: Path, out: Path, timeout: int, english: Executed | None = None) -> Executed:
    """Run one notebook (or take the English run's outputs) and write it as ``out/<name>.html``."""
    merged = with_outputs_of(nbformat.read(path, as_version=4), english) if english else None
    if merged is not None:
        run = Executed(path, merged, english.seconds, english.error)
        print(f"{path.parent.name}/{path.name}: outputs of the English run", flush=True)
    else:
        print(f"Executing {path.name} ...", flush=True)
        run = execute_notebook(path, timeout=timeout)
        print(f"  {run.seconds:.0f} s, " + (f"FAILED: {run.error}" if run.error else "ok"), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    body, _ = HTMLExporter(embed_images=True).from_notebook_node(
        run.notebook, resources={"metadata": {"path": str(path.parent)}})
    (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
    return run


def notebook_title(nb: nbformat.NotebookNode, default: str) -> str:
    """The text of the notebook's first Markdown heading, or ``default``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#+\s+(.+)$", cell.source, re.MULTILINE)
            if match:
                return match.group(1).strip()
    return default


LANGUAGES = ("en", "zh-CN")
# The index page's words, each key with its English and its Chinese, side by side.
INDEX_WORDS = {
    "title": ("Model understanding with Captum", "使用 Captum 理解模型"),
    "page": ("Model understanding with Captum: notebooks", "使用 Captum 理解模型：课程笔记本"),
    "columns": (("notebook", "title", "run time", "status"), ("笔记本", "标题", "运行时间", "状态")),
    "executed": ("The course notebooks, executed {when}", "课程笔记本，运行于 {when}"),
    "model": (" with the model {models}", "，使用的模型：{models}"),
    "read": (". Read ahead or catch up here; run them yourself in JupyterLab.",
             "。可以在这里预习或补课，也可以在 JupyterLab 中自己运行。"),
    "ok": ("ran without errors", "运行无错误"),
    "failed": ("failed: {error}", "失败：{error}"),
    "name": ("English", "中文"),
}
INDEX_TEXT = {language: {key: words[i] for key, words in INDEX_WORDS.items()} for i, language in enumerate(LANGUAGES)}


def index_page(runs: list[Executed], language: str = "en", switch: list[tuple[str, str]] = ()) -> str:
    """The handouts' index.html: one row per notebook with its link, title and run time.

    ``language`` picks the page's words ("en", "zh-CN"); ``switch`` lists (href, language) links
    to the other editions' index pages.
    """
    text = INDEX_TEXT[language]
    rows = []
    for run in runs:
        status = text["failed"].format(error=html.escape(run.error)) if run.error else text["ok"]
        rows.append(
            f'<tr><td><a href="{html.escape(run.path.stem)}.html">{html.escape(run.path.stem)}</a></td>'
            f"<td>{html.escape(notebook_title(run.notebook, run.path.stem))}</td>"
            f"<td>{run.seconds:.0f} s</td><td>{status}</td></tr>"
        )
    models = sorted({m for m in (model_in_use(r.notebook) for r in runs) if m})
    links = " | ".join(f'<a href="{html.escape(href)}" hreflang="{code}" lang="{code}">{INDEX_TEXT[code]["name"]}</a>'
                       for href, code in switch)
    return (
        f'<!DOCTYPE html>\n<html lang="{language}"><head><meta charset="utf-8">\n'
        f"<title>{text['page']}</title>\n"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{padding:.3em .8em;text-align:left}.language{float:right}</style></head><body>\n"
        + (f'<p class="language">{links}</p>\n' if links else "")
        + f"<h1>{text['title']}</h1>\n"
        f"<p>{text['executed'].format(when=time.strftime('%Y-%m-%d %H:%M'))}"
        + (text["model"].format(models=", ".join(models)) if models else "")
        + text["read"] + "</p>\n<table><tr>" + "".join(f"<th>{c}</th>" for c in text["columns"]) + "</tr>\n"
        + "\n".join(rows)
        + "\n</table></body></html>\n"
    )


def first_line(err: Exception) -> str:
    """The exception a cell raised (``ZeroDivisionError: division by zero``), or the error's first line."""
    if getattr(err, "ename", None):
        return f"{err.ename}: {err.evalue}"[:200]
    lines = [line for line in str(err).splitlines() if line.strip()]
    return (lines or [type(err).__name__])[0][:200]
