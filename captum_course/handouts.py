"""Course materials for instructors: learner copies without solutions, and HTML handouts.

    python -m captum_course learner  [--out learner/]   # notebooks minus cells tagged "solution"
    python -m captum_course handouts [--out site/]      # execute every notebook, write HTML + index

Both are nbconvert's own preprocessors (TagRemovePreprocessor, ClearOutputPreprocessor,
ExecutePreprocessor) and its HTMLExporter, plus a small index page.
"""
from __future__ import annotations

import html
import re
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
CELL_TIMEOUT_S = 600  # the slowest cell (Occlusion on ResNet18) takes about a minute on 2 cores


class Executed(NamedTuple):
    """One notebook run top to bottom in a fresh kernel."""
    path: Path
    notebook: nbformat.NotebookNode  # with the outputs it produced, up to the failing cell
    seconds: float
    error: str | None  # None when every cell ran


def course_notebooks(notebooks_dir: str | Path = NOTEBOOKS_DIR) -> list[Path]:
    """The ``*.ipynb`` files of ``notebooks_dir`` in course order (their names start 00_, 01_...)."""
    paths = sorted(Path(notebooks_dir).glob("*.ipynb"))
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


def build_learner_copies(out: str | Path, notebooks_dir: str | Path = NOTEBOOKS_DIR) -> dict[Path, int]:
    """Write a learner copy of every notebook into ``out``; return {written path: solutions removed}.

    Put ``out`` beside ``notebooks_dir`` (same depth) so the notebooks' ``../img/...`` paths work.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in course_notebooks(notebooks_dir):
        copy, removed = learner_notebook(nbformat.read(path, as_version=4))
        target = out / path.name
        nbformat.write(copy, target)
        written[target] = removed
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
        error = _first_line(err)
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
    out: str | Path, notebooks_dir: str | Path = NOTEBOOKS_DIR, timeout: int = CELL_TIMEOUT_S
) -> list[Executed]:
    """Execute every notebook of ``notebooks_dir`` and write ``out/<name>.html`` plus ``out/index.html``.

    A notebook that fails is still written, up to the failing cell, and marked in the index.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter(embed_images=True)
    runs = []
    for path in course_notebooks(notebooks_dir):
        print(f"Executing {path.name} ...", flush=True)
        run = execute_notebook(path, timeout=timeout)
        body, _ = exporter.from_notebook_node(run.notebook, resources={"metadata": {"path": str(path.parent)}})
        (out / f"{path.stem}.html").write_text(body, encoding="utf-8")
        print(f"  {run.seconds:.0f} s, " + (f"FAILED: {run.error}" if run.error else "ok"), flush=True)
        runs.append(run)
    (out / "index.html").write_text(index_page(runs), encoding="utf-8")
    return runs


def notebook_title(nb: nbformat.NotebookNode, default: str) -> str:
    """The text of the notebook's first Markdown heading, or ``default``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            match = re.search(r"^#+\s+(.+)$", cell.source, re.MULTILINE)
            if match:
                return match.group(1).strip()
    return default


def index_page(runs: list[Executed]) -> str:
    """The handouts' index.html: one row per notebook with its link, title and run time."""
    rows = []
    for run in runs:
        status = f"failed: {html.escape(run.error)}" if run.error else "ran without errors"
        rows.append(
            f'<tr><td><a href="{html.escape(run.path.stem)}.html">{html.escape(run.path.stem)}</a></td>'
            f"<td>{html.escape(notebook_title(run.notebook, run.path.stem))}</td>"
            f"<td>{run.seconds:.0f} s</td><td>{status}</td></tr>"
        )
    models = sorted({m for m in (model_in_use(r.notebook) for r in runs) if m})
    executed = time.strftime("%Y-%m-%d %H:%M")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        "<title>Model understanding with Captum: notebooks</title>\n"
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "td,th{padding:.3em .8em;text-align:left}</style></head><body>\n"
        "<h1>Model understanding with Captum</h1>\n"
        f"<p>The course notebooks, executed {executed}"
        + (f" with the model {', '.join(models)}" if models else "")
        + ". Read ahead or catch up here; run them yourself in JupyterLab.</p>\n"
        "<table><tr><th>notebook</th><th>title</th><th>run time</th><th>status</th></tr>\n"
        + "\n".join(rows)
        + "\n</table></body></html>\n"
    )


def _first_line(err: Exception) -> str:
    """The exception a cell raised (``ZeroDivisionError: division by zero``), or the error's first line."""
    if getattr(err, "ename", None):
        return f"{err.ename}: {err.evalue}"[:200]
    lines = [line for line in str(err).splitlines() if line.strip()]
    return (lines or [type(err).__name__])[0][:200]
