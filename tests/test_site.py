"""The website's parts that need no browser (captum_course/site.py): runs kept and found by their
key, what a page shows for a widget, and links mended for the site. tests/run_site.py (make
test-site) builds the whole site and reads it in Chromium."""
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from captum_course.site import (
    DOCS,
    ROOT,
    Settings,
    build_site,
    glossary_terms,
    keep_run,
    pages,
    relink,
    run_key,
    run_notebooks,
    tidy,
    written_in,
)

SETTINGS = Settings(repository="https://github.com/org/course", branch="spring")


def test_a_run_is_kept_and_taken_again_until_its_code_changes(tiny_course, tmp_path, capsys):
    runs, answer = tmp_path / "runs", tiny_course / "01_answer.ipynb"
    first = run_notebooks([answer, tiny_course / "02_broken.ipynb"], runs, jobs=2, model="tiny")
    assert [r.error is None for r in first] == [True, False]
    assert first[1].error.startswith("ZeroDivisionError")
    # a failed run is not kept
    assert [p.name for p in runs.iterdir()] == [f"{run_key(answer, 'tiny')}.ipynb"]

    again = run_notebooks([answer], runs, model="tiny")
    assert again[0].seconds == 0 and "kept run" in capsys.readouterr().out
    assert "FORTY-TWO" in str(again[0].notebook.cells[1].outputs)

    nb = nbformat.read(answer, as_version=4)
    nb.cells[1].source += "\n# changed"
    nbformat.write(nb, answer)
    assert run_notebooks([answer], runs, model="tiny")[0].seconds > 0  # changed code runs again
    nb.cells[0].source = "# Reading the answer, reworded"
    nbformat.write(nb, answer)
    reworded = run_notebooks([answer], runs, model="tiny")[0]
    # Markdown alone does not: the page shows the new text with the kept outputs
    assert reworded.seconds == 0
    assert reworded.notebook.cells[0].source == "# Reading the answer, reworded"
    assert "FORTY-TWO" in str(reworded.notebook.cells[1].outputs)


def test_a_test_keeps_its_run_numbered_as_run_all_numbers_it(tiny_course, tmp_path, monkeypatch):
    answer = tiny_course / "01_answer.ipynb"
    nb = nbformat.read(answer, as_version=4)
    nb.cells[1].execution_count = 5  # a test ran a cell of its own first
    nb.cells[1].outputs = [
        new_output("stream", name="stdout", text="Model: tiny (made by the test)\n"),
        new_output("execute_result", {"text/plain": "'FORTY-TWO'"}, execution_count=5)]
    monkeypatch.delenv("CAPTUM_COURSE_RUNS", raising=False)  # make test sets it
    assert keep_run(answer, nb) is None  # nowhere to keep it
    monkeypatch.setenv("CAPTUM_COURSE_RUNS", str(tmp_path / "runs"))
    kept = nbformat.read(keep_run(answer, nb), as_version=4)
    assert kept.cells[1].execution_count == 1 and kept.cells[1].outputs[1].execution_count == 1
    assert kept.cells[0].source == nb.cells[0].source


def _progress_state():
    """The widget state tqdm leaves in an executed notebook: an HBox of label, bar and counts."""

    def widget(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    return {"state": {
        "box": widget("HBoxModel",
                      children=["IPY_MODEL_label", "IPY_MODEL_bar", "IPY_MODEL_counts"]),
        "label": widget("HTMLModel", value="Occlusion: 100%"),
        "bar": widget("FloatProgressModel", value=785.0, max=785.0),
        "counts": widget("HTMLModel", value=" 785/785 [01:03&lt;00:00, 12.3img/s]"),
        "explorer": {"model_name": "AnyModel", "model_module": "anywidget", "state": {}},
    }}


def test_tidy_turns_widgets_into_text_and_the_live_explorer_and_keeps_a_bars_last_line():
    def view(model_id):
        return new_output("display_data", {
            "application/vnd.jupyter.widget-view+json": {"model_id": model_id, "version_major": 2},
            "text/plain": "HBox(children=(...))"})

    nb = new_notebook(cells=[new_code_cell("attribute()", outputs=[
        view("box"), new_output("stream", name="stderr",
                                text="  0%|   | 0/10\r 50%|#  | 5/10\r100%|###| 10/10\n"),
        view("explorer"), view("gone")]),
        new_code_cell("second_explorer()", outputs=[view("explorer")])])
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": _progress_state()}
    page = tidy(nb, "en", live="<div class=captum-explorer-live></div>")
    bar, stderr, caption, live = page.cells[0].outputs
    assert bar.text == "Occlusion: 100% 785/785 [01:03<00:00, 12.3img/s]\n"
    assert stderr.text == "100%|###| 10/10\n"
    assert "widgets" not in page.metadata and "widget-view" not in str(page)
    assert "press Fetch" in caption.data["text/markdown"]
    assert live.data["text/html"] == "<div class=captum-explorer-live></div>"
    (second,) = page.cells[1].outputs  # a caption alone: the first explorer is the live one
    assert "Another explorer" in second.data["text/markdown"]
    without = tidy(nb, "en").cells[0].outputs  # no results: a caption in its place
    assert len(without) == 3 and "Another explorer" in without[2].data["text/markdown"]
    assert "探索器" in tidy(nb, "zh-CN").cells[1].outputs[0].data["text/markdown"]


def test_links_lead_to_pages_of_the_site_or_to_the_repository():
    guide = DOCS / "instructor.md"
    text = ("[hub](hub.md#memory) [README](../README.md) "
            "[02](../notebooks/02_integrated_gradients.ipynb) [script](../bench/class_load.py) "
            "[folder](../binder) [web](https://captum.ai/) [here](#agenda)")
    mended = relink(text, guide, "guides/instructor", "en", SETTINGS)
    assert mended == ("[hub](../guides/hub.md#memory) [README](../index.md) "
                      "[02](../02_integrated_gradients.ipynb) "
                      "[script](https://github.com/org/course/blob/spring/bench/class_load.py) "
                      "[folder](https://github.com/org/course/tree/spring/binder) "
                      "[web](https://captum.ai/) [here](#agenda)")
    chinese = relink("[速查表](../../docs/cheatsheet.zh-CN.md)",
                     ROOT / "notebooks" / "zh-CN" / "00_introduction.ipynb",
                     "00_introduction", "zh-CN", SETTINGS)
    assert chinese == "[速查表](guides/cheatsheet.md)"


def test_both_editions_have_the_same_pages():
    assert list(pages("en")) == list(pages("zh-CN"))
    assert all(Path(source).exists() for edition in ("en", "zh-CN")
               for source in pages(edition).values())


def test_the_chinese_site_carries_the_chinese_instructors_guide():
    """Its own guide, in Chinese (no "only in English" note); the English site the English one."""
    for edition, name in [("en", "instructor.md"), ("zh-CN", "instructor.zh-CN.md")]:
        source = pages(edition)["guides/instructor"]
        assert source == (DOCS / name).resolve() and written_in(source) == edition
    # a link from the Chinese front page to it leads to that page
    assert relink("[讲师指南](instructor.zh-CN.md)", DOCS / "index.zh-CN.md", "index", "zh-CN",
                  SETTINGS) == "[讲师指南](guides/instructor.md)"


def test_the_build_never_deletes_a_folder_it_did_not_build(tmp_path, monkeypatch):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "todo.txt").write_text("my own file")
    monkeypatch.setattr("captum_course.site.run_notebooks", lambda *args, **kwargs: [])
    with pytest.raises(RuntimeError, match="did not write"):
        build_site(mine, tmp_path / "runs", sources=tmp_path / "sources")
    assert (mine / "todo.txt").read_text() == "my own file"


def test_the_chinese_search_knows_the_glossarys_words_whole():
    terms = glossary_terms()
    assert {"集成梯度", "积分梯度", "遮挡", "合理性检验"} <= set(terms)
    assert "本课程用语" not in terms  # the table's header is not a term


def test_the_command_exits_1_with_the_reason_when_the_build_fails(monkeypatch, tmp_path, capsys):
    from captum_course.__main__ import main

    def failing(out, jobs, settings):
        assert (out, jobs, settings.jupyterhub_url) == (tmp_path, 1, "https://hub.example.org")
        raise RuntimeError("notebooks failed: en/02_x.ipynb: ZeroDivisionError")

    monkeypatch.setattr("captum_course.site.build_site", failing)
    assert main(["site", "--out", str(tmp_path), "--jobs", "1", "--jupyterhub-url",
                 "https://hub.example.org"]) == 1
    assert "ZeroDivisionError" in capsys.readouterr().err
