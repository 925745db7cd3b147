"""Exercises that check themselves: the framework (captum_helpers.exercises), the shape every
notebook's exercises share, and notebook 01's checks. Each other notebook's checks are tested in
tests/test_exercises_NN.py: the solution passes, the untouched starter reads "not attempted", and
plausible wrong answers are caught."""
from __future__ import annotations

import ast
import importlib
import sys

import pytest

from captum_helpers import exercises as ex
from captum_helpers.exercises import CheckFailed, Exercise, Wrong, choice
from exercise_tools import (NOTEBOOKS, code_cells, exercises, inside_notebooks, notebook,
                            run, state, tags)

STEMS = ["01", "02", "03", "04", "05", "06", "07", "08", "09"]


def _module(stem: str):
    return importlib.import_module(f"captum_helpers.exercises.ex{stem}")


def _stored_names(source: str) -> set[str]:
    """The names a cell assigns, unpacked ones too (``attributions, delta = ...``)."""
    tree = ast.parse(source)
    return {n.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
            for t in node.targets for n in ast.walk(t)
            if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}


@pytest.mark.parametrize("edition", ["", "zh-CN"], ids=["en", "zh-CN"])
@pytest.mark.parametrize("stem", STEMS)
def test_every_exercise_has_a_starter_a_solution_and_a_check(stem, edition):
    """The import cell brings the notebook's checks; each check cell follows the solution cells,
    which follow the starter; the starter sets every answer to a placeholder (the check reads it as
    not attempted), the solution sets every answer; every starter has its check."""
    nb, module = notebook(stem, edition), _module(stem)
    questions = {n: q for n, q in vars(module).items() if isinstance(q, Exercise)}
    assert questions, f"no checks in {module.__name__}"
    imports = [c.source for c in nb.cells if c.cell_type == "code"
               and c.source.startswith(f"from captum_helpers.exercises.ex{stem} import")]
    assert len(imports) == 1 and all(name in imports[0] for name in questions)
    assert not any("solution" in tags(c) or "exercise" in tags(c) for c in nb.cells
                   if c.source in imports)
    found = exercises(nb)
    assert sorted(f"q{n}" for n in found) == sorted(questions)
    for number, where in found.items():
        q = questions[f"q{number}"]
        assert q.number == number and nb.metadata.get("kernelspec") is not None
        starter = nb.cells[where["starter"]]
        assert where["solutions"] and where["starter"] >= 0, f"q{number}"
        assert set(q.answers) <= _stored_names(starter.source), f"q{number}'s starter"
        assert state(q, run({}, starter.source)) == "untouched", f"q{number}"
        stored = set().union(*(_stored_names(nb.cells[i].source) for i in where["solutions"]
                               if nb.cells[i].cell_type == "code"))  # not "What to look for"
        assert set(q.answers) <= stored, f"q{number}'s solution"
        assert "solution" not in tags(nb.cells[where["check"]])
    starters = [i for i, c in enumerate(nb.cells)
                if "exercise" in tags(c) and c.cell_type == "code"]
    assert sorted(starters) == sorted(w["starter"] for w in found.values())


def _exercise(judge, answers=("answer",)) -> Exercise:
    return Exercise("01_prediction", 1, answers, judge,
                    (("look left", "往左看"), ("look right", "往右看")))


def test_a_check_says_untouched_wrong_raised_and_right(capsys):
    def judge(a):
        if a.answer != 42:
            raise Wrong(f"{a.answer} is not the answer")
        return "42 it is"

    q = _exercise(judge)
    q.check({"answer": ...})
    assert q.state == "untouched" and "Not attempted yet" in capsys.readouterr().out
    q.check({"answer": 41})
    assert q.state == "wrong" and "Not yet: 41 is not the answer" in capsys.readouterr().out
    q.check({"answer": 42})
    assert q.state == "right" and "Right: 42 it is" in capsys.readouterr().out
    q.check({})  # the starter not run at all
    assert q.state == "untouched"
    q.check({"answer": "  "})
    assert q.state == "untouched"


def test_a_function_of_the_learner_that_raises_is_named_with_its_line():
    namespace = run({}, "def answer(x):\n    y = x + 1\n    return y / 0\n")

    def judge(a):
        return str(a.answer(1))

    state_, message = _exercise(judge).evaluate(namespace)
    assert state_ == "raised" and "ZeroDivisionError" in message
    assert "line 3 of your cell: `return y / 0`" in message


def test_an_error_in_the_cell_that_sets_the_answer_is_reported(monkeypatch):
    namespace = {"answer": ...}
    try:
        run(namespace, "x = 1\nanswer = undefined_name + x\n")
    except NameError as error:
        monkeypatch.setattr(sys, "last_value", error, raising=False)
        monkeypatch.setattr(sys, "last_traceback", error.__traceback__, raising=False)
    state_, message = _exercise(lambda a: "fine").evaluate(namespace)
    assert state_ == "raised" and "NameError" in message and "line 2" in message
    # an error from a cell that does not set the answer says nothing about it
    try:
        run({}, "other = 1 / 0\n")
    except ZeroDivisionError as error:
        monkeypatch.setattr(sys, "last_value", error)
        monkeypatch.setattr(sys, "last_traceback", error.__traceback__)
    assert _exercise(lambda a: "fine").evaluate(namespace)[0] == "untouched"


def test_a_check_never_raises_and_a_strict_run_does(monkeypatch, capsys):
    def broken(a):
        return a.answer.shape  # an int has no shape: the answer cannot be read

    q = _exercise(broken)
    q.check({"answer": 3})
    assert q.state == "wrong" and "could not be read" in q.message
    monkeypatch.setenv(ex.STRICT_ENV, "strict")
    with pytest.raises(CheckFailed, match="wrong"):
        q.check({"answer": 3})
    with pytest.raises(CheckFailed, match="untouched"):
        q.check({"answer": ...})
    _exercise(lambda a: "ok").check({"answer": 1})  # right: no error


def test_hints_are_graded_and_choices_explain_each_letter(capsys):
    q = _exercise(lambda a: "")
    q.hint()
    q.hint()
    q.hint()
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Hint 1 of 2: look left") and "again for more" in out[0]
    assert out[1] == "Hint 2 of 2: look right" and out[2] == out[1]
    q.hint(1)
    assert capsys.readouterr().out.startswith("Hint 1 of 2")
    why = {"a": "no", "b": "yes, because", "c": "no either"}
    assert choice("B", "b", why) == "yes, because"
    assert choice("(b)", "b", why) == "yes, because"
    with pytest.raises(Wrong, match=r"\(a\) no"):
        choice("a", "b", why)
    with pytest.raises(Wrong, match="one of the letters a, b, c"):
        choice("d", "b", why)


def test_the_checks_speak_the_edition(monkeypatch, capsys):
    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", "zh")
    q = _exercise(lambda a: "")
    q.check({})
    assert q.message.startswith("请在练习的单元格里")
    assert capsys.readouterr().out.startswith("尚未作答：")
    q.hint()
    assert capsys.readouterr().out.startswith("提示 1/2：往左看")


@pytest.mark.parametrize("edition", ["en", "zh"])
def test_the_solution_comes_from_the_course_notebook(edition, monkeypatch, capsys):
    monkeypatch.setenv("CAPTUM_COURSE_LANGUAGE", edition)
    from captum_helpers.exercises.ex01 import q1

    nb = notebook("01", "zh-CN" if edition == "zh" else "")
    where = exercises(nb)[1]
    q1.solution()
    out = capsys.readouterr().out
    for index in where["solutions"]:
        assert nb.cells[index].source in out
    monkeypatch.setattr(ex, "REPOSITORY", ex.REPOSITORY / "nowhere")
    q1.solution()
    assert "notebooks/" in capsys.readouterr().out


# notebook 01's checks, on the offline model (a random ResNet18 predicts nearly the same classes
# for every photo, which would hide the mistakes the checks tell apart)


@pytest.fixture(scope="module")
def namespace_01(lite0):
    nb = notebook("01")
    first = exercises(nb)[1]["starter"]
    namespace = {"model": lite0}
    with inside_notebooks():
        run(namespace, *code_cells(nb, first, skip=("load_model()",)))
    return nb, namespace


@pytest.fixture(autouse=True)
def _in_notebooks(monkeypatch):
    monkeypatch.chdir(NOTEBOOKS)  # the cells' ../img/ paths


def _with(namespace: dict, **answers) -> dict:
    return {**namespace, **answers}


def test_notebook_01_exercise_1(namespace_01):
    from captum_helpers import IMG_DIR, load_image, predict, preprocess, transform
    from captum_helpers.exercises.ex01 import q1

    nb, ns = namespace_01
    where = exercises(nb)[1]
    assert state(q1, run(dict(ns), nb.cells[where["starter"]].source)) == "untouched"
    assert state(q1, run(dict(ns), *[nb.cells[i].source for i in where["solutions"]])) == "right"
    image = load_image(IMG_DIR / "coffee.png")
    right = predict(ns["model"], preprocess(image)[1], k=5)
    wrong = {"chelsea's top 5": predict(ns["model"], ns["input_img"], k=5),
             "three classes": right[:3],
             "not normalized": predict(ns["model"], transform(image).unsqueeze(0), k=5),
             "reversed": right[::-1]}
    for name, answer in wrong.items():
        assert [p.index for p in answer] != [p.index for p in right], name
        assert state(q1, _with(ns, coffee_top5=answer)) == "wrong", name
    assert "chelsea.png's top 5" in q1.evaluate(_with(ns, coffee_top5=wrong["chelsea's top 5"]))[1]
    assert state(q1, _with(ns, coffee_top5=[p.index for p in right])) == "right"


def test_notebook_01_exercise_2(namespace_01):
    from captum_helpers import predict
    from captum_helpers.exercises.ex01 import q2

    nb, ns = namespace_01
    where = exercises(nb)[2]
    solved = run(dict(ns), *[nb.cells[i].source for i in where["solutions"]])
    assert state(q2, solved) == "right"
    assert state(q2, _with(solved, why_normalize="")) == "untouched"
    for letter in "ac":
        assert state(q2, _with(solved, why_normalize=letter)) == "wrong"
    normalized = predict(ns["model"], ns["input_img"], k=3)
    if [p.index for p in normalized] != [p.index for p in solved["without_norm"]]:
        assert state(q2, _with(solved, without_norm=normalized)) == "wrong"
    assert state(q2, _with(solved, without_norm=solved["without_norm"][:2])) == "wrong"


def test_notebook_01_exercise_3(namespace_01):
    from captum_helpers.exercises.ex01 import q3

    nb, ns = namespace_01
    where = exercises(nb)[3]
    solved = run(dict(ns), *[nb.cells[i].source for i in where["solutions"]])
    assert state(q3, solved) == "right"
    logit = ns["model"](ns["input_img"]).detach()[0, 849].item()
    assert state(q3, _with(solved, teapot_probability=logit)) == "wrong"
    assert state(q3, _with(solved, teapot_probability=ns["output"][0, 848].item())) == "wrong"
    assert state(q3, _with(solved, teapot_probability=2.5)) == "wrong"


def test_the_course_runs_of_the_full_notebooks_are_strict(tmp_path):
    """The website's, the Chinese edition's and notebooks 06's and 07's checked runs (run_env)
    and the pytest notebook pass (conftest.py) fail on a check that is not right."""
    from captum_course.site import run_env

    assert run_env(tmp_path)[ex.STRICT_ENV] == "strict"
    conftest = (NOTEBOOKS.parent / "conftest.py").read_text()
    assert f'os.environ["{ex.STRICT_ENV}"] = "strict"' in conftest
