"""What the exercise tests share: a notebook's cells, a namespace built from them, a check's state.

A test builds the namespace a notebook's exercises see by running the notebook's own code cells
(``run``), with cheap stand-ins where a cell would be slow (``replace``), then runs the exercise's
starter or solution cells, or sets a wrong answer, and reads the check's state.
"""
from __future__ import annotations

import ast
import itertools
import linecache
import os
from contextlib import contextmanager
from pathlib import Path

import matplotlib
import nbformat
import torch
import torchvision

matplotlib.use("Agg")
_CELLS = itertools.count(1)

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def notebook(stem: str, edition: str = "") -> nbformat.NotebookNode:
    """The course notebook whose name starts with ``stem`` ("01", "02_integrated", ...)."""
    (path,) = sorted((NOTEBOOKS / edition).glob(f"{stem}*.ipynb"))
    return nbformat.read(path, as_version=4)


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def exercises(nb) -> dict[int, dict]:
    """For each ``qN.check()`` cell: its index and those of the starter (``exercise``-tagged) and
    solution cells before it: ``{N: {"check": i, "starter": j, "solutions": [k, ...]}}``."""
    found = {}
    for index, cell in enumerate(nb.cells):
        source = cell.source.strip()
        if cell.cell_type != "code" or not (source.startswith("q") and
                                            source.endswith(".check()")):
            continue
        number = int(source[1:-len(".check()")])
        solutions, before = [], index - 1
        while before >= 0 and "solution" in tags(nb.cells[before]):
            solutions.insert(0, before)
            before -= 1
        starter = before
        while starter >= 0 and "exercise" not in tags(nb.cells[starter]):
            starter -= 1
        found[number] = {"check": index, "starter": starter, "solutions": solutions}
    return found


def random_resnet18(seed: int = 0) -> torch.nn.Module:
    """A ResNet18 with random weights, in eval mode (no download)."""
    torch.manual_seed(seed)
    return torchvision.models.resnet18().eval()


def run(namespace: dict, *sources: str) -> dict:
    """Run the cell sources in ``namespace`` (IPython's trailing ``;`` and display lines are
    plain Python here) and return it."""
    for source in sources:
        name = f"<cell {next(_CELLS)}>"  # a cell's name, its source in linecache as IPython does
        linecache.cache[name] = (len(source), None, source.splitlines(True), name)
        exec(compile(ast.parse(source), name, "exec"), namespace)  # noqa: S102 (the course's cells)
    return namespace


def code_cells(nb, before: int, skip: tuple[str, ...] = ()) -> list[str]:
    """The sources of the code cells before cell ``before`` that are neither exercises nor
    solutions and contain none of the strings in ``skip``."""
    return [c.source for c in nb.cells[:before]
            if c.cell_type == "code" and not {"exercise", "solution"} & set(tags(c))
            and not any(s in c.source for s in skip)]


def state(exercise, namespace: dict) -> str:
    """The check's state for ``namespace``: untouched, raised, wrong or right."""
    return exercise.evaluate(namespace)[0]


@contextmanager
def inside_notebooks():
    """Work in notebooks/, as a notebook's kernel does (its ``../img/`` paths)."""
    before = os.getcwd()
    os.chdir(NOTEBOOKS)
    try:
        yield
    finally:
        os.chdir(before)
