"""Notebook 06 on the offline model (EfficientNet-Lite0, real weights): run once, top to bottom in
a fresh kernel as a machine without internet runs it, then check its variables and that every
sentence it prints about the numbers follows from them by the course's interval rule
(`captum_helpers.trust.better`). This is notebook 06's run with its solutions offline on this
Python (`make test`'s offline pass runs the learner copies)."""
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from captum_course.site import keep_run, run_env
from captum_helpers.trust import LOWER_IS_BETTER, beats_all, better, decided_pairs, interval

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_can_you_trust_it.ipynb"
METHODS = ["IG", "SmoothGrad", "Saliency", "Occlusion", "Layer GradCAM"]
REFERENCES = ["Random", "Constant", "Edge detector"]
TESTS = ["infidelity", "sensitivity", "deletion_auc", "insertion_auc", "ground_truth"]
VARIABLES = ["names", "metrics", "ground_truth_share", "ground_truth_area", "verdict", "METHODS",
             "REFERENCES", "passes", "seconds", "ig_off", "same_order", "converged", "chance",
             "agreement", "randomization", "findings", "guided_is_gradient", "gbp_difference",
             "areas", "passed", "infidelity_by", "sensitivity_by", "ranking", "steady",
             "baseline_effect", "IG_STEPS", "least_first", "chance_10", "agree_10"]
DUMP = ("import json\nprint('NB06 ' + json.dumps({name: globals()[name] for name in %r}))"
        % VARIABLES)


def _texts(cell) -> str:
    """Everything a cell showed: printed text, Markdown and plain-text results."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] in ("display_data", "execute_result"):
            parts.append(output["data"].get("text/markdown")
                         or output["data"].get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The notebook executed once on the offline model; its variables and the text it showed."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(new_code_cell(DUMP))
    # offline, as the website's run (make site)
    env = run_env(tmp_path_factory.mktemp("torch-home"))
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute(env=env)
    # for the website, if asked
    keep_run(NOTEBOOK, nbformat.from_dict({**nb, "cells": nb.cells[:-1]}))
    texts = [_texts(cell) for cell in nb.cells]
    values = json.loads(texts[-1].split("NB06 ", 1)[1])
    return SimpleNamespace(text="\n".join(texts[:-1]), **values)


def _score_ok(score):
    return (set(score) == {"mean", "spread"} and math.isfinite(score["mean"])
            and score["spread"] >= 0)


def test_runs_on_the_offline_model_with_every_photo(run):
    assert "Model: efficientnet_lite0" in run.text
    assert run.names == ["chelsea", "coffee", "rocket"]
    assert run.METHODS == METHODS and run.REFERENCES == REFERENCES


def test_metrics_hold_a_score_for_every_method_and_reference(run):
    assert list(run.metrics) == TESTS[:4]
    for table in [*run.metrics.values(), run.ground_truth_share]:
        assert list(table) == METHODS + REFERENCES
        assert all(_score_ok(score) for score in table.values())


def test_verdict_is_the_interval_rule_against_every_reference(run):
    tests = run.metrics | {"ground_truth": run.ground_truth_share}
    assert list(run.verdict) == METHODS
    for method, row in run.verdict.items():
        assert list(row) == TESTS
        for test, passed in row.items():
            refs = {r: tests[test][r] for r in REFERENCES}
            assert passed is beats_all(tests[test][method], refs,
                                       LOWER_IS_BETTER[test]), (method, test)
            shown = interval(tests[test][method], 3)
            assert (f"| {test} | {shown} |" in run.text
                    and ("| yes |" if passed else "| no |") in run.text)


def test_each_method_table_shows_its_rows_and_the_references(run):
    tests = run.metrics | {"ground_truth": run.ground_truth_share}
    for method in METHODS:
        for test, scores in tests.items():
            row = " | ".join([test, interval(scores[method], 3),
                              *(interval(scores[r], 3) for r in REFERENCES),
                              "yes" if run.verdict[method][test] else "no"])
            assert f"| {row} |" in run.text, (method, test)


def test_the_known_answer_model_puts_random_near_the_area_and_gradients_inside(run):
    assert run.ground_truth_area == pytest.approx(96 * 96 / 224 ** 2)
    share = run.ground_truth_share
    assert share["Random"]["mean"] == pytest.approx(run.ground_truth_area, abs=0.02), (
        "a map that knows nothing")
    assert share["Constant"]["mean"] == pytest.approx(run.ground_truth_area, abs=1e-6)
    # a pixel the model never sees has a zero gradient
    for method in ["IG", "SmoothGrad", "Saliency"]:
        assert (share[method]["mean"] == pytest.approx(1.0, abs=1e-6)
                and run.verdict[method]["ground_truth"])
    assert share["Layer GradCAM"]["mean"] < 0.999 and share["Occlusion"]["mean"] < 0.999
    exact = [m for m in METHODS if share[m]["mean"] > 0.999]
    assert f"All of it inside: {', '.join(exact)};" in run.text
    found = [m for m in METHODS if run.verdict[m]["ground_truth"]]
    assert f"Methods that beat every reference here: {', '.join(found) or 'none'}." in run.text


def test_no_method_passes_sensitivity_because_maps_that_ignore_the_photo_do_not_move(run):
    for radius, table in run.sensitivity_by.items():
        assert table["Constant"] == {"mean": 0.0, "spread": 0.0}, radius
        assert table["Random"] == {"mean": 0.0, "spread": 0.0}, radius
        assert table["Edge detector"]["mean"] > 0
    assert not any(run.verdict[m]["sensitivity"] for m in METHODS)
    undecided = [t for t in TESTS if not any(run.verdict[m][t] for m in METHODS)]
    assert "sensitivity" in undecided
    assert (f"No method passes {', '.join(undecided)}: in each, every method's interval touches"
            in run.text)


def test_smoothgrad_with_fresh_noise_is_said_to_measure_its_own_randomness_only_if_it_does(run):
    first = run.sensitivity_by["0.02"]
    fresh, fixed = first["SmoothGrad, fresh noise"], first["SmoothGrad"]
    said = "fresh noise measures the estimator's own randomness" in run.text
    assert said == better(fixed, fresh, True)
    assert (f"With fresh noise SmoothGrad scores {interval(fresh, 3)} at radius 0.02, "
            f"against {interval(fixed, 3)}" in run.text)


def test_the_rankings_and_the_comparisons_that_hold_beyond_the_noise(run):
    names = METHODS + ["IG, 96 steps"] + REFERENCES
    decided = {}
    for perturbation, order in run.ranking.items():
        scores = run.infidelity_by[perturbation]
        assert order == sorted(METHODS, key=lambda m: scores[m]["mean"])
        decided[perturbation] = decided_pairs(scores, names, True)
        pairs = ", ".join(f"{a} over {b}" for a, b in decided[perturbation]) or "no pair"
        assert (f"- {perturbation}: by mean, most to least faithful {' > '.join(order)}; "
                f"beyond the noise: {pairs};" in run.text)
    differ = decided["Gaussian noise"] != decided["square removal"]
    assert ("The perturbation decides which comparisons hold beyond the noise"
            in run.text) == differ
    steadier = {}
    for radius, order in run.steady.items():
        steadier[radius] = decided_pairs(run.sensitivity_by[radius], METHODS, True)
        pairs = ", ".join(f"{a} over {b}" for a, b in steadier[radius]) or "no pair"
        assert (f"- radius {radius}: by mean, steadiest to least steady {' > '.join(order)}; "
                f"beyond the noise: {pairs}." in run.text)
    radii = list(run.steady)
    assert ("The radius changes which comparisons hold" in run.text) == (
        steadier[radii[0]] != steadier[radii[1]])


def test_trust_infidelity_gives_captums_number_in_the_notebook(run):
    captum, ours = re.search(r"captum: ([\d.e-]+), trust.infidelity: ([\d.e-]+)", run.text).groups()
    assert float(ours) == pytest.approx(float(captum), rel=1e-3)


def test_relative_infidelity_lies_between_perfect_and_no_map(run):
    for table in run.infidelity_by.values():
        for score in table.values():
            assert 0 <= score["mean"] <= 1.0 + 1e-6


def test_integrated_gradients_convergence_is_reported_as_measured(run):
    coarse, fine = run.ig_off[str(run.IG_STEPS)], run.ig_off[str(3 * run.IG_STEPS)]
    assert max(fine) < 0.1, "the 96-step check is converged on every photo"
    assert run.converged[str(run.IG_STEPS)] == (max(coarse) < 0.1)
    for steps, off in run.ig_off.items():
        assert f"{steps} steps: the sum misses the score difference by " + ", ".join(
            f"{o:.0%} ({n})" for n, o in zip(run.names, off)) in run.text
    word = "" if run.converged[str(run.IG_STEPS)] else "**not** "
    assert f"With 32 steps Integrated Gradients is {word}converged on every photo" in run.text
    assert f"rank correlation of {interval(run.same_order['|map|'])} as |map|" in run.text


def test_agreement_beyond_chance_follows_the_rule(run):
    assert 0.05 < run.chance["top-20% IoU"]["mean"] < 0.2  # 39 of 196 cells: about 0.11 expected
    assert abs(run.chance["Spearman"]["mean"]) < 0.05
    assert len(run.agreement) == 10
    beyond = [p for p, s in run.agreement.items()
              if all(better(v, run.chance[k], False) for k, v in s.items())]
    assert f"{len(beyond)} of 10 pairs agree beyond chance on both numbers" in run.text
    for pair, scores in run.agreement.items():
        assert (f"| {pair} | {interval(scores['Spearman'])} | {interval(scores['top-20% IoU'])} |"
                in run.text)


def test_randomization_findings_follow_from_the_intervals(run):
    spear = {m: s["Spearman |map|"] for m, s in run.randomization.items()}
    assert spear["Edge detector"] == {"mean": 1.0, "spread": 0.0}, (
        "the edge detector ignores the model")
    assert abs(spear["Random"]["mean"]) < 0.1, "two independent random maps"
    assert run.guided_is_gradient and run.gbp_difference == 0
    assert run.randomization["Guided Backprop"] == run.randomization["Saliency"]
    expected = [better(spear["Saliency"], spear["Edge detector"], True)
                and better(spear["Layer GradCAM"], spear["Edge detector"], True),
                better(spear["SmoothGrad"], spear["Edge detector"], True),
                better(spear["IG"], spear["Saliency"], False)]
    shown = [row["here"] for row in run.findings]
    assert shown[:3] == ["reproduces" if ok else "does not reproduce" for ok in expected]
    assert shown[3].startswith("cannot be tested")
    for row in run.findings:
        assert f"| {row['paper' + chr(39) + 's finding']} | {row['here']} |" in run.text
    assert re.search(r"captum's warnings about hooks: [1-9]\d* \(it sets backward hooks on ReLU",
                     run.text)
    assert "Yona and\nGreenfeld" not in run.text  # the critics are prose, not output


def test_deletion_and_insertion_passes_follow_the_rule(run):
    def passing(scores, lower):
        refs = {r: scores[r] for r in REFERENCES}
        return [n for n in METHODS + ["IG, 96 steps"] if beats_all(scores[n], refs, lower)]
    assert set(run.areas["deletion, zero fill"]) == set(METHODS + ["Random"])
    for kind in ["deletion, blurred fill", "insertion"]:
        assert run.passed[kind] == passing(run.areas[kind], kind != "insertion")
        names = run.passed[kind]
        assert f"- {kind}: passed by {', '.join(names) or 'no method'}\n" in run.text
    assert run.metrics["deletion_auc"] == {n: run.areas["deletion, blurred fill"][n]
                                           for n in METHODS + REFERENCES}
    for method in ("IG", "Occlusion"):
        zero = better(run.areas["deletion, zero fill"][method],
                      run.areas["deletion, zero fill"]["Random"], True)
        blur = better(run.areas["deletion, blurred fill"][method],
                      run.areas["deletion, blurred fill"]["Random"], True)
        yes = {True: "yes", False: "no"}
        assert (f"- {method} against Random alone: zero fill {yes[zero]}, blurred fill {yes[blur]}"
                in run.text)


def test_baseline_prose_follows_the_table(run):
    effect = run.baseline_effect
    assert list(effect) == ["zero (course)", "black", "GradientShap"]
    assert effect["zero (course)"]["Spearman with zero"]["mean"] == pytest.approx(1.0)
    moved = min(["black", "GradientShap"], key=lambda n: effect[n]["Spearman with zero"]["mean"])
    assert f"The baseline that moved the map most is **{moved}**" in run.text
    dark = {n: s["share on darkest 10%"] for n, s in effect.items()}
    said = "black credits them less, beyond the noise." in run.text
    assert said == better(dark["black"], dark["zero (course)"], True)


def test_costs_come_from_the_settings_and_captums_window_formula(run):
    assert run.passes == {"IG": 32, "SmoothGrad": 8, "Saliency": 1, "Occlusion": 7 * 7 + 1,
                          "Layer GradCAM": 1}
    assert set(run.seconds) == set(METHODS) and all(s > 0 for s in run.seconds.values())


def test_exercise_solutions_follow_the_rule(run):
    beyond = [p for p, s in run.agree_10.items() if better(s, run.chance_10, False)]
    assert f"beyond chance: {len(beyond)} of 10 pairs" in run.text
    keeps_up = [m for m in METHODS if better(run.least_first[m], run.least_first["Random"], False)]
    assert (f"beat Random with the least relevant cells first: {', '.join(keeps_up) or 'none'}"
            in run.text)


def test_markdown_quotes_no_measured_numbers():
    """Numbers about results come from code cells; markdown may only name settings and the rule's
    example."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    settings = {"0.02", "0.1", "0.2", "0.30", "0.05", "0.45", "0.08", "0.35", "0.37", "0.40"}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            decimals = set(re.findall(r"\d+\.\d+", cell.source)) - settings
            assert not decimals, f"numbers in markdown: {decimals}\n{cell.source}"


def test_the_wrong_statements_are_gone_from_both_editions():
    for path in [NOTEBOOK, NOTEBOOK.parent / "zh-CN" / NOTEBOOK.name]:
        text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells
                         if c.cell_type == "markdown")
        assert ("98th percentile" not in text and "98 百分位" not in text
                and "第 98" not in text), path
        assert "top 2% of the pixels" not in text, path
        assert ("expected gradients" not in text.lower() or "stand-in" in text
                or "替代" in text), path
