"""Notebook 06 on the offline model (EfficientNet-Lite0, real weights): run once, top to bottom in
a fresh kernel as a machine without internet runs it, then check its variables and that every
sentence it prints about the numbers agrees with them. This is notebook 06's run with its
solutions offline on this Python (`make test`'s offline pass runs the learner copies)."""
import json
import math
import re
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

from captum_course.jupyter import offline_env

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "06_can_you_trust_it.ipynb"
METHODS = ["IG", "Occlusion", "Layer GradCAM", "SmoothGrad"]
CASCADE = ["Saliency", "IG", "SmoothGrad", "Layer GradCAM", "Guided Backprop"]
VARIABLES = ["agreement", "chance_iou", "randomization_similarity", "gbp_difference", "guided_is_gradient",
             "findings", "UNLIKE", "deletion_auc", "insertion_auc", "infidelity", "sensitivity",
             "baseline_effect", "verdict_table", "photo"]
DUMP = ("import json\nprint('NB06 ' + json.dumps({name: globals()[name] for name in %r}))" % VARIABLES)


def _texts(cell) -> str:
    """Everything a cell showed: printed text, Markdown and plain-text results."""
    parts = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            parts.append(output["text"])
        elif output["output_type"] in ("display_data", "execute_result"):
            parts.append(output["data"].get("text/markdown") or output["data"].get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The notebook executed once on the offline model; its variables and the text it showed."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(new_code_cell(DUMP))
    env = offline_env(tmp_path_factory.mktemp("torch-home"))  # as `make test` runs the other notebooks
    NotebookClient(nb, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute(env=env)
    texts = [_texts(cell) for cell in nb.cells]
    values = json.loads(texts[-1].split("NB06 ", 1)[1])
    return SimpleNamespace(text="\n".join(texts[:-1]), **values)


def test_runs_on_the_offline_model(run):
    assert "Model: efficientnet_lite0" in run.text


def test_agreement_table_and_what_the_prose_says_about_it(run):
    assert len(run.agreement) == 2 * 6  # two photos, six pairs of four methods
    assert {row["photo"] for row in run.agreement} == {"chelsea", "coffee"}
    for row in run.agreement:
        assert set(row) == {"photo", "methods", "Spearman", "top-20% IoU"}
        assert -1 <= row["Spearman"] <= 1 and 0 <= row["top-20% IoU"] <= 1
    assert 0.05 < run.chance_iou < 0.2  # 39 of 196 cells: about 0.11 expected
    mean = sum(row["Spearman"] for row in run.agreement) / len(run.agreement)
    verdict = "broadly agree" if mean > 0.5 else "agree only loosely" if mean > 0.2 else "mostly do not agree"
    above = sum(row["top-20% IoU"] > run.chance_iou for row in run.agreement)
    assert f"the four methods **{verdict}**: the mean rank correlation is {mean:.2f}" in run.text
    assert f"{above} of 12 pairs share more of their top 20%" in run.text


def test_guided_backprop_on_relu6_is_the_gradient_and_is_labelled_so(run):
    assert run.guided_is_gradient and run.gbp_difference == 0
    assert "activation modules: {'ReLU6': 17}" in run.text
    assert "captum's Guided Backprop IS the plain gradient" in run.text
    assert run.randomization_similarity["Guided Backprop"] == run.randomization_similarity["Saliency"]
    guided = [row for row in run.findings if "Guided Backprop" in row["paper's finding"]]
    assert guided[0]["here"].startswith("cannot be tested")
    verdict = {row["method"]: row["good for"] for row in run.verdict_table}
    assert verdict["Guided Backprop"].startswith("nothing beyond Saliency")


def test_randomization_curves_fall_from_the_top_stage_to_fully_random(run):
    assert list(run.randomization_similarity) == CASCADE
    for method, values in run.randomization_similarity.items():
        assert len(values) == 9, "one value per stage of EfficientNet-Lite0"
        assert all(math.isfinite(v) and -1 <= v <= 1 for v in values)
        assert values[-1] < 0.9, f"{method}: a random model gives another map"
    for method in ["Saliency", "IG", "Layer GradCAM", "Guided Backprop"]:  # SmoothGrad's drop is small here
        values = run.randomization_similarity[method]
        assert values[-1] < values[0] - 0.05, f"{method}: every layer random changes the map more than the classifier alone"


def test_findings_table_follows_from_the_similarities(run):
    final = {method: values[-1] for method, values in run.randomization_similarity.items()}
    expected = [final["Saliency"] < run.UNLIKE and final["Layer GradCAM"] < run.UNLIKE,
                final["SmoothGrad"] < run.UNLIKE, final["IG"] > final["Saliency"]]
    shown = [row["here"] for row in run.findings[:3]]
    assert shown == ["reproduces" if ok else "does not reproduce" for ok in expected]
    assert final["IG"] > final["Saliency"], "IG keeps the photo's structure (Gradient x Input in the paper)"
    for row in run.findings:
        finding, here = row["paper's finding"], row["here"]
        assert f"| {finding} | {here} |" in run.text


def test_deletion_and_insertion_against_random_orders(run):
    for areas in (run.deletion_auc, run.insertion_auc):
        assert list(areas) == METHODS + ["Random"]
        assert all(math.isfinite(v) for v in areas.values())
    assert run.photo == "coffee", "the photo the offline model is surest of"
    assert run.deletion_auc["IG"] < run.deletion_auc["Random"]
    assert run.deletion_auc["Occlusion"] < run.deletion_auc["Random"]
    beat_deletion = [m for m in METHODS if run.deletion_auc[m] < run.deletion_auc["Random"]]
    beat_insertion = [m for m in METHODS if run.insertion_auc[m] > run.insertion_auc["Random"]]
    assert f"Deletion: {', '.join(beat_deletion) or 'no method'} made the score fall faster" in run.text
    assert f"Insertion: {', '.join(beat_insertion) or 'no method'} made it rise faster" in run.text


def test_infidelity_and_sensitivity_and_their_summary(run):
    expected = ["IG", "IG + NoiseTunnel", "Saliency", "Layer GradCAM"]
    for scores in (run.infidelity, run.sensitivity):
        assert list(scores) == expected
        assert all(math.isfinite(v) and v >= 0 for v in scores.values())
    assert f"Most faithful to small perturbations: **{min(run.infidelity, key=run.infidelity.get)}**" in run.text
    assert f"Steadiest map: **{min(run.sensitivity, key=run.sensitivity.get)}**" in run.text
    steadier = run.sensitivity["IG + NoiseTunnel"] < run.sensitivity["IG"]
    assert ("made Integrated Gradients steadier, as SmoothGrad promises" in run.text) == steadier


def test_baselines_change_the_map_and_the_prose_names_the_biggest_change(run):
    assert list(run.baseline_effect) == ["zero (course)", "black", "blurred", "uniform noise", "expected gradients"]
    assert run.baseline_effect["zero (course)"]["Spearman with zero"] == pytest.approx(1.0)
    others = {n: v["Spearman with zero"] for n, v in run.baseline_effect.items() if n != "zero (course)"}
    assert all(v < 0.999 for v in others.values()), "every other baseline moves the map"
    assert f"The baseline that changed the map most is **{min(others, key=others.get)}**" in run.text
    black, zero = (run.baseline_effect[n]["share on darkest 10%"] for n in ("black", "zero (course)"))
    assert f"gets {black:.1%} of the attribution, against {zero:.1%}" in run.text


def test_verdict_has_a_row_per_method_drawn_from_the_numbers(run):
    rows = {row["method"]: row for row in run.verdict_table}
    assert list(rows) == ["IG", "SmoothGrad", "Occlusion", "Layer GradCAM", "Saliency", "Guided Backprop"]
    for method in METHODS:
        assert rows[method]["deletion area"] == pytest.approx(run.deletion_auc[method])
        faithful = (run.deletion_auc[method] < run.deletion_auc["Random"]) + (
            run.insertion_auc[method] > run.insertion_auc["Random"])
        phrase = ["no better than random", "beats random at one", "finds what the score needs"][faithful]
        assert phrase in rows[method]["good for"]


def test_markdown_quotes_no_measured_numbers():
    """Numbers about results come from code cells; markdown may only name settings (0.02, 0.1, 0.3...)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    settings = {"0.02", "0.1", "0.2", "0.3", "0.5"}
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            decimals = set(re.findall(r"\d+\.\d+", cell.source)) - settings
            assert not decimals, f"numbers in markdown: {decimals}\n{cell.source}"
