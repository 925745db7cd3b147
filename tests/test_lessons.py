"""The lesson in the cells: what notebooks 01 and 02 write out equals what the package holds.

Notebook 01 defines the walkthrough's `transform` and `transform_normalize` in a cell, notebook
02 builds its white-to-blue `default_cmap`; the later notebooks import the same definitions
from captum_helpers. These tests run the notebooks' own cells (their imports and the defining
cell, nothing else) and compare the result with the package, so neither side can change alone.
"""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import captum_helpers.images as images
import captum_helpers.plotting as plotting

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
BATCHED_NOTEBOOKS = ["02_integrated_gradients", "03_occlusion"]  # 04 runs one image at a time


def code_cells(notebook: str) -> list[str]:
    cells = json.loads((NOTEBOOKS / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def assigned_names(source: str) -> set[str]:
    return {t.id for node in ast.parse(source).body if isinstance(node, ast.Assign)
            for t in node.targets if isinstance(t, ast.Name)}


def run_lesson_cells(notebook: str, *names: str) -> dict:
    """Run the notebook's import-only cells and the cell that assigns ``names``; return its
    namespace."""
    sources = code_cells(notebook)
    defining = [s for s in sources if set(names) <= assigned_names(s)]
    assert len(defining) == 1, (f"{notebook} should assign {names} in exactly one cell, "
                                f"found {len(defining)}")
    imports = [s for s in sources
               if all(isinstance(node, (ast.Import, ast.ImportFrom)) for node in ast.parse(s).body)]
    namespace: dict = {}
    for source in imports + defining:
        exec(compile(source, notebook, "exec"), namespace)
    return namespace


def imported_from_package(notebook: str) -> set[str]:
    return {alias.asname or alias.name for source in code_cells(notebook)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("captum_helpers")
            for alias in node.names}


def parameters(step) -> dict:
    """A transform's settings: public attributes, with sequences as lists (the cell writes
    mean=[...], the package a tuple)."""
    settings = {k: v for k, v in vars(step).items() if not k.startswith("_") and k != "training"}
    return {k: list(v) if isinstance(v, (tuple, list)) else v for k, v in settings.items()}


@pytest.fixture(scope="module")
def lesson01() -> dict:
    return run_lesson_cells("01_prediction", "transform", "transform_normalize")


def test_notebook_01_writes_the_transforms_out_instead_of_importing_them():
    assert not {"transform", "transform_normalize"} & imported_from_package("01_prediction")


def test_notebook_01_transform_has_the_package_steps_and_settings(lesson01):
    cell, package = lesson01["transform"].transforms, images.transform.transforms
    assert [type(step) for step in cell] == [type(step) for step in package]
    assert [parameters(step) for step in cell] == [parameters(step) for step in package]


def test_notebook_01_normalization_has_the_package_mean_and_std(lesson01):
    cell = lesson01["transform_normalize"]
    assert type(cell) is type(images.transform_normalize)
    assert parameters(cell) == parameters(images.transform_normalize)


def test_notebook_01_cells_and_package_prepare_a_photo_identically(lesson01):
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 451, 3),
                                                              dtype=np.uint8))
    cell_img = lesson01["transform"](photo)
    assert torch.equal(cell_img, images.transform(photo))
    assert torch.equal(lesson01["transform_normalize"](cell_img),
                       images.transform_normalize(cell_img))


def test_notebook_02_builds_the_package_colormap_in_a_cell():
    cell = run_lesson_cells("02_integrated_gradients", "default_cmap")["default_cmap"]
    assert "default_cmap" not in imported_from_package("02_integrated_gradients")
    assert cell is not plotting.default_cmap  # the cell's own object, not the package's
    assert (cell.name, cell.N) == (plotting.default_cmap.name, plotting.default_cmap.N)
    points = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(cell(points), plotting.default_cmap(points), atol=1e-12)


@pytest.mark.parametrize("notebook", BATCHED_NOTEBOOKS)
def test_batch_sizes_in_the_cells_are_the_named_constants(notebook):
    found = {}
    for source in code_cells(notebook):
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.keyword) and node.arg in ("internal_batch_size",
                                                              "perturbations_per_eval"):
                found.setdefault(node.arg, []).append(ast.unparse(node.value))
    assert found, f"{notebook} sets no batch size"
    expected = {"internal_batch_size": "INTEGRATED_GRADIENTS_BATCH",
                "perturbations_per_eval": "OCCLUSION_BATCH"}
    for argument, values in found.items():
        assert set(values) == {expected[argument]}, f"{notebook}: {argument}={values}"


PROJECTOR_WIDTH = 100  # characters: a code line a back row can read without scrolling


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb"))
                         + sorted(NOTEBOOKS.glob("zh-CN/*.ipynb")),
                         ids=lambda p: p.relative_to(NOTEBOOKS).as_posix())
def test_code_lines_fit_a_projector(path):
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    long = [(index, len(line)) for index, cell in enumerate(cells) if cell["cell_type"] == "code"
            for line in "".join(cell["source"]).splitlines() if len(line) > PROJECTOR_WIDTH]
    assert not long, f"cells with lines over {PROJECTOR_WIDTH} characters (cell, length): {long}"


CELL_LINES, NOTEBOOK_LINES = 20, 300  # a code cell that fits a projector; a lesson one can teach


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb"))
                         + sorted(NOTEBOOKS.glob("zh-CN/*.ipynb")),
                         ids=lambda p: p.relative_to(NOTEBOOKS).as_posix())
def test_cells_and_notebooks_fit_a_lesson(path):
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]
             if c["cell_type"] == "code"]
    sources = ["".join(c["source"]) for c in cells]
    long = [(i, len(s.splitlines())) for i, s in enumerate(sources)
            if len(s.splitlines()) > CELL_LINES]
    assert not long, f"code cells over {CELL_LINES} lines (code cell, lines): {long}"
    taught = sum(len(s.splitlines()) for c, s in zip(cells, sources)
                 if "solution" not in c.get("metadata", {}).get("tags", []))
    assert taught <= NOTEBOOK_LINES, f"{taught} code lines outside the solutions"
    built = [i for i, s in enumerate(sources) if "Markdown(" in s]
    assert not built, f"code cells {built} build Markdown: say it in a Markdown cell"
