"""Notebook 02's exercises check themselves: the notebook's own solutions are right, the untouched
starters are not attempted, and plausible wrong answers are caught.

The checks rest on Integrated Gradients' completeness, which holds for any network and any
number of steps, so the namespace is built from the notebook's own cells with a small 1000-class
network in place of the ImageNet model and 50 steps in place of the walkthrough's 200; the wrong
answers take 10.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from captum_helpers import label, to_target, transform_normalize
from captum_helpers.exercises.ex02 import q1, q2, q3
from small_models import Tiny
from exercise_tools import code_cells, exercises, inside_notebooks, notebook, run, state

# the checks run in the full notebooks on every Python (the strict runs); these unit tests once
pytestmark = pytest.mark.once


def _no_plots():
    return SimpleNamespace(visualize_image_attr=lambda *a, **k: None,
                           visualize_image_attr_multiple=lambda *a, **k: None)


@pytest.fixture(scope="module")
def namespace_02():
    """The notebook's cells up to the first exercise, with the small network, 50 steps for the
    walkthrough's 200, and no plots."""
    nb = notebook("02")
    first = exercises(nb)[1]["starter"]
    torch.manual_seed(0)
    namespace = {"stand_in": Tiny().eval()}
    sources = [s.replace("fast_model(load_model())", "fast_model(stand_in)")
               .replace("n_steps=200", "n_steps=50")
               for s in code_cells(nb, first, skip=("viz.", "rocket", ".check()"))]
    with inside_notebooks():
        run(namespace, *sources)
    namespace["viz"] = _no_plots()
    return nb, namespace


def _solved(nb, namespace, number):
    where = exercises(nb)[number]
    assert state((q1, q2, q3)[number - 1], run(dict(namespace),
                                               nb.cells[where["starter"]].source)) == "untouched"
    code = [nb.cells[i].source for i in where["solutions"] if nb.cells[i].cell_type == "code"]
    with inside_notebooks():
        return run(dict(namespace), *code)


def _ig(ns, **kwargs):
    return ns["integrated_gradients"].attribute(ns["input_img"], internal_batch_size=10,
                                                return_convergence_delta=True, **kwargs)


def test_notebook_02_exercise_1(namespace_02):
    nb, ns = namespace_02
    solved = _solved(nb, ns, 1)
    assert q1.evaluate(solved)[0] == "right", q1.evaluate(solved)[1]
    right = solved["compare_gaps"]
    for letter in {"a", "b", "c"} - {right}:
        assert state(q1, {**solved, "compare_gaps": letter}) == "wrong"
    # the 200 steps' map and delta, or the 200 steps' delta with the 20 steps' map
    assert not torch.equal(solved["attributions_20"], ns["attributions_ig"])
    answer = {**solved, "attributions_20": ns["attributions_ig"], "delta_20": ns["delta"]}
    assert state(q1, answer) == "wrong" and "200 steps' map" in q1.evaluate(answer)[1]
    assert abs(ns["delta"].item() - solved["delta_20"].item()) > 1e-3
    rerun, rerun_delta = _ig(ns, target=ns["pred_label_idx"], n_steps=50)  # the walkthrough's
    answer = {**solved, "attributions_20": rerun, "delta_20": rerun_delta}
    assert state(q1, answer) == "wrong" and "200 steps' map" in q1.evaluate(answer)[1]
    answer = {**solved, "delta_20": ns["delta"]}
    assert state(q1, answer) == "wrong" and "`delta`, the 200" in q1.evaluate(answer)[1]
    # another class
    other = (ns["pred_label_idx"] + 1) % 1000
    attributions, delta = _ig(ns, target=other, n_steps=10)
    answer = {**solved, "attributions_20": attributions, "delta_20": delta}
    assert state(q1, answer) == "wrong" and label(other) in q1.evaluate(answer)[1]
    # the pair left packed, a delta that is not these attributions' at all
    assert state(q1, {**solved, "attributions_20": (attributions, delta)}) == "wrong"
    assert state(q1, {**solved, "delta_20": solved["delta_20"] + 0.5}) == "wrong"


def test_notebook_02_exercise_2(namespace_02):
    nb, ns = namespace_02
    solved = _solved(nb, ns, 2)
    assert q2.evaluate(solved)[0] == "right", q2.evaluate(solved)[1]
    predicted = ns["pred_label_idx"]
    assert solved["other"] == to_target("tiger cat") != predicted
    assert state(q2, {**solved, "other": predicted}) == "wrong"
    assert state(q2, {**solved, "other": to_target("tabby")}) == "wrong"
    # the predicted class's attributions under the right `other`
    attributions, delta = _ig(ns, target=predicted, n_steps=10)
    assert not torch.allclose(attributions, solved["attributions_other"])
    answer = {**solved, "attributions_other": attributions, "delta_other": delta}
    assert state(q2, answer) == "wrong" and "predicted class" in q2.evaluate(answer)[1]
    answer = {**solved, "attributions_other": ns["attributions_ig"]}
    assert state(q2, answer) == "wrong"
    assert state(q2, {**solved, "delta_other": solved["delta_other"] - 0.5}) == "wrong"


def test_notebook_02_exercise_2_takes_tabby_where_the_model_predicts_tiger_cat(namespace_02):
    nb, ns = namespace_02
    model = Tiny().eval()
    model.load_state_dict(ns["model"].state_dict())
    with torch.no_grad():
        model.head.bias[to_target("tiger cat")] += 1000
    namespace = {**ns, "model": model}
    run(namespace, "from captum.attr import IntegratedGradients\n"
                   "integrated_gradients = IntegratedGradients(model)\n"
                   "pred_label_idx = predict(model, input_img, k=1)[0].index\n")
    assert namespace["pred_label_idx"] == to_target("tiger cat")
    solved = _solved(nb, namespace, 2)
    assert solved["other"] == to_target("tabby") and state(q2, solved) == "right"
    assert state(q2, {**solved, "other": to_target("tiger cat")}) == "wrong"


def test_notebook_02_exercise_3(namespace_02):
    nb, ns = namespace_02
    solved = _solved(nb, ns, 3)
    assert q3.evaluate(solved)[0] == "right", q3.evaluate(solved)[1]
    for letter in "bc":
        assert state(q3, {**solved, "never_credited": letter}) == "wrong"
    # the zero baseline, another class, a delta that does not belong
    attributions, delta = _ig(ns, target=ns["pred_label_idx"], n_steps=10)
    assert not torch.equal(attributions, solved["attributions_black"])
    answer = {**solved, "attributions_black": attributions, "delta_black": delta}
    assert state(q3, answer) == "wrong" and "zero baseline" in q3.evaluate(answer)[1]
    other = (ns["pred_label_idx"] + 1) % 1000
    black = transform_normalize(torch.zeros(3, 224, 224)).unsqueeze(0)
    attributions, delta = _ig(ns, target=other, baselines=black, n_steps=10)
    answer = {**solved, "attributions_black": attributions, "delta_black": delta}
    assert state(q3, answer) == "wrong" and label(other) in q3.evaluate(answer)[1]
    assert state(q3, {**solved, "delta_black": solved["delta_black"] * 2 + 1}) == "wrong"


def test_notebook_02_exercise_1_where_both_deltas_are_rounding(namespace_02):
    """On a linear network Integrated Gradients is exact with any number of steps: both deltas
    are float rounding, and "larger" or "no larger" is a coin toss the check does not judge."""
    from captum.attr import IntegratedGradients

    nb, ns = namespace_02
    torch.manual_seed(1)
    linear = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 8, stride=8),
                                 torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                                 torch.nn.Linear(16, 1000)).eval()
    namespace = {**ns, "model": linear, "integrated_gradients": IntegratedGradients(linear)}
    run(namespace, "pred_label_idx = predict(model, input_img, k=1)[0].index\n")
    attributions, delta = _ig(namespace, target=namespace["pred_label_idx"], n_steps=10)
    namespace.update(attributions_ig=attributions, delta=delta)
    solved = _solved(nb, namespace, 1)
    assert abs(solved["delta_20"].item()) < 1e-4
    for letter in "ab":
        assert state(q1, {**solved, "compare_gaps": letter}) == "right"
    assert state(q1, {**solved, "compare_gaps": "c"}) == "wrong"
