"""Learner copies (solutions removed), on small notebooks the tests write and on the course's
own."""
import ast
import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from captum_course.__main__ import main
from captum_course.handouts import (NOTEBOOKS_DIR, SOLUTION_TAG, build_learner_copies,
                                    course_notebooks)

ROOT = Path(__file__).resolve().parent.parent


def _cell(make, source, tags=(), **kwargs):
    cell = make(source, **kwargs)
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def _exercise_notebook():
    return new_notebook(cells=[
        _cell(new_markdown_cell, "# Counting cats"),
        _cell(new_code_cell, "cats = 3\ncats", execution_count=1,
              outputs=[new_output("execute_result", {"text/plain": "3"}, execution_count=1)]),
        _cell(new_markdown_cell, "**Exercise:** double the cats.", tags=["exercise"]),
        _cell(new_code_cell, "# your code here", tags=["exercise"]),
        _cell(new_code_cell, "cats = 2 * cats\ncats", tags=["solution"], execution_count=2,
              outputs=[new_output("execute_result", {"text/plain": "6"}, execution_count=2)]),
        _cell(new_markdown_cell, "Doubling multiplies by two.", tags=["solution", "hint"]),
        _cell(new_markdown_cell, "## What you learned"),
    ])


@pytest.fixture
def notebooks_dir(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    nbformat.write(_exercise_notebook(), folder / "01_cats.ipynb")
    nbformat.write(new_notebook(cells=[new_code_cell("1 + 1")]), folder / "00_intro.ipynb")
    return folder


def test_learner_copy_drops_solution_cells_and_keeps_the_rest(notebooks_dir, tmp_path, capsys):
    out = tmp_path / "learner"
    assert main(["learner", "--out", str(out), "--notebooks", str(notebooks_dir)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["00_intro.ipynb", "01_cats.ipynb"]
    assert "01_cats.ipynb (2 solution cells removed, written)" in capsys.readouterr().out

    cells = nbformat.read(out / "01_cats.ipynb", as_version=4).cells
    assert [c.source for c in cells] == ["# Counting cats", "cats = 3\ncats",
                                         "**Exercise:** double the cats.",
                                         "# your code here", "## What you learned"]
    assert [c.metadata.get("tags") for c in cells] == [None, None, ["exercise"], ["exercise"], None]
    assert all(not c.outputs and c.execution_count is None for c in cells if c.cell_type == "code")


def test_learner_copy_leaves_the_instructor_notebook_alone(notebooks_dir, tmp_path):
    before = (notebooks_dir / "01_cats.ipynb").read_text()
    build_learner_copies(tmp_path / "learner", notebooks_dir)
    assert (notebooks_dir / "01_cats.ipynb").read_text() == before
    assert "cats = 2 * cats" in before


@pytest.mark.parametrize("edition", ["", "zh-CN"], ids=["en", "zh-CN"])
def test_learner_copies_of_the_course_notebooks(tmp_path, edition):
    """On the real notebooks of both editions: the copy is the notebook less its solution cells,
    every exercise cell kept, every other cell the same (type, source, metadata), outputs cleared.
    With the translations' code held to the English program (test_translations.py), one run of
    one edition's learner copies executes the program of both."""
    written = build_learner_copies(tmp_path / "learner")
    out, notebooks = tmp_path / "learner" / edition, NOTEBOOKS_DIR / edition
    assert ({p.name for p in written if p.parent == out}
            == {p.name for p in course_notebooks(notebooks)})
    exercises = 0
    for path in course_notebooks(notebooks):
        original = nbformat.read(path, as_version=4)
        kept = [c for c in original.cells if SOLUTION_TAG not in c.metadata.get("tags", [])]
        exercises += sum("exercise" in c.metadata.get("tags", []) for c in kept)
        copy = nbformat.read(out / path.name, as_version=4)
        assert [(c.cell_type, c.source, c.metadata, c.get("attachments")) for c in copy.cells] == [
            (c.cell_type, c.source, c.metadata, c.get("attachments")) for c in kept], path.name
        assert all(not c.outputs and c.execution_count is None for c in copy.cells
                   if c.cell_type == "code")
        assert {k: v for k, v in copy.metadata.items() if k != "captum_course"} == original.metadata
        assert written[out / path.name] == (len(original.cells) - len(kept), "written", None)
    assert exercises >= 10  # two or three per notebook from 01 on
    assert (out / "../img/chelsea.png").is_file()  # the notebooks' photo paths work in the copies


def _names(tree: ast.AST, store: bool) -> set[str]:
    kind = ast.Store if store else ast.Load
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, kind)}
    if store:
        names |= {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
        names |= {(a.asname or a.name).split(".")[0] for n in ast.walk(tree)
                  if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
    return names


@pytest.mark.parametrize("path", course_notebooks(NOTEBOOKS_DIR), ids=lambda p: p.stem)
def test_no_cell_depends_on_a_solution_cell(path):
    """Learner copies drop the solutions: a later cell must not read a name only a solution
    defines."""
    nb = nbformat.read(path, as_version=4)
    defined, from_solutions = set(), set()
    tags = [cell.metadata.get("tags", []) for cell in nb.cells]
    if path.name.startswith("00_"):
        assert not any("solution" in t for t in tags)  # the introduction has no exercises
        return
    assert sum("solution" in t for t in tags) >= 2 and sum("exercise" in t for t in tags) >= 2
    for cell, cell_tags in zip(nb.cells, tags):
        if cell.cell_type != "code":
            continue
        tree = ast.parse(cell.source)
        if "solution" in cell_tags:
            from_solutions |= _names(tree, store=True) - defined
            continue
        needed = _names(tree, store=False) & from_solutions
        assert not needed, f"cell needs {needed} from a solution cell:\n{cell.source}"
        defined |= _names(tree, store=True)


def test_regenerating_keeps_what_the_learner_changed(notebooks_dir, tmp_path, capsys):
    """`make learner` twice, with a note added in between: the note stays, the new copy goes
    beside it."""
    out = tmp_path / "learner"
    assert main(["learner", "--out", str(out), "--notebooks", str(notebooks_dir)]) == 0
    mine = nbformat.read(out / "01_cats.ipynb", as_version=4)
    mine.cells.insert(1, new_markdown_cell("My note: three cats, not four."))
    mine.cells[4].source = "cats = cats + cats"  # the learner's answer in the exercise cell
    nbformat.write(mine, out / "01_cats.ipynb")
    theirs = (out / "01_cats.ipynb").read_bytes()
    ran = nbformat.read(out / "00_intro.ipynb", as_version=4)  # run, not edited: outputs only
    ran.cells[0].outputs = [new_output("execute_result", {"text/plain": "2"}, execution_count=1)]
    nbformat.write(ran, out / "00_intro.ipynb")
    course = nbformat.read(notebooks_dir / "01_cats.ipynb", as_version=4)
    course.cells[0].source = "# Counting cats, again"  # the course changed too
    nbformat.write(course, notebooks_dir / "01_cats.ipynb")
    capsys.readouterr()

    assert main(["learner", "--out", str(out), "--notebooks", str(notebooks_dir)]) == 0
    said = capsys.readouterr().out
    assert (f"{out / '01_cats.ipynb'}: kept as it is, it has your changes; the new copy is "
            "01_cats.new.ipynb") in said
    assert f"{out / '00_intro.ipynb'} (0 solution cells removed, up to date)" in said
    assert (out / "01_cats.ipynb").read_bytes() == theirs  # not a byte changed
    assert (nbformat.read(out / "01_cats.new.ipynb", as_version=4).cells[0].source
            == "# Counting cats, again")
    # their outputs stay
    assert nbformat.read(out / "00_intro.ipynb", as_version=4).cells[0].outputs

    # and again
    assert build_learner_copies(out, notebooks_dir)[out / "01_cats.ipynb"].status == "kept"
    (out / "01_cats.ipynb").unlink()  # a learner who wants the new copy deletes theirs
    assert build_learner_copies(out, notebooks_dir)[out / "01_cats.ipynb"].status == "written"


def test_a_copy_the_learner_did_not_change_follows_the_course(notebooks_dir, tmp_path):
    out = tmp_path / "learner"
    build_learner_copies(out, notebooks_dir)
    course = nbformat.read(notebooks_dir / "01_cats.ipynb", as_version=4)
    course.cells[0].source = "# Counting cats, again"
    nbformat.write(course, notebooks_dir / "01_cats.ipynb")
    assert build_learner_copies(out, notebooks_dir)[out / "01_cats.ipynb"].status == "written"
    assert (nbformat.read(out / "01_cats.ipynb", as_version=4).cells[0].source
            == "# Counting cats, again")
    assert not (out / "01_cats.new.ipynb").exists()
    (out / "00_intro.ipynb").write_text("not a notebook")  # whatever it is, it is the learner's
    assert build_learner_copies(out, notebooks_dir)[out / "00_intro.ipynb"].status == "kept"
    assert (out / "00_intro.ipynb").read_text() == "not a notebook"


def _bilingual_course(root):
    """img/, notebooks/ with a link img -> ../img, and notebooks/zh-CN/ with a translation."""
    (root / "img").mkdir()
    (root / "img" / "photo.txt").write_text("a photo")
    english, chinese = root / "notebooks", root / "notebooks" / "zh-CN"
    chinese.mkdir(parents=True)
    (english / "img").symlink_to("../img", target_is_directory=True)
    nb = _exercise_notebook()
    nbformat.write(nb, english / "01_cats.ipynb")
    for cell, text in zip([c for c in nb.cells if c.cell_type == "markdown"],
                          ["# 数猫", "**练习：** 把猫的数量翻倍。", "翻倍就是乘以二。",
                           "## 本节小结"]):
        cell.source = text
    nbformat.write(nb, chinese / "01_cats.ipynb")
    return english


def test_learner_copies_of_a_translation_go_to_its_subfolder_and_find_the_photos(tmp_path, capsys):
    notebooks = _bilingual_course(tmp_path)
    out = tmp_path / "learner"
    assert main(["learner", "--out", str(out), "--notebooks", str(notebooks)]) == 0
    assert (f"{out / 'zh-CN' / '01_cats.ipynb'} (2 solution cells removed, written)"
            in capsys.readouterr().out)
    cells = nbformat.read(out / "zh-CN" / "01_cats.ipynb", as_version=4).cells
    assert [c.source for c in cells] == ["# 数猫", "cats = 3\ncats",
                                         "**练习：** 把猫的数量翻倍。", "# your code here",
                                         "## 本节小结"]
    assert (out / "zh-CN" / ".." / "img" / "photo.txt").read_text() == "a photo"
    assert (out / "img").is_symlink() and not Path(os.readlink(out / "img")).is_absolute()
    assert build_learner_copies(out, notebooks)  # again: the link is already there


def test_learner_without_notebooks_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no notebooks"):
        build_learner_copies(tmp_path / "out", tmp_path)
