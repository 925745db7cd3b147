"""Notebook 06 on the offline model (EfficientNet-Lite0, real weights): run once, top to bottom in
a fresh kernel as a machine without internet runs it, then check its variables: every verdict
follows the paired rule (`captum_helpers.trust.beats`) from the per-photo scores it printed, the
references are what they claim to be, and the tables show those numbers. This is notebook 06's
run with its solutions offline on this Python (`make test`'s offline pass runs the learner
copies)."""
import json
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from captum_course.site import keep_run, run_env
from captum_helpers.trust import Score, beats, beats_all

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_can_you_trust_it.ipynb"
METHODS = ["IG", "SmoothGrad", "Saliency", "Occlusion", "Layer GradCAM"]
REFERENCES = ["Random", "Constant", "Edge detector"]
CHECKS = ["like the trained map", "like the edges", "deletion", "insertion"]
VARIABLES = ["names", "METHODS", "REFERENCES", "scores", "verdict", "passes", "alarms", "draws",
             "LOWER_IS_BETTER", "MUST_BEAT", "DRAWS"]
DUMP = ("import json\nprint('NB06 ' + json.dumps({name: globals()[name] for name in %r}))"
        % VARIABLES)


def _texts(cell) -> str:
    """Everything a cell showed: printed text, and the HTML or plain text of its results."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] in ("display_data", "execute_result"):
            parts.append(output["data"].get("text/html") or output["data"].get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The notebook executed once on the offline model; its variables and what it showed."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(new_code_cell(DUMP))
    env = run_env(tmp_path_factory.mktemp("torch-home"))  # offline, as the website's run
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute(env=env)
    keep_run(NOTEBOOK, nbformat.from_dict({**nb, "cells": nb.cells[:-1]}))  # for the website
    texts = [_texts(cell) for cell in nb.cells]
    values = json.loads(texts[-1].split("NB06 ", 1)[1])
    return SimpleNamespace(text="\n".join(texts[:-1]), **values)


def test_runs_on_the_offline_model_with_six_photos(run):
    assert "Model: efficientnet_lite0" in run.text
    assert run.names == ["chelsea", "coffee", "rocket", "grace_hopper", "china", "flower"]
    assert run.METHODS == METHODS and run.REFERENCES == REFERENCES


def test_every_score_has_a_value_per_photo_for_every_map(run):
    assert list(run.scores) == CHECKS
    for check, by_name in run.scores.items():
        assert list(by_name) == METHODS + REFERENCES, check
        assert all(len(values) == len(run.names) for values in by_name.values()), check


def test_verdicts_follow_the_paired_rule_from_the_printed_scores(run):
    assert list(run.verdict) == METHODS
    for method, row in run.verdict.items():
        assert list(row) == CHECKS
        for check, passed in row.items():
            refs = {r: run.scores[check][r] for r in run.MUST_BEAT[check]}
            expected = beats_all(run.scores[check][method], refs, run.LOWER_IS_BETTER[check])
            assert passed is expected, (method, check)
            shown = Score.of(run.scores[check][method]).text(3)
            assert f"<td>{method}</td><td>{shown}</td>" in run.text, (method, check)


def test_deletion_and_insertion_must_beat_every_reference_the_sanity_check_the_edges(run):
    assert run.MUST_BEAT == {"like the trained map": ["Edge detector"],
                             "like the edges": ["Edge detector"],
                             "deletion": REFERENCES, "insertion": REFERENCES}
    assert run.LOWER_IS_BETTER == {"like the trained map": True, "like the edges": True,
                                   "deletion": True, "insertion": False}


def test_the_references_are_what_they_claim(run):
    """The edge detector ignores the model: its map after randomization is its map before, and
    the edges; a constant map has no order; the Random reference is a fresh draw."""
    sanity = run.scores["like the trained map"]
    assert sanity["Edge detector"] == [1.0] * len(run.names)
    assert run.scores["like the edges"]["Edge detector"] == pytest.approx([1.0] * len(run.names))
    assert sanity["Constant"] == [0.0] * len(run.names)
    assert abs(Score.of(sanity["Random"]).mean) < 0.2


def test_the_false_alarm_rates_come_from_the_random_draws(run):
    assert set(run.alarms) == set(CHECKS)
    for check, rate in run.alarms.items():
        draws = run.draws[check]
        assert len(draws) >= 5 and all(len(d) == len(run.names) for d in draws), check
        pairs = [(a, b) for a in range(len(draws)) for b in range(len(draws)) if a != b]
        measured = sum(beats(draws[a], draws[b], run.LOWER_IS_BETTER[check])
                       for a, b in pairs) / len(pairs)
        assert rate == pytest.approx(measured) and rate <= 0.2, check
    assert re.search(r"\d+ of \d+ pairs of random maps agree beyond chance, over 6 photos",
                     run.text)


def test_costs_come_from_the_settings_and_captums_window_formula(run):
    # 224 = 7 windows of 32 per side, no remainder: ceil((224 - 32) / 32) + 1
    assert run.passes == {"IG": 16, "SmoothGrad": 8, "Saliency": 1, "Occlusion": 7 * 7 + 1,
                          "Layer GradCAM": 1}


def test_markdown_quotes_no_measured_numbers():
    """Numbers about results come from code cells; Markdown may only name settings, in code."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            prose = re.sub(r"`[^`]*`", "", cell.source)  # settings in code spans may stay
            decimals = set(re.findall(r"\d+\.\d+", prose))
            assert not decimals, f"numbers in markdown: {decimals}\n{cell.source}"


def test_the_wrong_statements_are_gone_from_both_editions():
    for path in [NOTEBOOK, NOTEBOOK.parent / "zh-CN" / NOTEBOOK.name]:
        nb = nbformat.read(path, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert "at most one of two maps can be right" not in text, path
        assert "ROAD's second half" not in text and "ROAD 的后一半" not in text, path
        assert "98th percentile" not in text and "第 98" not in text, path
        code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
        assert "Markdown(" not in code, path
