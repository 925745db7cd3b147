"""Notebook 08's checks, on the offline model (EfficientNet-Lite0, real weights): the notebook's
own solutions pass, the untouched starters read "not attempted", plausible wrong answers are
caught. Integrated Gradients runs with 16 steps only (``STEPS`` set to ``(16,)``, which the
recipe and the checks both read), section 3's and the sanity check's long runs are left out."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from captum_helpers import trust
from captum_helpers.exercises.ex08 import q1, q2
from exercise_tools import NOTEBOOKS, exercises, inside_notebooks, notebook, run, state, tags

# the checks run in the full notebooks on every Python (the strict runs); these unit tests once
pytestmark = pytest.mark.once

SLOW = ("load_model()", "trust.Table(rows)", "deepcopy(model).train()",
        "ig_maps[name], n, off, change", "switch_off_inplace", "gradcam_maps = {}",
        "randomization_check(ig", "false_alarm_rate", "GuidedBackprop(model).attribute(x",
        "argues against")


def _sources(nb, start: int, stop: int) -> list[str]:
    return [c.source for c in nb.cells[start:stop]
            if c.cell_type == "code" and not {"exercise", "solution"} & set(tags(c))
            and not any(s in c.source for s in SLOW)]


@pytest.fixture(scope="module")
def namespace_08(lite0):
    """The notebook's namespace up to its exercises, on EfficientNet-Lite0 alone, with
    ``ig_maps`` made by the recipe at 16 steps from the chosen baseline."""
    nb = notebook("08")
    first = exercises(nb)[1]["starter"]
    section3 = next(i for i, c in enumerate(nb.cells) if "inputs, targets, baselines" in c.source)
    course = "efficientnet_lite0"
    ns = {"course_model": lite0, "course": course, "models": {course: lite0}}
    with inside_notebooks():
        run(ns, *_sources(nb, 0, section3))
        ns["STEPS"] = (16,)
        x = ns["prepare"](course, ns["img"])
        with torch.no_grad():
            target = lite0(x).argmax(1).item()
        ns.update(inputs={course: x}, targets={course: target}, ig_maps={},
                  baselines={course: ns["normalize"](torch.zeros(3, 224, 224)).unsqueeze(0)})
        run(ns, *_sources(nb, section3 + 1, first))
        ns["ig_maps"][course] = ns["integrated_gradients"](lite0, x, target,
                                                           ns["baselines"][course])[0]
    return nb, ns


@pytest.fixture(autouse=True)
def _in_notebooks(monkeypatch):
    monkeypatch.chdir(NOTEBOOKS)  # the cells' ../img/ paths


def _solved(nb, ns, number: int) -> dict:
    where = exercises(nb)[number]
    return run(dict(ns), *[nb.cells[i].source for i in where["solutions"]
                           if nb.cells[i].cell_type == "code"])


def _starter(nb, ns, number: int) -> dict:
    return run(dict(ns), nb.cells[exercises(nb)[number]["starter"]].source)


@pytest.fixture(scope="module")
def solved_1(namespace_08):
    nb, ns = namespace_08
    with inside_notebooks():
        return _solved(nb, ns, 1)


@pytest.fixture(scope="module")
def solved_2(namespace_08):
    nb, ns = namespace_08
    with inside_notebooks():
        return _solved(nb, ns, 2)


def test_exercise_1_solution_right_and_starter_untouched(namespace_08, solved_1):
    nb, ns = namespace_08
    assert state(q1, _starter(nb, ns, 1)) == "untouched"
    verdict, message = q1.evaluate(solved_1)
    assert verdict == "right", message
    assert f"{solved_1['second_steps']} steps" in message


def test_exercise_1_catches_a_wrong_target_steps_and_gap(namespace_08, solved_1):
    nb, ns = namespace_08
    first = ns["targets"][ns["course"]]
    assert first != solved_1["second_target"]  # chelsea.png and coffee.png differ on Lite0
    verdict, message = q1.evaluate({**solved_1, "second_target": first})
    assert verdict == "wrong" and "first photo's target" in message
    assert state(q1, {**solved_1, "second_steps": 32}) == "wrong"  # not one of STEPS
    off = solved_1["second_off"]
    assert off >= 0.1  # 16 steps on coffee.png: the recipe would go on with more STEPS
    verdict, message = q1.evaluate({**solved_1, "STEPS": (16, 32)})
    assert verdict == "wrong" and "does not stop at 16 steps" in message
    verdict, message = q1.evaluate({**solved_1, "second_off": off * 100})
    assert verdict == "wrong" and "percent" in message
    delta = abs(solved_1["second_map"].sum().item() - solved_1["change"])
    verdict, message = q1.evaluate({**solved_1, "second_off": delta})
    assert verdict == "wrong" and "logit units" in message
    assert state(q1, {**solved_1, "second_map": solved_1["second_map"] * 0.5}) == "wrong"
    assert state(q1, {**solved_1, "second_map": solved_1["second_map"][0]}) == "wrong"
    for letter in "ac":
        assert state(q1, {**solved_1, "steps_depend": letter}) == "wrong"


def test_exercise_2_solution_right_and_starter_untouched(namespace_08, solved_2):
    nb, ns = namespace_08
    assert state(q2, _starter(nb, ns, 2)) == "untouched"
    verdict, message = q2.evaluate(solved_2)
    assert verdict == "right", message
    assert f"ρ = {solved_2['blurred_rho']:.2f}" in message


def test_exercise_2_catches_the_chosen_map_another_correlation_and_the_letter(solved_2):
    ns = solved_2
    course = ns["course"]
    assert ns["chosen"][course] != "blurred photo"  # Lite0 on chelsea.png: the black photo
    chosen_map, blurred_map = ns["ig_maps"][course], ns["blurred_map"]
    verdict, message = q2.evaluate({**ns, "blurred_map": chosen_map})
    assert verdict == "wrong" and "ig_maps[course]" in message
    torch.manual_seed(0)
    assert state(q2, {**ns, "blurred_map": torch.rand_like(blurred_map)}) == "wrong"
    signed = trust.spearman(trust.to_grid(chosen_map, absolute=False),
                            trust.to_grid(blurred_map, absolute=False))
    pearson = float(np.corrcoef(trust.to_grid(chosen_map).flatten().numpy(),
                                trust.to_grid(blurred_map).flatten().numpy())[0, 1])
    for wrong, word in [(signed, "signed"), (pearson, "Pearson"), (ns["blurred_rho"] + 0.1, "")]:
        assert abs(wrong - ns["blurred_rho"]) > 1e-3
        verdict, message = q2.evaluate({**ns, "blurred_rho": wrong})
        assert verdict == "wrong" and word in message
    for letter in sorted(set("abc") - {ns["baseline_decides"]}):
        assert state(q2, {**ns, "baseline_decides": letter}) == "wrong"
