"""Notebook 07's checks (captum_helpers.exercises.ex07): the notebook's solutions read "right", the
untouched starters "not attempted", and plausible wrong answers "wrong".

The namespace is the notebook's own code cells before the exercises, with cheap stand-ins where a
cell is slow: the tests' Small network on the six photos (224 x 224: the known model's boxes
need it; no check runs the model, and exercise 1's solution sends 24 images through it), stand-in
maps for the five methods, made-up infidelity scores for section 1 (the exercise scores
the maps itself), and a made-up right answer `truth` for the known model, against which every
map, the Random draws included, is scored as the notebook scores them. The notebook itself runs
in tests/test_notebook_07.py."""
from __future__ import annotations

import pytest
import torch

from captum_helpers import fast_model, load_image, photo_paths, preprocess, trust
from captum_helpers.exercises.ex07 import q1, q2, q3
from exercise_tools import code_cells, exercises, inside_notebooks, notebook, run, state
from small_models import Small

# the checks run in the full notebooks on every Python (the strict runs); these unit tests once
pytestmark = pytest.mark.once

SLOW = ("load_model()",  # the model and the photos: set below
        "methods = methods_for(model",  # the five methods on six photos
        "infidelity(model_once",  # section 1: set `scored` and `relative` below
        "sensitivity_max(", "integrated_gradients = ", "by_baseline.items()", "grid_spearman",
        "trust.TwoBoxes(model)",  # the known model's right answer: `truth` below
        "trust.box_mask(trust.BOX_A) | ", "known_methods", "rule_table", "HEADERS = ")
METHODS = ["IG", "SmoothGrad", "Saliency", "Occlusion", "Layer GradCAM"]
DRAWS = 8


@pytest.fixture(scope="module")
def namespace_07():
    nb = notebook("07")
    where = exercises(nb)
    torch.manual_seed(0)
    model = fast_model(Small())
    paths = photo_paths(include_walkthrough=False, more=True)
    prepared = [preprocess(load_image(p)) for p in paths]
    images = torch.stack([image for image, _ in prepared])
    inputs = torch.cat([x for _, x in prepared])
    with torch.no_grad():
        targets = model(inputs).argmax(dim=1)
    names = [p.stem for p in paths]
    edges = trust.edge_map(inputs)
    maps = {"IG": edges * inputs, "SmoothGrad": edges, "Saliency": edges * inputs.sign(),
            "Occlusion": trust.random_map(inputs, 100).abs(), "Layer GradCAM": edges ** 2}
    maps |= trust.reference_maps(inputs, seed=0)
    draws = [trust.random_map(inputs, seed) for seed in range(DRAWS)]
    scored = ({n: maps[n] for n in METHODS + ["Constant", "Edge detector"]}
              | {"zero map": torch.zeros_like(inputs)}
              | {f"Random {s}": draw for s, draw in enumerate(draws)})
    generator = torch.Generator().manual_seed(0)
    relative = {p: {n: (1 - 0.3 * torch.rand(len(names), generator=generator) ** 2).tolist()
                    for n in scored}
                for p in ("noise, sd 0.003", "noise, sd 0.05", "square removal")}
    truth = torch.tensor([0.62, 0.35, -0.2, 0.81, 0.47, 0.05])
    namespace = {"model": model, "names": names, "images": images, "inputs": inputs,
                 "targets": targets, "METHODS": METHODS, "REFERENCES": list(trust.REFERENCES),
                 "DRAWS": DRAWS, "maps": maps, "draws": draws, "scored": scored,
                 "relative": relative, "truth": truth}
    with inside_notebooks():
        # the imports, then the notebook's cheap cells: the perturbations, `model_once`, the
        # scores and the Random draws of section 1 (`scores`, `random_draws`)
        run(namespace, *code_cells(nb, where[1]["starter"], skip=SLOW))
    # section 4 on the made-up right answer, as the notebook scores it; then section 5's rates
    namespace["scores"]["known answer"] = {n: trust.split_error(maps[n], truth)
                                           for n in trust.REFERENCES}  # what the checks read
    namespace["random_draws"]["known answer"] = [trust.split_error(d, truth) for d in draws]
    namespace["false_alarm"] = {m: trust.false_alarm_rate(v, lower_is_better=True)
                                for m, v in namespace["random_draws"].items()}
    return nb, where, namespace


def _solved(namespace_07, number: int) -> dict:
    nb, where, ns = namespace_07
    return run(dict(ns), *[nb.cells[i].source for i in where[number]["solutions"]
                           if nb.cells[i].cell_type == "code"])


def _starter(namespace_07, number: int) -> dict:
    nb, where, ns = namespace_07
    return run(dict(ns), nb.cells[where[number]["starter"]].source)


def _with(namespace: dict, **answers) -> dict:
    return {**namespace, **answers}


@pytest.fixture(scope="module")
def solved_1(namespace_07):
    return _solved(namespace_07, 1)


def _relative(ns, samples: int, normalize: bool = True) -> dict[str, list[float]]:
    """Exercise 1's scores with another number of draws, or without normalize=True."""
    raw = {n: trust_infidelity(ns, m, samples, normalize)
           for n, m in ns["scored"].items() if n.startswith("Random") or n in ("Saliency",
                                                                               "zero map")}
    return {n: (value / raw["zero map"]).tolist() for n, value in raw.items()}


def trust_infidelity(ns, attributions, samples, normalize):
    return ns["infidelity"](ns["model_once"], ns["gaussian_noise"](1, 0.003), ns["inputs"],
                            attributions, target=ns["targets"], n_perturb_samples=samples,
                            normalize=normalize)


def test_exercise_1_the_solution_is_right_and_the_starter_untouched(namespace_07, solved_1):
    assert state(q1, _starter(namespace_07, 1)) == "untouched"
    assert state(q1, solved_1) == "right", q1.evaluate(solved_1)[1]


def test_exercise_1_wrong_scores(solved_1):
    ns = solved_1
    section_1 = ns["relative"]["noise, sd 0.003"]  # the 16 draws of section 1
    state_, message = q1.evaluate(_with(ns, few=section_1))
    assert state_ == "wrong" and "16 draws" in message
    one_draw = _relative(ns, 1)  # a single draw: the fitted scale explains all of it
    assert state(q1, _with(ns, few=one_draw)) == "wrong"
    raw = {n: trust_infidelity(ns, ns["scored"][n], 4, False).tolist()
           for n in ns["few"] if n != "zero map"}  # not normalized, not divided (cached outputs)
    assert raw != ns["few"]
    assert state(q1, _with(ns, few=raw)) == "wrong"
    no_saliency = {n: v for n, v in ns["few"].items() if n != "Saliency"}
    assert state(q1, _with(ns, few=no_saliency)) == "wrong"
    assert state(q1, _with(ns, few={n: v[:5] for n, v in ns["few"].items()})) == "wrong"
    for letter in "bc":
        assert state(q1, _with(ns, chance_level=letter)) == "wrong", letter


@pytest.fixture(scope="module")
def solved_2(namespace_07):
    return _solved(namespace_07, 2)


def test_exercise_2_the_solution_is_right_and_the_starter_untouched(namespace_07, solved_2):
    assert state(q2, _starter(namespace_07, 2)) == "untouched"
    assert state(q2, solved_2) == "right", q2.evaluate(solved_2)[1]
    # the two maps themselves do as well as their errors
    maps = _with(solved_2, all_in_a_errors=solved_2["in_a"],
                 right_split_errors=solved_2["right_split"])
    assert state(q2, maps) == "right"


def test_exercise_2_wrong_maps_and_letters(solved_2):
    ns = solved_2
    in_a, split = ns["all_in_a_errors"], ns["right_split_errors"]
    state_, message = q2.evaluate(_with(ns, all_in_a_errors=split, right_split_errors=in_a))
    assert state_ == "wrong" and "swapped" in message
    constant = ns["scores"]["known answer"]["Constant"]
    assert constant != in_a
    assert "Constant" in q2.evaluate(_with(ns, all_in_a_errors=constant))[1]
    share = ns["truth"].view(-1, 1, 1, 1)  # the constants not divided by the boxes' sizes
    unscaled = share * ns["in_a"] + (1 - share.abs()) * ns["in_b"]
    errors = trust.split_error(unscaled, ns["truth"])
    assert max(errors) > 1e-3
    state_, message = q2.evaluate(_with(ns, right_split_errors=errors))
    assert state_ == "wrong" and "size" in message
    assert state(q2, _with(ns, right_split_errors=split[:5])) == "wrong"
    for letter in "ac":
        assert state(q2, _with(ns, needs=letter)) == "wrong", letter


@pytest.fixture(scope="module")
def solved_3(namespace_07):
    return _solved(namespace_07, 3)


def test_exercise_3_the_solution_is_right_and_the_starter_untouched(namespace_07, solved_3):
    assert state(q3, _starter(namespace_07, 3)) == "untouched"
    assert state(q3, solved_3) == "right", q3.evaluate(solved_3)[1]


def test_exercise_3_wrong_rates_and_letters(solved_3):
    ns = solved_3
    right, six = ns["rate_3"], ns["false_alarm"]["known answer"]
    assert right > 0 and right != six  # the made-up draws give alarms to count
    state_, message = q3.evaluate(_with(ns, rate_3=six))
    assert state_ == "wrong" and "six items" in message
    assert "percentage" in q3.evaluate(_with(ns, rate_3=100 * right))[1]
    assert state(q3, _with(ns, rate_3=ns["alarms"])) == "wrong"  # the count, not the share
    once = ns["alarms"] / (len(ns["pairs"]) // 2)  # each pair counted in one order only
    assert once != right and state(q3, _with(ns, rate_3=once)) == "wrong"
    assert state(q3, _with(ns, rate_3="12%")) == "wrong"
    for letter in "abc":
        if letter != ns["three_vs_six"]:
            assert state(q3, _with(ns, three_vs_six=letter)) == "wrong", letter
