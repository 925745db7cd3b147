"""Notebook 06's checks (captum_helpers.exercises.ex06): the notebook's solutions read "right", the
untouched starters "not attempted", and plausible wrong answers "wrong".

The namespace is the notebook's own code cells before the exercises, with cheap stand-ins where a
cell is slow: a random ResNet18 on the six photos shrunk to 56 x 56 (4 x 4 pixels per grid cell;
every check works on any size), maps built from 14 x 14 grids, and made-up scores for the sanity
check and deletion, which the checks only read. Exercise 2 sends 84 images through the model, so
there the model is the tests' Small network (its deletion curves are as good a test of the
check's arithmetic). The notebook itself runs in tests/test_notebook_06.py."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from captum_helpers import fast_model, load_image, photo_paths, preprocess, trust
from captum_helpers.exercises import ex06
from captum_helpers.exercises.ex06 import q1, q2, q3
from exercise_tools import (code_cells, exercises, inside_notebooks, notebook, random_resnet18,
                            run, state)
from small_models import Small

# the checks run in the full notebooks on every Python (the strict runs); these unit tests once
pytestmark = pytest.mark.once

SIZE = 56  # pixels per side of the stand-in photos: 14 cells of 4 x 4
SLOW = ("load_model()",  # the model and photos: set below
        "= methods_for(model)",  # the five methods on six photos
        "randomized = copy.deepcopy(model)",  # the same on the randomized model
        "STEPS = 5",  # deletion and insertion
        "rule_table", "after_grids", "LOWER_IS_BETTER = ", "HEADERS = ")


def _pixels(grid: torch.Tensor) -> torch.Tensor:
    """A (1, 3, SIZE, SIZE) map whose grid is ``grid`` (14 x 14): each cell a constant block."""
    return F.interpolate(grid[None, None], size=SIZE, mode="nearest").expand(1, 3, SIZE, SIZE) / 3


def _stand_in_maps(inputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """Five maps with the structure the exercises tell apart: IG follows each photo's edges,
    SmoothGrad keeps IG's strongest 20 cells and reverses the order of all the others (its top
    cells agree with IG's, its ranks do not), Saliency is IG plus noise, Occlusion random
    2 x 2-cell blocks, Layer GradCAM the same blob in the middle of every photo."""
    generator = torch.Generator().manual_seed(1)
    maps = {name: [] for name in ("IG", "SmoothGrad", "Saliency", "Occlusion", "Layer GradCAM")}
    middle = torch.exp(-((torch.arange(14.0) - 6.5) ** 2) / 20)
    for i in range(len(inputs)):
        edges = trust.to_grid(trust.edge_map(inputs[i:i + 1]))
        top = edges.flatten().argsort(descending=True)[:20]
        reversed_ = (edges.max() - edges).flatten()
        reversed_[top] = edges.flatten()[top] + edges.max()
        blocks = torch.rand(7, 7, generator=generator).repeat_interleave(2, 0)
        blocks = blocks.repeat_interleave(2, 1)
        grids = {"IG": edges, "SmoothGrad": reversed_.view(14, 14),
                 "Saliency": edges + 0.3 * edges.std() * torch.rand(14, 14, generator=generator),
                 "Occlusion": blocks, "Layer GradCAM": middle[:, None] * middle[None, :]}
        for name, grid in grids.items():
            maps[name].append(_pixels(grid))
    return {name: torch.cat(found) for name, found in maps.items()}


def _scores(names, seed: int) -> list[float]:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(len(names), generator=generator).tolist()


@pytest.fixture(scope="module")
def namespace_06():
    nb = notebook("06")
    where = exercises(nb)
    model = fast_model(random_resnet18())
    paths = photo_paths(include_walkthrough=False, more=True)
    images = torch.stack([preprocess(load_image(p))[0] for p in paths])
    images = F.interpolate(images, size=SIZE, mode="bilinear", antialias=True)
    inputs = torch.cat([preprocess(load_image(p))[1] for p in paths])
    inputs = F.interpolate(inputs, size=SIZE, mode="bilinear", antialias=True)
    with torch.no_grad():
        targets = model(inputs).argmax(dim=1)
    names = [p.stem for p in paths]
    methods = ["IG", "SmoothGrad", "Saliency", "Occlusion", "Layer GradCAM"]
    randoms = [trust.random_map(inputs, seed) for seed in range(6)]
    maps = _stand_in_maps(inputs) | {"Random": randoms[0], "Constant": trust.constant_map(inputs),
                                     "Edge detector": trust.edge_map(inputs)}
    every = methods + list(trust.REFERENCES)
    scores = {"like the trained map": {m: _scores(names, k) for k, m in enumerate(every)},
              "like the edges": {m: _scores(names, 10 + k) for k, m in enumerate(every)},
              "deletion": {m: _scores(names, 20 + k) for k, m in enumerate(every)},
              "insertion": {m: _scores(names, 30 + k) for k, m in enumerate(every)}}
    scores["like the trained map"]["Edge detector"] = [1.0] * len(names)
    namespace = {"model": model, "names": names, "images": images, "inputs": inputs,
                 "targets": targets, "METHODS": methods, "REFERENCES": list(trust.REFERENCES),
                 "DRAWS": 6, "randoms": randoms, "maps": maps, "scores": scores}
    with inside_notebooks():
        # the imports first, then the notebook's cheap cells on the stand-ins (they reassign
        # nothing set above)
        run(namespace, *code_cells(nb, where[1]["starter"], skip=SLOW))
    return nb, where, namespace


def _solved(namespace_06, number: int, **stand_ins) -> dict:
    nb, where, ns = namespace_06
    return run(dict(ns, **stand_ins), *[nb.cells[i].source for i in where[number]["solutions"]])


def _starter(namespace_06, number: int) -> dict:
    nb, where, ns = namespace_06
    return run(dict(ns), nb.cells[where[number]["starter"]].source)


def _with(namespace: dict, **answers) -> dict:
    return {**namespace, **answers}


@pytest.fixture(scope="module")
def solved_1(namespace_06):
    return _solved(namespace_06, 1)


@pytest.fixture(scope="module")
def solved_2(namespace_06):
    torch.manual_seed(0)
    small = Small().eval()
    with torch.no_grad():
        targets = small(namespace_06[2]["inputs"]).argmax(dim=1)
    return _solved(namespace_06, 2, model=small, targets=targets)


@pytest.fixture(scope="module")
def solved_3(namespace_06):
    return _solved(namespace_06, 3)


def test_exercise_1_the_solution_is_right_and_the_starter_untouched(namespace_06, solved_1):
    assert state(q1, _starter(namespace_06, 1)) == "untouched"
    assert state(q1, solved_1) == "right", q1.evaluate(solved_1)[1]


def test_exercise_1_wrong_verdicts_and_letters(solved_1):
    ns = solved_1
    right = ns["top_agree"]
    pairs = list(right)
    by_rank = ex06._verdicts(ex06.Answers(ns), pairs, trust.spearman)
    assert by_rank != right  # the stand-ins tell the two scores apart
    state_, message = q1.evaluate(_with(ns, top_agree=by_rank))
    assert state_ == "wrong" and "Spearman" in message
    reversed_ = ex06._verdicts(ex06.Answers(ns), pairs, lambda a, b: trust.top_iou(a, b, 0.1),
                               lower_is_better=True)
    assert reversed_ != right
    assert "lower_is_better=False" in q1.evaluate(_with(ns, top_agree=reversed_))[1]
    overlaps = {p: [0.5] * ns["n"] for p in pairs}  # the overlaps, not the verdicts
    assert state(q1, _with(ns, top_agree=overlaps)) == "wrong"
    assert state(q1, _with(ns, top_agree=dict(list(right.items())[:-1]))) == "wrong"
    dashed = {f"{a} – {b}": ok for (a, b), ok in right.items()}  # the table's names also do
    assert state(q1, _with(ns, top_agree=dashed)) == "right"
    for letter in "abc":
        if letter != ns["top_vs_spearman"]:
            assert state(q1, _with(ns, top_vs_spearman=letter)) == "wrong", letter


def test_exercise_2_the_solution_is_right_and_the_starter_untouched(namespace_06, solved_2):
    assert state(q2, _starter(namespace_06, 2)) == "untouched"
    assert state(q2, solved_2) == "right", q2.evaluate(solved_2)[1]


def test_exercise_2_wrong_areas(solved_2):
    ns = solved_2
    right = ns["zero_fill"]
    blurred = {m: ns["scores"]["deletion"][m] for m in right}  # the blurred fill's areas
    assert blurred != right
    state_, message = q2.evaluate(_with(ns, zero_fill=blurred))
    assert state_ == "wrong" and "blurred" in message
    divided, undivided = ex06._areas(ex06.Answers(ns), "IG", 0)
    assert divided == pytest.approx(right["IG"][0], rel=1e-3) and abs(undivided - divided) > 1e-2
    not_divided = {**right, "IG": [undivided] + right["IG"][1:]}
    assert "divide" in q2.evaluate(_with(ns, zero_fill=not_divided))[1]
    magnitude = ex06._areas(ex06.Answers(ns), "IG", 0, absolute=True)[0]
    if abs(magnitude - divided) > 1e-2:  # the stand-in IG map is positive: same order
        assert state(q2, _with(ns, zero_fill={**right, "IG": [magnitude] + right["IG"][1:]})) \
            == "wrong"
    assert state(q2, _with(ns, zero_fill={m: v[:-1] for m, v in right.items()})) == "wrong"
    assert state(q2, _with(ns, zero_fill={m: right[m] for m in ("IG", "Random")})) == "wrong"


def test_exercise_2_the_letter_follows_the_rule_on_the_learners_areas(solved_2):
    ns = solved_2
    for letter in "abc":
        if letter != ns["home_advantage"]:
            assert state(q2, _with(ns, home_advantage=letter)) == "wrong", letter
    # with the blurred fill both methods beat Random: no home advantage, whatever zeros do
    deletion = dict(ns["scores"]["deletion"], IG=[0.1] * 6, Occlusion=[0.1] * 6,
                    Random=[0.9, 0.8, 0.9, 0.8, 0.9, 0.8])
    scores = dict(ns["scores"], deletion=deletion)
    assert state(q2, _with(ns, scores=scores, home_advantage="b")) == "right"
    assert state(q2, _with(ns, scores=scores, home_advantage="a")) == "wrong"


def test_exercise_3_the_solution_is_right_and_the_starter_untouched(namespace_06, solved_3):
    assert state(q3, _starter(namespace_06, 3)) == "untouched"
    assert state(q3, solved_3) == "right", q3.evaluate(solved_3)[1]


def test_exercise_3_wrong_correlations(solved_3):
    ns = solved_3
    right = list(ns["like"])
    fully = ns["scores"]["like the trained map"]["Saliency"]  # every layer randomized
    assert abs(fully[0] - right[0]) > 0.02
    state_, message = q3.evaluate(_with(ns, like=fully))
    assert state_ == "wrong" and "first stage" in message
    assert state(q3, _with(ns, like=[1.0] * ns["n"])) == "wrong"  # the trained map itself
    assert state(q3, _with(ns, like=right[:-1])) == "wrong"
    assert state(q3, _with(ns, like=[-v for v in right])) == "wrong"
    for letter in "abc":
        if letter != ns["classifier_enough"]:
            assert state(q3, _with(ns, classifier_enough=letter)) == "wrong", letter


def test_exercise_3_randomizing_the_model_itself_is_caught(solved_3):
    ns = solved_3
    model = copy.deepcopy(ns["model"])  # the learner's slip: reinitialize `model`, no copy
    trust.reinitialize(trust.randomization_stages(model)[0][1], 0)
    state_, message = q3.evaluate(_with(ns, model=model))
    assert state_ == "wrong" and "copy.deepcopy(model)" in message
