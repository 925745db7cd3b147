"""Notebook 04's checks (captum_helpers.exercises.ex04): the notebook's solutions read "right", the
untouched starters "not attempted", and plausible wrong answers "wrong".

The namespace is the notebook's own code cells before the exercises on the offline model (given,
not loaded), less the slow or drawing-only ones: the receptive field (the layer set directly), the
masked view and the rocket.
Exercise 1's layers depend on the model: its solution also runs on a random ResNet18."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam

from captum_helpers import gradcam_layer, predict
from captum_helpers.exercises.ex04 import q1, q2, q3
from exercise_tools import (code_cells, exercises, inside_notebooks, notebook, random_resnet18,
                            run, state)

# the checks run in the full notebooks on every Python (the strict runs); these unit tests once
pytestmark = pytest.mark.once

SLOW = ("receptive_field(",  # a backward pass on inputs up to 8 times the photo: set below
        "visualize_image_attr_multiple",  # the masked view: a drawing only
        "occlusion_windows(",
        "rocket")  # the rocket photo and its drawing


def _namespace(model: torch.nn.Module) -> tuple:
    nb = notebook("04")
    first = exercises(nb)[1]["starter"]
    layer = gradcam_layer(model)
    namespace = {"model": model, "layer": layer}
    sources = [s.replace("model = load_model()", "") for s in code_cells(nb, first, skip=SLOW)]
    with inside_notebooks():
        run(namespace, *sources)
    plt.close("all")
    return nb, namespace


@pytest.fixture(scope="module")
def namespace_04(lite0):
    return _namespace(lite0)


def _solved(nb, namespace: dict, number: int) -> dict:
    where = exercises(nb)[number]
    solved = run(dict(namespace), *[nb.cells[i].source for i in where["solutions"]])
    plt.close("all")
    return solved


def _starter(nb, namespace: dict, number: int) -> dict:
    return run(dict(namespace), nb.cells[exercises(nb)[number]["starter"]].source)


def _with(namespace: dict, **answers) -> dict:
    return {**namespace, **answers}


def _gradcam(ns: dict, layer, target: int) -> torch.Tensor:
    return LayerGradCam(ns["model"], layer).attribute(ns["input_img"], target=target).detach()


def test_exercise_1_two_depths(namespace_04):
    nb, ns = namespace_04
    assert state(q1, _starter(nb, ns, 1)) == "untouched"
    solved = _solved(nb, ns, 1)
    assert state(q1, solved) == "right"
    early, late = solved["early_map"], solved["late_map"]
    assert early.shape[-2:] == (28, 28) and late.shape[-2:] == (7, 7)
    size = ns["input_img"].shape[2:]
    wrong = {
        "interpolated": _with(solved, early_map=LayerAttribution.interpolate(early, size)),
        "the notebook's 14 x 14 layer": _with(solved, late_map=ns["attributions_lgc"]),
        "swapped": _with(solved, early_map=late, late_map=early),
        "another class": _with(solved, early_map=_gradcam(ns, ns["model"]._blocks[4], 0)),
        "relu": _with(solved, late_map=early.clamp(min=0), early_map=early.clamp(min=0)),
        "a number": _with(solved, early_map=0.5),
    }
    for name, answers in wrong.items():
        assert state(q1, answers) == "wrong", name
    said = q1.evaluate(wrong["interpolated"])[1]
    assert "interpolate" in said and "28×28" in said
    assert "notebook's own layer" in q1.evaluate(wrong["the notebook's 14 x 14 layer"])[1]
    assert "other layer's map" in q1.evaluate(wrong["swapped"])[1]
    assert "relu_attributions" in q1.evaluate(wrong["relu"])[1]


def test_exercise_1_on_resnet18():
    nb, ns = _namespace(random_resnet18())
    solved = _solved(nb, ns, 1)
    assert solved["early_map"].shape[-2:] == (28, 28) and solved["late_map"].shape[-2:] == (7, 7)
    assert state(q1, solved) == "right", q1.evaluate(solved)[1]
    said = q1.evaluate(_with(solved, late_map=ns["attributions_lgc"]))
    assert said[0] == "wrong" and "model.layer4[1].conv2" in said[1]


def test_exercise_2_only_positive_evidence(namespace_04):
    nb, ns = namespace_04
    assert state(q2, _starter(nb, ns, 2)) == "untouched"
    solved = _solved(nb, ns, 2)
    assert state(q2, solved) == "right"
    plain = ns["attributions_lgc"].detach()
    assert (plain < 0).any()  # else the map without the ReLU would be the right answer
    wrong = {"no relu": plain, "absolute": plain.abs(),
             "interpolated": LayerAttribution.interpolate(solved["relu_lgc"],
                                                          ns["input_img"].shape[2:]),
             "another class": _gradcam(ns, ns["layer"], 0).clamp(min=0)}
    for name, answer in wrong.items():
        assert not torch.equal(answer, solved["relu_lgc"]), name
        assert state(q2, _with(solved, relu_lgc=answer)) == "wrong", name
    assert "negative cells" in q2.evaluate(_with(solved, relu_lgc=plain))[1]
    for letter in "ac":
        assert state(q2, _with(solved, why_relu=letter)) == "wrong"
    assert state(q2, _with(solved, why_relu="")) == "untouched"


def test_exercise_3_the_runner_up(namespace_04):
    nb, ns = namespace_04
    assert state(q3, _starter(nb, ns, 3)) == "untouched"
    solved = _solved(nb, ns, 3)
    assert state(q3, solved) == "right"
    top, second, third = predict(ns["model"], ns["input_img"], k=3)
    assert solved["runner_up"].index == second.index
    top_map = ns["attributions_lgc"]
    said = q3.evaluate(_with(solved, runner_up_map=top_map))
    assert said[0] == "wrong" and top.label in said[1]
    wrong = {"third": _gradcam(ns, ns["layer"], third.index),
             "relu": solved["runner_up_map"].clamp(min=0),
             "interpolated": LayerAttribution.interpolate(solved["runner_up_map"],
                                                          ns["input_img"].shape[2:])}
    for name, answer in wrong.items():
        assert not torch.equal(answer, solved["runner_up_map"]), name
        assert state(q3, _with(solved, runner_up_map=answer)) == "wrong", name
