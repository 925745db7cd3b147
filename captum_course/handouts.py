"""Course materials for instructors: the notebooks in course order, learner copies without
solutions, and a notebook run top to bottom in a fresh kernel (for make times, make site).

    python -m captum_course learner  [--out learner/]   # notebooks minus cells tagged "solution"

Learner copies are nbconvert's own preprocessors (TagRemovePreprocessor, ClearOutputPreprocessor),
written for every edition of the course: the English notebooks of ``notebooks/`` and each
translation in a subfolder of it (``notebooks/zh-CN/``), into the same subfolder of the output
(``learner/zh-CN/``). The website (``captum_course/site.py``) replaced the HTML handouts.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import NamedTuple

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert.preprocessors import ClearOutputPreprocessor, TagRemovePreprocessor

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
    """The notebooks of ``notebooks_dir`` in course order: the ``*.ipynb`` files named 00_...,
    01_..."""
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
    photos, wanted = ((Path(notebooks_dir) / ".." / "img").resolve(),
                      Path(out).resolve().parent / "img")
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
    return hashlib.sha256(
        json.dumps([[c.cell_type, c.source] for c in nb.cells]).encode()).hexdigest()


def _read(path: Path) -> nbformat.NotebookNode | None:
    """The notebook at ``path``, or None when what is there does not read as one."""
    try:
        return nbformat.read(path, as_version=4)
    except Exception:  # any error: whatever is there is the learner's
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
    With ``editions``, each translation (``notebooks_dir/zh-CN``) goes to the same subfolder of
    ``out``.
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
    path: str | Path, timeout: int = CELL_TIMEOUT_S, notebook: nbformat.NotebookNode | None = None,
    env: dict[str, str] | None = None,
) -> Executed:
    """Run a notebook top to bottom in a fresh kernel started in its own folder.

    ``timeout`` is per cell, in seconds; ``notebook``, if given, runs instead of the file's
    contents (still in the file's folder); ``env`` is the kernel's environment (default: this
    process's). A failing cell stops the run; the error is returned, not raised, so a caller can
    report every notebook. The file itself is not changed.
    """
    path = Path(path)
    nb = notebook if notebook is not None else nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute(**({"env": env} if env is not None else {}))
        error = None
    # a cell's error, a timeout, a dead kernel
    except (CellExecutionError, TimeoutError, RuntimeError) as err:
        error = first_line(err)
    return Executed(path, nb, time.perf_counter() - start, error)


def model_in_use(nb: nbformat.NotebookNode) -> str | None:
    """The model an executed notebook ran on, from the ``Model: ...`` line ``load_model`` prints."""
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            match = re.search(r"^(?:Model: |模型：)([\w.-]+)", output.get("text", ""), re.MULTILINE)
            if match:
                return match.group(1)
    return None


def first_line(err: Exception) -> str:
    """The exception a cell raised (``ZeroDivisionError: division by zero``), or the error's first
    line."""
    if getattr(err, "ename", None):
        return f"{err.ename}: {err.evalue}"[:200]
    lines = [line for line in str(err).splitlines() if line.strip()]
    return (lines or [type(err).__name__])[0][:200]
