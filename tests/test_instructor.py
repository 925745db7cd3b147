"""The instructor's guide and its Chinese twin: a three-hour agenda (its rows `| NN min | ...`
add up to at most 180 minutes, a break among them), the sections a workshop needs (objectives
for every notebook, a cut list, notebook 05's fallback, an exit quiz with answers), the same plan
in both languages, and the glossary's wording in the Chinese one."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDES = {"en": ROOT / "docs" / "instructor.md", "zh-CN": ROOT / "docs" / "instructor.zh-CN.md"}
# the headings of the sections every guide must have, in each language
SECTIONS = {
    "en": {"objectives": "## Learning objectives", "agenda": "## Agenda",
           "cut list": "## Cut list", "fallback": "## When notebook 05's explorer fails",
           "exit quiz": "## Exit quiz", "talking points": "## Talking points",
           "expected outputs": "## What learners should see", "exercises": "## Exercises",
           "pitfalls": "## Known pitfalls", "checklist": "## Checklist"},
    "zh-CN": {"objectives": "## 学习目标", "agenda": "## 日程", "cut list": "## 删减清单",
              "fallback": "## 笔记本 05 的探索器当天出故障时", "exit quiz": "## 结课测验",
              "talking points": "## 讲解要点", "expected outputs": "## 学员应该看到什么",
              "exercises": "## 练习", "pitfalls": "## 常见问题", "checklist": "## 检查清单"},
}
NOTEBOOKS = sorted({p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")}
                   | {"09_recap"})
AGENDA_ROW = re.compile(r"^\| (\d+) min \| (.+?) \|", re.MULTILINE)


def _text(edition: str) -> str:
    return GUIDES[edition].read_text(encoding="utf-8")


def _section(edition: str, name: str) -> str:
    """The text of one section: from its heading to the next heading of the same level."""
    text, heading = _text(edition), SECTIONS[edition][name]
    assert f"\n{heading}" in text, f"{edition}: no section {heading!r}"
    body = text.split(f"\n{heading}", 1)[1]
    return re.split(r"\n## ", body, maxsplit=1)[0]


def agenda(edition: str) -> list[tuple[int, str]]:
    return [(int(m), what.strip()) for m, what in AGENDA_ROW.findall(_section(edition, "agenda"))]


@pytest.mark.parametrize("edition", list(GUIDES))
def test_the_agenda_fits_in_three_hours_with_a_break(edition):
    rows = agenda(edition)
    assert rows, f"{edition}: no agenda rows written `| NN min | notebook | ... |`"
    total = sum(minutes for minutes, _ in rows)
    assert total <= 180, f"{edition}: the agenda takes {total} minutes"
    assert any(what in ("break", "休息") for _, what in rows), f"{edition}: no break"
    # the total the guide states is the rows' total
    assert re.search(rf"\*\*{total} (minutes|分钟)\*\*", _section(edition, "agenda"))


def test_both_guides_plan_the_same_day():
    english, chinese = agenda("en"), agenda("zh-CN")
    assert [m for m, _ in english] == [m for m, _ in chinese]
    assert [w for _, w in english if w != "break"] == [w for _, w in chinese if w != "休息"]


@pytest.mark.parametrize("edition", list(GUIDES))
def test_each_guide_has_the_sections_a_workshop_needs(edition):
    for name in SECTIONS[edition]:
        assert _section(edition, name).strip(), f"{edition}: the {name} section is empty"
    objectives = _section(edition, "objectives")
    talking = _section(edition, "talking points")
    for stem in NOTEBOOKS:
        assert f"`{stem}`" in objectives, f"{edition}: no objectives for {stem}"
        assert f"### {stem}" in talking, f"{edition}: no talking points for {stem}"


@pytest.mark.parametrize("edition", list(GUIDES))
def test_the_cut_list_says_what_each_cut_saves(edition):
    rows = re.findall(r"^\| (\d+) \| .+ \| (\d+) min \|$", _section(edition, "cut list"),
                      re.MULTILINE)
    assert len(rows) >= 3, f"{edition}: the cut list needs rows `| order | drop | NN min |`"
    assert [int(order) for order, _ in rows] == list(range(1, len(rows) + 1))


@pytest.mark.parametrize("edition", list(GUIDES))
def test_the_exit_quiz_has_six_to_eight_questions_each_with_its_answer(edition):
    items = re.findall(r"^(\d+)\. \*\*(.+?)\*\*(.*(?:\n   .*)*)", _section(edition, "exit quiz"),
                       re.MULTILINE)
    assert 6 <= len(items) <= 8, f"{edition}: {len(items)} questions"
    for number, question, answer in items:
        assert question.rstrip().endswith(("?", "？")), f"{edition} {number}: {question!r}"
        assert len(answer.split()) >= 3 or len(answer.strip()) >= 15, (
            f"{edition} {number}: no answer after the question")


@pytest.mark.parametrize("edition", list(GUIDES))
def test_the_fallback_for_notebook_05_names_its_three_ways(edition):
    fallback = _section(edition, "fallback")
    assert "python -m captum_course insights" in fallback  # the command-line explorer
    assert "make site" in fallback  # the website's copy
    assert "IntegratedGradients(model)" in fallback  # the same maps from code


def test_the_chinese_guide_uses_the_glossarys_words():
    glossary = (ROOT / "docs" / "translation.zh-CN.md").read_text(encoding="utf-8")
    rows = [line.split("|") for line in glossary.split("## 术语表", 1)[1].splitlines()
            if line.startswith("| ") and "---" not in line][1:]
    avoided = {term.strip() for row in rows for term in re.split(r"[、,]", row[3]) if term.strip()}
    assert "积分梯度" in avoided
    text = _text("zh-CN")
    assert [term for term in sorted(avoided) if term in text] == []
