"""Notebook 09, the recap: its questions check themselves (the solution is right, the untouched
starter is not attempted, every wrong letter and the likely wrong numbers are caught), it loads
no model, and its reading list holds every paper the other notebooks cite."""
from __future__ import annotations

import ast
import re
import statistics

import pytest
import torch

from captum_course.handouts import course_notebooks
from captum_helpers.exercises import Exercise
from captum_helpers.exercises import ex09
from captum_helpers.speed import occlusion_windows
from exercise_tools import NOTEBOOKS, exercises, notebook, run, state

RECAP = "09_recap"
QUESTIONS = {q.number: q for q in vars(ex09).values() if isinstance(q, Exercise)}


@pytest.fixture(scope="module")
def recap():
    return notebook("09")


def _solved(nb, number: int) -> dict:
    where = exercises(nb)[number]
    return run({}, *[nb.cells[i].source for i in where["solutions"]])


def _letters(nb, number: int) -> list[str]:
    """The options the question's Markdown lists, "- (a) ..." lines."""
    where = exercises(nb)[number]
    task = next(nb.cells[i] for i in range(where["starter"] - 1, -1, -1)
                if nb.cells[i].cell_type == "markdown")
    return re.findall(r"^- \(([a-d])\) ", task.source, re.MULTILINE)


def test_at_least_twelve_questions_across_notebooks_00_to_08(recap):
    found = exercises(recap)
    assert len(found) >= 12 and sorted(found) == sorted(QUESTIONS)
    text = "\n".join(c.source for c in recap.cells if c.cell_type == "markdown")
    for stem in range(9):
        assert re.search(rf"\(notebooks? [^)]*\b0{stem}\b", text), f"no question on 0{stem}"


@pytest.mark.parametrize("number", sorted(QUESTIONS))
def test_each_question_right_untouched_and_wrong(recap, number):
    q, where = QUESTIONS[number], exercises(recap)[number]
    assert state(q, run({}, recap.cells[where["starter"]].source)) == "untouched"
    solved = _solved(recap, number)
    verdict, message = q.evaluate(solved)
    assert verdict == "right", message
    name, = q.answers
    letters = _letters(recap, number)
    if letters:  # multiple choice: every other letter is wrong, with its own explanation
        right = solved[name]
        assert right in letters and len(letters) >= 3
        explanations = set()
        for letter in sorted(set(letters) - {right}):
            verdict, message = q.evaluate({name: letter})
            assert verdict == "wrong" and message.startswith(f"({letter}) ")
            explanations.add(message)
        assert len(explanations) == len(letters) - 1
        assert state(q, {name: "e"}) == "wrong"
        assert state(q, {name: right.upper()}) == "right"
    else:
        assert state(q, {name: solved[name] + 1}) == "wrong"
        assert state(q, {name: "twenty"}) == "wrong"


def test_the_right_letters_are_not_all_the_same(recap):
    solved = [_solved(recap, n)[q.answers[0]] for n, q in QUESTIONS.items()]
    assert len({answer for answer in solved if isinstance(answer, str)}) >= 3


@pytest.mark.parametrize("number, answer, words", [
    (1, 200, "number of images"), (1, 10, "round up"),
    (4, 0.4, "convergence delta itself"), (4, -0.4, "convergence delta itself"),
    (4, 4.21, "percentage"), (4, 0.4 / 11.3, "logit at the photo"),
    (4, 0.4 / 9.1, "attributions' sum"),
    (6, 785, "unoccluded"), (6, 28, "one side"), (6, 729, "rounds up"),
    (12, statistics.mean(ex09.IMPROVEMENTS) - statistics.pstdev(ex09.IMPROVEMENTS),
     "population"),
    (12, statistics.mean(ex09.IMPROVEMENTS), "mean alone"),
])
def test_the_numeric_questions_name_the_likely_mistake(number, answer, words):
    verdict, message = QUESTIONS[number].evaluate({f"answer_{number}": answer})
    assert verdict == "wrong" and words in message, message


def test_the_window_count_is_captums_formula_not_a_typed_number(recap):
    right = occlusion_windows((3, 224, 224), (3, 15, 15), (3, 8, 8))
    assert right == 784 and _solved(recap, 6)["answer_6"] == right
    assert "784" not in open(ex09.__file__, encoding="utf-8").read()


def test_the_rule_question_flips_with_the_standard_deviation():
    v = ex09.IMPROVEMENTS
    assert statistics.mean(v) - statistics.stdev(v) < 0 < statistics.mean(v) - statistics.pstdev(v)


def test_the_recap_loads_no_model(recap):
    """Its code imports the checks and the standard library only; run as a whole it leaves no
    model in its namespace."""
    allowed = {"captum_helpers.exercises.ex09", "math", "statistics"}
    for cell in recap.cells:
        if cell.cell_type != "code":
            continue
        for node in ast.walk(ast.parse(cell.source)):
            if isinstance(node, ast.ImportFrom):
                assert node.module in allowed, node.module
            elif isinstance(node, ast.Import):
                assert {a.name for a in node.names} <= allowed
        assert "load_model" not in cell.source
    namespace = run({}, *[c.source for c in recap.cells if c.cell_type == "code"
                          and not c.source.strip().endswith(".check()")])
    assert not any(isinstance(v, torch.nn.Module) for v in namespace.values())


# The reading list ------------------------------------------------------------------------------

NAME = r"[A-Z][\w'’-]*[a-z][\w'’-]*"  # a surname: capitalized, not an acronym ("CVPR")
CITATION = re.compile(
    rf"(?P<et_al>{NAME})(?:\s+(?:and|&)\s+{NAME})?\s+et\s+al\."  # Adebayo et al.
    # Yona and Greenfeld (*Title*, 2021) / Zeiler and Fergus (2014)
    rf"|(?P<pair>{NAME})\s+(?:and|&)\s+{NAME}\s*\((?=[^()]*(?:\*[^*\n]+\*|\b(?:19|20)\d\d\b))"
    rf"|(?P<pair_year>{NAME})\s+(?:and|&)\s+{NAME},?\s+(?:19|20)\d\d\b"  # Zeiler and Fergus, 2014
    rf"|(?P<titled>{NAME})\s+\((?=\*[^*\n]+\*[^()]*\b(?:19|20)\d\d\b)"  # Shapley (*Title*, 1953)
    rf"|\((?P<one>{NAME}),\s+(?:19|20)\d\d\)")  # (Shapley, 1953)
ENTRY = re.compile(r"^- (?P<authors>[^*]+?), \*(?P<title>[^*]+)\*, (?P<venue>[^;]+?), "
                   r"(?P<year>(?:19|20)\d\d); (?P<cited>.+)$")


def first_author(entry: re.Match) -> str:
    return entry["authors"].split(",")[0].split(" and ")[0].strip()


def citations(text: str) -> set[str]:
    """The first authors' surnames of the papers ``text`` cites."""
    return {next(v for v in m.groupdict().values() if v) for m in CITATION.finditer(text)}


def notebook_numbers(text: str) -> set[str]:
    """The notebook numbers a reading-list entry names: "06, 08", "00–08" (a range)."""
    found = set()
    for m in re.finditer(r"\b(\d\d)(?:\s*[–-]\s*(\d\d))?\b", text):
        low, high = int(m.group(1)), int(m.group(2) or m.group(1))
        found |= {f"{n:02d}" for n in range(low, high + 1)}
    return found


def reading_list(nb) -> list[dict]:
    """The reading list's entries, each list item joined across its wrapped lines."""
    cell = next(c for c in nb.cells if c.cell_type == "markdown"
                and re.search(r"^## (Reading list|阅读清单)$", c.source, re.MULTILINE))
    items, current = [], None
    for line in cell.source.splitlines():
        if line.startswith("- "):
            current = [line]
            items.append(current)
        elif current is not None and line.startswith("  "):
            current.append(line.strip())
        else:
            current = None
    return [" ".join(item) for item in items]


def cited_by_notebooks() -> dict[str, set[str]]:
    """First author -> the numbers of the English notebooks (the recap aside) that cite them, in
    Markdown or in code comments."""
    found: dict[str, set[str]] = {}
    for path in course_notebooks(NOTEBOOKS):
        if path.stem == RECAP:
            continue
        text = "\n".join(c.source for c in notebook(path.stem[:2]).cells)
        for name in citations(text):
            found.setdefault(name, set()).add(path.stem[:2])
    return found


def test_the_citation_pattern_finds_citations_and_nothing_else():
    cited = ("Adebayo et al.'s test; Yona and Greenfeld (*Revisiting Sanity Checks*, 2021); "
             "ROAD (Rong et al., *A Consistent ...*, ICML 2022); Zeiler & Fergus (2014); "
             "Zeiler and Fergus, 2014; Sturmfels (*Visualizing the Impact*, Distill 2020); "
             "(Shapley, 1953); # the Grad-CAM paper (Selvaraju et al.) puts a ReLU")
    assert citations(cited) == {"Adebayo", "Yona", "Rong", "Zeiler", "Sturmfels", "Shapley",
                                "Selvaraju"}
    plain = ("Integrated Gradients and Occlusion (notebook 03) agree; settings (`make lab`, "
             "Binder, the hub image); NeurIPS (2019); CVPR, 2023; ResNet18 and Lite0 (224 x 224); "
             "*Kernel → Shut Down Kernel*; Saliency and SmoothGrad, 15 % noise")
    assert citations(plain) == set()


def test_every_paper_the_notebooks_cite_is_on_the_reading_list(recap):
    entries = {}
    for item in reading_list(recap):
        m = ENTRY.match(item)
        assert m, f"not 'authors, *title*, venue, year; notebooks': {item}"
        entries[first_author(m)] = m
    cited = cited_by_notebooks()
    assert {"Adebayo", "Petsiuk", "Rong", "Yeh", "Selvaraju", "Sundararajan"} <= set(cited)
    missing = sorted(set(cited) - set(entries))
    assert not missing, f"cited in the notebooks, not on the reading list: {missing}"
    for name, stems in cited.items():
        named = notebook_numbers(entries[name]["cited"])
        assert stems <= named, f"{name} is cited in notebooks {sorted(stems - named)} too"
    existing = {p.stem[:2] for p in course_notebooks(NOTEBOOKS)}
    for name, m in entries.items():
        assert notebook_numbers(m["cited"]) and notebook_numbers(m["cited"]) <= existing, name
    for name in ("Sundararajan", "Zeiler", "Selvaraju", "Adebayo", "Petsiuk", "Rong", "Yeh",
                 "Simonyan", "Smilkov", "Yona", "Binder", "Kokhlikyan"):
        assert name in entries, name


def test_the_chinese_reading_list_has_the_same_papers(recap):
    english = [ENTRY.match(item) for item in reading_list(recap)]
    chinese = " ".join(reading_list(notebook("09", "zh-CN")))
    assert len(reading_list(notebook("09", "zh-CN"))) == len(english)
    for m in english:
        assert first_author(m) in chinese and m["title"] in chinese
        assert m["year"] in chinese
