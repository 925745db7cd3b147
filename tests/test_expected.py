"""The instructor's guides' expected outputs (captum_course/expected.py): the key lines read from a
tiny executed notebook, the section written and merged, numbers compared up to their last digit.
tests/run_site.py checks the committed sections against the runs the website build keeps."""
import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from captum_course import expected
from captum_course.site import NOTEBOOKS_DIR, run_key

PICKS = {"01_prediction": [expected.PREDICTED,
                           expected.Pick(r"^\d+ of \d+ cells", r"^\d+ 个格子中"),
                           expected.Pick(r"^verdict$", r"^结论$", block=True)]}


def run_of(model: str, probability: str = "0.393") -> nbformat.NotebookNode:
    """An executed notebook as a kept run holds it: the model line, lines to pick and lines to
    leave, a table, and exercises whose outputs are the learner's."""
    def out(text, name="stdout"):
        return new_output("stream", name=name, text=text)

    return new_notebook(cells=[
        new_markdown_cell("# A tiny lesson"),
        new_code_cell("load_model()", outputs=[out(f"Model: {model} (chosen by a test)\n")]),
        new_code_cell("predict()", outputs=[
            out(f"Predicted: Egyptian cat ({probability})\nlogit 8.749\n"),
            out("Predicted: on stderr\n", name="stderr"),
            new_output("display_data", {"image/png": "iVBOR", "text/plain": "Predicted: a figure"}),
            new_output("execute_result", {"text/plain": "verdict\nIG   yes   \nSaliency  no"},
                       execution_count=2)]),
        new_code_cell("count()", outputs=[out("113 of 196 cells negative\n")]),
        new_code_cell("solution()", metadata={"tags": ["solution"]},
                      outputs=[out("Predicted: the solution's\n")]),
        new_markdown_cell("## Exercises\n\n**1.** Predict again."),
        new_code_cell("q1.check()", outputs=[out("Predicted: a learner's answer\n")]),
    ])


def test_the_key_lines_are_picked_in_order_and_the_exercises_left_out(monkeypatch):
    monkeypatch.setattr(expected, "PICKS", PICKS)
    assert expected.key_lines(run_of("tiny"), "01_prediction", "en") == [
        "Predicted: Egyptian cat (0.393)", "verdict", "IG   yes", "Saliency  no",
        "113 of 196 cells negative"]


@pytest.fixture
def kept(tmp_path, monkeypatch):
    """A folder of kept runs holding a current run of notebook 01 on the offline model."""
    monkeypatch.setattr(expected, "PICKS", PICKS)
    runs = tmp_path / "runs"
    runs.mkdir()
    path = NOTEBOOKS_DIR / "01_prediction.ipynb"
    nbformat.write(run_of("efficientnet_lite0"),
                   runs / f"{run_key(path, 'efficientnet_lite0')}.ipynb")
    nbformat.write(run_of("efficientnet_lite0", "0.5"), runs / "en-01_prediction-0123stale.ipynb")
    return runs


def test_a_section_has_a_block_per_model_with_runs_and_keeps_another_machines(kept, tmp_path):
    blocks = expected.computed_blocks("en", kept)
    assert list(blocks) == ["efficientnet_lite0"]  # the stale run is not read
    assert "Predicted: Egyptian cat (0.393)" in blocks["efficientnet_lite0"]
    guide = f"# Guide\n\nbefore\n\n{expected.BEGIN}\nold\n{expected.END}\n\nafter\n"
    text = expected.rewrite(guide, "en", blocks)
    assert text.startswith("# Guide\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    assert "old" not in text and "No runs of ResNet18" in text
    assert expected.rewrite(text, "en", blocks) == text  # written again, the same
    # a block written on a machine with ResNet18's weights stays where there are no such runs
    elsewhere = expected.block("en", "resnet18", {"01_prediction": run_of("resnet18", "0.7")})
    both = expected.rewrite(text, "en", {**blocks, "resnet18": elsewhere})
    again = expected.rewrite(both, "en", blocks)
    assert again == both and "Egyptian cat (0.7)" in again and "No runs of" not in again
    assert again.index("### ResNet18") < again.index("### EfficientNet-Lite0")  # site.MODELS order
    assert expected.written_blocks(again) == {**blocks, "resnet18": elsewhere}


def test_the_command_writes_the_guides_and_checks_them(kept, tmp_path, monkeypatch, capsys):
    from captum_course.__main__ import main

    guides = {edition: tmp_path / f"guide.{edition}.md" for edition in ("en", "zh-CN")}
    for guide in guides.values():
        guide.write_text(f"# Guide\n\n{expected.BEGIN}\n{expected.END}\n", encoding="utf-8")
    monkeypatch.setattr(expected, "GUIDES", guides)
    assert main(["expected", "--runs", str(kept), "--check"]) == 1  # nothing written yet
    assert main(["expected", "--runs", str(kept)]) == 0
    assert "Egyptian cat (0.393)" in guides["en"].read_text(encoding="utf-8")
    assert "写出本节的机器上没有" in guides["zh-CN"].read_text(encoding="utf-8")
    assert main(["expected", "--runs", str(kept), "--check"]) == 0
    # another CPU rounds the last digit differently: still the same
    text = guides["en"].read_text(encoding="utf-8")
    guides["en"].write_text(text.replace("(0.393)", "(0.394)"), encoding="utf-8")
    assert main(["expected", "--runs", str(kept), "--check"]) == 0
    guides["en"].write_text(text.replace("(0.393)", "(0.420)"), encoding="utf-8")
    assert main(["expected", "--runs", str(kept), "--check"]) == 1
    assert "differs from its runs" in capsys.readouterr().out


def test_latest_takes_a_notebooks_newest_run_where_none_is_current_and_says_so(
        kept, tmp_path, monkeypatch, capsys):
    from captum_course.__main__ import main

    assert expected.stale("en", kept) == {"efficientnet_lite0": []}
    current = run_key(NOTEBOOKS_DIR / "01_prediction.ipynb", "efficientnet_lite0")
    (kept / f"{current}.ipynb").unlink()
    assert expected.computed_blocks("en", kept) == {}
    assert "Egyptian cat (0.5)" in expected.computed_blocks("en", kept, latest=True)[
        "efficientnet_lite0"]
    assert expected.stale("en", kept) == {"efficientnet_lite0": ["01_prediction"]}
    guide = tmp_path / "guide.md"
    guide.write_text(f"{expected.BEGIN}\n{expected.END}\n", encoding="utf-8")
    monkeypatch.setattr(expected, "GUIDES", {"en": guide})
    assert main(["expected", "--runs", str(kept), "--latest"]) == 0
    assert "Egyptian cat (0.5)" in guide.read_text(encoding="utf-8")
    assert "earlier version of their code" in capsys.readouterr().out


@pytest.mark.parametrize("written, computed, same", [
    ("p 0.393", "p 0.394", True), ("p 0.393", "p 0.420", False), ("1.4%", "1.5%", True),
    ("delta 0.1209", "delta 0.1220", True), ("delta 0.1209", "delta 0.1250", False),
    ("113 of 196", "115 of 196", True), ("113 of 196", "117 of 196", False), ("0%", "1%", True),
    ("0%", "6%", False), ("6.26e-05", "6.27e-05", True), ("6.26e-05", "6.26e-04", False),
    ("IG   yes  no", "IG yes no", True), ("IG yes", "IG no", False), ("-0.00", "0.00", True)])
def test_numbers_may_differ_in_their_last_digit_only(written, computed, same):
    assert expected.same(written, computed) is same


@pytest.mark.parametrize("edition", list(expected.GUIDES))
def test_each_guide_has_the_marked_section_with_a_block(edition):
    text = expected.GUIDES[edition].read_text(encoding="utf-8")
    assert text.count(expected.BEGIN) == 1 and text.count(expected.END) == 1
    assert expected.written_blocks(text), f"{edition}: run `python -m captum_course expected`"
