"""Notebook 07 on the offline model (EfficientNet-Lite0, real weights): run once, top to bottom in
a fresh kernel as a machine without internet runs it, then check its variables: every verdict is
the course's rule (`trust.beats_all`) on the per-photo scores the notebook keeps, every table it
shows is made from them, and the references land where they must. Then the notebook's form,
without a kernel: short cells, no prose built from results, exercises a learner copy can drop.
Each check's ability to fail is tested on tiny models in tests/test_trust_checks.py."""
import ast
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from captum_course.site import keep_run, run_env
from captum_helpers import photo_paths
from captum_helpers.trust import (BOX_A, BOX_B, box_mask, beats_all, false_alarm_rate,
                                  rule_table)

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "07_more_trust_checks.ipynb"
METHODS = ["IG", "SmoothGrad", "Saliency", "Occlusion", "Layer GradCAM"]
REFERENCES = ["Random", "Constant", "Edge detector"]
JUDGED = ["infidelity, noise, sd 0.003", "infidelity, noise, sd 0.05",
          "infidelity, square removal", "known answer"]
VARIABLES = ["names", "METHODS", "REFERENCES", "DRAWS", "N_SAMPLES", "FEW", "sensitivity", "scores",
             "verdict", "false_alarm", "random_draws", "truth", "answers", "ig_total",
             "agreement", "chance", "LOWER_IS_BETTER"]
DUMP = ("import json, os, resource, sys\n"
        "def _plain(v):\n"
        "    return v.tolist() if hasattr(v, 'tolist') else v\n"
        "_dump = {n: _plain(globals()[n]) for n in %r}\n"
        # the kernel's own high-water mark: Linux's VmHWM, since ru_maxrss keeps across exec the
        # RSS of the process that started the kernel (pytest's, after hundreds of tests)
        "_hwm = ([l for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "        if os.path.exists('/proc/self/status') else [])\n"
        "_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # kB; bytes on macOS\n"
        "_dump['peak_mb'] = (int(_hwm[0].split()[1]) / 1024 if _hwm\n"
        "                    else _rss / (1024 ** 2 if sys.platform == 'darwin' else 1024))\n"
        "print('NB07 ' + json.dumps(_dump))" % VARIABLES)
PEAK_MB = 2048  # the kernel's memory budget
FOOTER_FROM = NOTEBOOK.parent / "02_integrated_gradients.ipynb"  # the course's common footer
SETTINGS = {"0.15", "0.05", "0.02", "0.003"}  # the only decimals the Markdown may name


def _outputs(cell, kind):
    """The text a cell showed: printed text and plain-text results, or its HTML."""
    parts = []
    for output in cell.get("outputs", []):
        if kind == "text" and output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] in ("display_data", "execute_result"):
            parts.append(output["data"].get("text/html" if kind == "html" else "text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The notebook executed once on the offline model; its variables and what it showed."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(new_code_cell(DUMP))
    # offline, as the website's run (make site)
    env = run_env(tmp_path_factory.mktemp("torch-home"))
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute(env=env)
    # for the website, if asked
    keep_run(NOTEBOOK, nbformat.from_dict({**nb, "cells": nb.cells[:-1]}))
    texts = [_outputs(cell, "text") for cell in nb.cells]
    values = json.loads(texts[-1].split("NB07 ", 1)[1])
    return SimpleNamespace(text="\n".join(texts[:-1]),
                           html="\n".join(_outputs(cell, "html") for cell in nb.cells[:-1]),
                           **values)


def test_runs_on_the_offline_model_with_the_six_photos(run):
    assert "Model: efficientnet_lite0" in run.text
    assert run.names == [p.stem for p in photo_paths(include_walkthrough=False, more=True)]
    assert len(run.names) == 6
    assert run.METHODS == METHODS and run.REFERENCES == REFERENCES


def test_the_kernel_stays_within_its_memory_budget(run):
    assert run.peak_mb < PEAK_MB


def test_every_score_has_one_value_per_photo_for_every_map(run):
    assert list(run.scores) == JUDGED
    for metric, by_name in run.scores.items():
        assert list(by_name) == METHODS + REFERENCES, metric
        for name, values in by_name.items():
            assert len(values) == len(run.names) and all(map(math.isfinite, values)), (metric,
                                                                                       name)


def test_every_verdict_is_the_rule_against_every_reference(run):
    assert run.LOWER_IS_BETTER == dict.fromkeys(JUDGED, True)
    assert list(run.verdict) == METHODS
    for method, row in run.verdict.items():
        assert list(row) == JUDGED
        for metric, passed in row.items():
            scores = run.scores[metric]
            assert passed is beats_all(scores[method], {r: scores[r] for r in REFERENCES},
                                       lower_is_better=True), (method, metric)


def test_each_verdict_table_shows_the_scores_it_decides_on(run):
    for metric in JUDGED:
        table = rule_table(run.scores[metric], METHODS, REFERENCES, lower_is_better=True)
        assert table._repr_html_() in run.html, metric


def test_false_alarm_rates_are_the_rule_between_random_draws(run):
    assert run.DRAWS >= 3
    for metric in JUDGED:
        draws = run.random_draws[metric]
        assert len(draws) == run.DRAWS and draws[0] == run.scores[metric]["Random"]
        rate = false_alarm_rate(draws, lower_is_better=True)
        assert run.false_alarm[metric] == rate
        assert (f"{metric}: {len(run.names)} items, false-alarm rate {rate:.0%} "
                f"({run.DRAWS} Random draws)") in run.text


def test_infidelity_puts_unrelated_maps_near_one_minus_one_over_n(run):
    chance = 1 - 1 / run.N_SAMPLES
    assert f"1 - 1/N_SAMPLES = {chance:.3f}" in run.text
    for metric in JUDGED[:3]:
        draws = run.random_draws[metric]
        assert np.mean(draws) == pytest.approx(chance, abs=0.1), metric
        # beta = 0 is one of the fits, so no map does worse than the map of zeros
        for name, values in run.scores[metric].items():
            assert all(-1e-4 <= v <= 1 + 1e-4 for v in values), (metric, name)


def test_sensitivity_is_zero_for_maps_that_ignore_the_photo_and_has_no_verdict(run):
    moved = run.sensitivity
    assert list(moved) == METHODS + REFERENCES
    assert all(len(values) == run.FEW for values in moved.values())
    assert moved["Random"] == [0.0] * run.FEW and moved["Constant"] == [0.0] * run.FEW
    assert min(moved["Edge detector"]) > 0
    assert all(min(moved[m]) > 0 for m in METHODS)
    assert "sensitivity" not in run.scores


def test_the_known_answer_is_scored_against_the_right_split(run):
    truth = run.truth
    assert all(-1 <= t <= 1 for t in truth)
    assert run.answers["right answer"] == truth
    errors = run.scores["known answer"]
    for name in METHODS + REFERENCES:
        assert errors[name] == pytest.approx([abs(a - t) for a, t in
                                              zip(run.answers[name], truth)], abs=1e-6), name
    area_a, area_b = (box_mask(box).sum().item() for box in (BOX_A, BOX_B))
    assert run.answers["Constant"] == pytest.approx([area_a / (area_a + area_b)] * 6)


def test_integrated_gradients_convergence_is_printed_beside_its_split(run):
    # completeness puts the exact integral's total at 1; 16 steps need not be there (the axiom's
    # exact split on a tiny model: tests/test_trust_checks.py)
    assert all(total > 0 and math.isfinite(total) for total in run.ig_total)
    assert "IG's total / (f(x) - f(0)): " + ", ".join(f"{v:.3f}" for v in run.ig_total) in run.text


def test_the_baselines_are_compared_with_their_chance_level(run):
    assert list(run.agreement) == ["zero – black", "zero – blurred", "black – blurred"]
    assert all(len(v) == 6 and all(-1 <= x <= 1 for x in v) for v in run.agreement.values())
    assert len(run.chance) == 6


# The notebook's form: no kernel needed.

@pytest.fixture(scope="module")
def cells():
    return nbformat.read(NOTEBOOK, as_version=4).cells


def _tags(cell):
    return cell.metadata.get("tags", [])


def test_code_cells_are_short_and_the_notebook_is_not_long(cells):
    code = [c for c in cells if c.cell_type == "code"]
    for i, cell in enumerate(code):
        lines = cell.source.splitlines()
        assert len(lines) <= 20 and max(map(len, lines)) <= 100, (i, cell.source)
    assert sum(len(c.source.splitlines()) for c in code if "solution" not in _tags(c)) <= 300


def test_no_cell_builds_prose_from_results(cells):
    for cell in cells:
        if cell.cell_type == "code":
            assert "Markdown(" not in cell.source and "display(" not in cell.source, cell.source


def test_the_captum_metrics_are_called_not_reimplemented(cells):
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "from captum.metrics import infidelity, sensitivity_max" in code
    assert "normalize=True" in code and "sensitivity_max(" in code
    assert "radius / STD" in code  # the radius is given on the pixel scale


def test_markdown_quotes_no_measured_numbers(cells):
    for cell in cells:
        if cell.cell_type == "markdown":
            decimals = set(re.findall(r"\d+\.\d+", cell.source)) - SETTINGS
            assert not decimals, f"numbers in Markdown: {decimals}\n{cell.source}"


def test_english_only(cells):
    for cell in cells:
        assert not re.search(r"[\u3000-\u9fff\uff00-\uffef]", cell.source), cell.source


def _placeholders_only(source):
    """Whether a starter cell only sets its answers to the placeholders (``...`` or ``""``)."""
    body = ast.parse(source).body
    return bool(body) and all(isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                              and node.value.value in (Ellipsis, "") for node in body)


def test_each_exercise_is_a_question_an_empty_cell_and_a_solution(cells):
    empty = [i for i, c in enumerate(cells) if "exercise" in _tags(c)]
    assert len(empty) >= 3
    for i in empty:
        assert cells[i].cell_type == "code" and _placeholders_only(cells[i].source)
        assert cells[i - 1].cell_type == "markdown" and "solution" not in _tags(cells[i - 1])
        assert cells[i + 1].cell_type == "code" and "solution" in _tags(cells[i + 1])


def _assigned(source):
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_no_later_cell_uses_a_name_only_a_solution_defines(cells):
    code = [c for c in cells if c.cell_type == "code"]
    shared = set().union(*(_assigned(c.source) for c in code if "solution" not in _tags(c)))
    for k, cell in enumerate(code):
        if "solution" not in _tags(cell):
            continue
        own = _assigned(cell.source) - shared
        for later in code[k + 1:]:
            used = {n.id for n in ast.walk(ast.parse(later.source)) if isinstance(n, ast.Name)
                    and isinstance(n.ctx, ast.Load)}
            assert not used & own, (used & own, later.source)


def test_the_summary_heading_and_the_course_footer(cells):
    assert any("## What you learned" in c.source.splitlines() for c in cells
               if c.cell_type == "markdown")
    footer = nbformat.read(FOOTER_FROM, as_version=4).cells[-1].source
    assert footer.startswith("---\n**Done?**")
    assert cells[-1].cell_type == "markdown" and cells[-1].source == footer
