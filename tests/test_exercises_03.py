"""Notebook 03's exercises check themselves: the notebook's own solutions are right, the untouched
starters are not attempted, and plausible wrong answers are caught.

The checks spot-check an occlusion map at one pixel against the logit drops of the windows that
cover it, which holds for any network, so the namespace is built from the notebook's own cells
with a small 1000-class network in place of the ImageNet model, and a 32 × 32 window moved 32
pixels at a time in place of the walkthrough's 784 windows (49 instead).
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from captum_helpers import label
from captum_helpers.exercises.ex03 import q1, q2
from small_models import Tiny
from exercise_tools import code_cells, exercises, inside_notebooks, notebook, run, state

# the checks run in the full notebooks on every Python (the strict runs); these unit tests once
pytestmark = pytest.mark.once


@pytest.fixture(scope="module")
def namespace_03():
    """The notebook's cells up to the first exercise, with the small network, a coarse
    walkthrough map, and no plots."""
    nb = notebook("03")
    first = exercises(nb)[1]["starter"]
    torch.manual_seed(0)
    namespace = {"stand_in": Tiny().eval()}
    sources = [s.replace("fast_model(load_model())", "fast_model(stand_in)")
               .replace("strides=(3, 8, 8),", "strides=(3, 32, 32),")
               .replace("sliding_window_shapes=(3, 15, 15),", "sliding_window_shapes=(3, 32, 32),")
               for s in code_cells(nb, first, skip=("viz.", "rocket", ".check()"))]
    with inside_notebooks():
        run(namespace, *sources)
    assert namespace["attributions_occ"].shape == namespace["input_img"].shape
    namespace["viz"] = SimpleNamespace(visualize_image_attr=lambda *a, **k: None,
                                       visualize_image_attr_multiple=lambda *a, **k: None)
    return nb, namespace


def _solved(nb, namespace, number):
    where = exercises(nb)[number]
    assert state((q1, q2)[number - 1], run(dict(namespace),
                                           nb.cells[where["starter"]].source)) == "untouched"
    code = [nb.cells[i].source for i in where["solutions"] if nb.cells[i].cell_type == "code"]
    with inside_notebooks():
        return run(dict(namespace), *code)


@pytest.fixture(scope="module")
def solved_1(namespace_03):
    nb, ns = namespace_03
    return _solved(nb, ns, 1)


def _occlusion(ns, image, target, window, stride):
    return ns["occlusion"].attribute(image, target=target, strides=(3, stride, stride),
                                     sliding_window_shapes=(3, window, window), baselines=0,
                                     perturbations_per_eval=28)


def test_notebook_03_exercise_1(namespace_03, solved_1):
    nb, ns = namespace_03
    solved = solved_1
    assert q1.evaluate(solved)[0] == "right", q1.evaluate(solved)[1]
    assert solved["n_big"] == 100
    said = {n: q1.evaluate({**solved, "n_big": n}) for n in (101, 81, 9, 10, 784)}
    assert all(s == "wrong" for s, _ in said.values())
    assert "forward passes" in said[101][1] and "ceil((224 − 45) / 20) + 1 = 10" in said[81][1]
    assert "ceil" in said[9][1] and "10 × 10" in said[10][1]
    assert state(q1, {**solved, "n_big": 100.0}) == "right"
    answer = {**solved, "attributions_big": ns["attributions_occ"]}
    assert state(q1, answer) == "wrong" and "15×15" in q1.evaluate(answer)[1]
    other = (ns["pred_label_idx"] + 1) % 1000
    answer = {**solved, "attributions_big": _occlusion(ns, ns["input_img"], other, 45, 20)}
    assert state(q1, answer) == "wrong" and label(other) in q1.evaluate(answer)[1]
    wrong_stride = _occlusion(ns, ns["input_img"], ns["pred_label_idx"], 45, 45)
    assert not torch.allclose(wrong_stride, solved["attributions_big"])
    assert state(q1, {**solved, "attributions_big": wrong_stride}) == "wrong"
    assert state(q1, {**solved, "attributions_big": solved["attributions_big"][0]}) == "wrong"


def test_notebook_03_exercise_2(namespace_03, solved_1):
    nb, ns = namespace_03
    solved = _solved(nb, ns, 2)
    assert q2.evaluate(solved)[0] == "right", q2.evaluate(solved)[1]
    chelsea = ns["pred_label_idx"]
    assert solved["coffee_idx"] != chelsea  # the stand-in tells the two photos apart
    answer = {**solved, "coffee_idx": chelsea}
    assert state(q2, answer) == "wrong" and "chelsea.png's prediction" in q2.evaluate(answer)[1]
    assert state(q2, {**solved, "coffee_idx": (chelsea + 1) % 1000}) == "wrong"
    for letter in "bc":
        assert state(q2, {**solved, "why_stride_limit": letter}) == "wrong"
    # the previous exercise's map (chelsea's), the walkthrough's map
    for wrong in (solved_1["attributions_big"], ns["attributions_occ"]):
        assert not torch.allclose(wrong, solved["attributions_coffee"])
        assert state(q2, {**solved, "attributions_coffee": wrong}) == "wrong"
