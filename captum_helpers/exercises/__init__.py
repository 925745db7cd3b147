"""Exercises that check themselves, offline: ``q1.check()`` after an exercise says one of

* **not attempted yet**: the answer's names still hold the starter's placeholders (``...`` for
  code, ``""`` for a choice);
* **your code raised**: the learner's own code failed (the last error in the kernel came from the
  cell that sets the answer, or a function the learner wrote raised when the check called it), and
  on which line;
* **not yet**: the answer is wrong, and what to look at;
* **right**, and why it is right.

The check reads the learner's answers from the namespace it is called in (the notebook's), works
out the right answer there, for the model the notebook loaded, and never raises: a check cell
cannot stop *Run All*. ``q1.hint()`` shows the next of its graded hints, ``q1.solution()`` the
solution cells of the course's own notebook, where the repository has them (a learner copy has
none). Nothing is sent anywhere.

Each notebook's exercises live in a module of this package (``ex01`` for ``01_prediction``, ...):
an :class:`Exercise` names the answers and a ``judge`` that returns why a right answer is right or
raises :class:`Wrong` with what to look at. With ``$CAPTUM_COURSE_CHECKS=strict`` (the course's
test runs of the full notebooks, whose check cells follow the solutions) a check that is not right
raises :class:`CheckFailed`.
"""
from __future__ import annotations

import linecache
import os
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..language import language, say

__all__ = ["Answers", "CheckFailed", "Exercise", "Wrong", "choice", "predicted_class", "STRICT_ENV"]

STRICT_ENV = "CAPTUM_COURSE_CHECKS"
STATES = ("untouched", "raised", "wrong", "right")
REPOSITORY = Path(__file__).resolve().parents[2]


class Wrong(Exception):
    """Raised by a judge: the answer is wrong; the message says what to look at."""


class CheckFailed(AssertionError):
    """A check that is not right in a strict run (``$CAPTUM_COURSE_CHECKS=strict``)."""


class Answers:
    """The learner's names, as attributes: ``a.coffee_top5``, ``a["model"]``."""

    def __init__(self, namespace: dict):
        self._namespace = namespace

    def __getattr__(self, name: str) -> Any:
        try:
            return self._namespace[name]
        except KeyError:
            raise Wrong(say(f"`{name}` is not defined: run the notebook's cells above first",
                            f"`{name}` 尚未定义：请先运行上面的单元格")) from None

    __getitem__ = __getattr__

    def get(self, name: str, default: Any = None) -> Any:
        return self._namespace.get(name, default)


def choice(picked: Any, right: str, why: dict[str, str]) -> str:
    """Judge a multiple-choice answer: ``picked`` is the learner's letter, ``right`` the right one,
    ``why`` each letter's explanation (for the right letter: why it is right). Returns the
    explanation of a right pick, raises :class:`Wrong` with the explanation of a wrong one."""
    letter = str(picked).strip().lower().strip("()., ")
    if letter not in why:
        raise Wrong(say(f"answer with one of the letters {', '.join(sorted(why))}, "
                        f"not {picked!r}",
                        f"请用字母 {', '.join(sorted(why))} 之一作答，而不是 {picked!r}"))
    if letter != right:
        raise Wrong(f"({letter}) " + why[letter])
    return why[letter]


def predicted_class(photo: torch.Tensor, claimed) -> int:
    """The class the model predicts from its logits ``photo``: ``claimed`` (the notebook's or the
    learner's index) where its logit ties the largest up to float rounding, else the largest."""
    best = int(photo.argmax())
    try:
        claimed = int(claimed)
    except (TypeError, ValueError):
        return best
    rounding = 1e-5 * max(1.0, abs(photo[best].item()))
    if 0 <= claimed < len(photo) and photo[best] - photo[claimed] <= rounding:
        return claimed
    return best


def _untouched(value: Any) -> bool:
    """Whether ``value`` is a starter's placeholder: ``...`` or an empty string."""
    return value is Ellipsis or (isinstance(value, str) and not value.strip())


def _is_cell(filename: str) -> bool:
    """Whether ``filename`` is a notebook cell's (IPython's ``ipykernel_*`` files or
    ``<ipython-input-...>``), not a library's."""
    return "ipykernel_" in filename or filename.startswith("<ipython-input") or (
        filename.startswith("<") and "cell" in filename)


def _where(tb) -> str | None:
    """The last frame of ``tb`` in a notebook cell, as "line N: code"."""
    found = None
    for frame in traceback.extract_tb(tb):
        if _is_cell(frame.filename):
            found = frame
    if found is None:
        return None
    code = (found.line or linecache.getline(found.filename, found.lineno)).strip()
    return say(f"line {found.lineno} of your cell: `{code}`",
               f"你的单元格第 {found.lineno} 行：`{code}`")


def _raised_in_cell(names: tuple[str, ...]) -> str | None:
    """The kernel's last error, when it came from a cell that sets one of ``names``."""
    error, tb = getattr(sys, "last_value", None), getattr(sys, "last_traceback", None)
    if error is None or tb is None:
        return None
    frames = [f for f in traceback.extract_tb(tb) if _is_cell(f.filename)]
    if not frames:
        return None
    source = "".join(linecache.getlines(frames[0].filename))
    if not any(f"{name} =" in source or f"{name}=" in source for name in names):
        return None
    where = _where(tb) or ""
    return f"{type(error).__name__}: {error} ({where})"


@dataclass
class Exercise:
    """One exercise: the names the learner sets, the judge, graded hints (pairs of English and
    Chinese), and where its solution is (notebook stem and number)."""

    notebook: str
    number: int
    answers: tuple[str, ...]
    judge: Callable[[Answers], str]
    hints: tuple[tuple[str, str], ...] = ()
    state: str | None = field(default=None, init=False)
    message: str = field(default="", init=False)
    _hints_shown: int = field(default=0, init=False)

    @property
    def name(self) -> str:
        return f"q{self.number}"

    def evaluate(self, namespace: dict) -> tuple[str, str]:
        """(state, message) for the answers in ``namespace``; never raises."""
        missing = [n for n in self.answers if n not in namespace or _untouched(namespace[n])]
        if missing:
            raised = _raised_in_cell(tuple(missing))
            if raised:
                return "raised", say(f"your code raised {raised}. Fix it and run the cell again.",
                                     f"你的代码出错了：{raised}。改正后再运行该单元格。")
            names = ", ".join(f"`{n}`" for n in missing)
            return "untouched", say(
                f"set {names} in the exercise's cell and run it (`{self.name}.hint()` for a hint).",
                f"请在练习的单元格里给 {names} 赋值并运行（需要提示：`{self.name}.hint()`）。")
        try:
            return "right", self.judge(Answers(namespace))
        except Wrong as wrong:
            return "wrong", str(wrong)
        except Exception as error:  # noqa: BLE001 (a check never stops Run All)
            where = _where(error.__traceback__)
            if where:
                kind = type(error).__name__
                return "raised", say(f"your code raised {kind}: {error} ({where}).",
                                     f"你的代码出错了：{kind}: {error}（{where}）。")
            return "wrong", say(f"the answer could not be read ({type(error).__name__}: {error}): "
                                "compare its type and shape with what the exercise asks for.",
                                f"无法读取答案（{type(error).__name__}: {error}）：请对照练习要求"
                                "检查它的类型和形状。")

    def check(self, namespace: dict | None = None) -> None:
        """Check the answers in the caller's namespace (or ``namespace``) and say how they stand."""
        if namespace is None:
            namespace = sys._getframe(1).f_globals
        self.state, self.message = self.evaluate(namespace)
        lead = {"untouched": say("Not attempted yet", "尚未作答"),
                "raised": say("Your code raised", "代码出错"),
                "wrong": say("Not yet", "还不对"),
                "right": say("Right", "正确")}[self.state]
        print(say(f"{lead}: {self.message}", f"{lead}：{self.message}"))
        if self.state != "right" and os.environ.get(STRICT_ENV) == "strict":
            raise CheckFailed(f"{self.notebook} {self.name}: {self.state}: {self.message}")

    def hint(self, level: int | None = None) -> None:
        """Show hint ``level`` (1 is the gentlest), or the next one not yet shown."""
        if not self.hints:
            print(say("This exercise has no hints.", "本练习没有提示。"))
            return
        if level is None:
            self._hints_shown = min(self._hints_shown + 1, len(self.hints))
            level = self._hints_shown
        level = max(1, min(level, len(self.hints)))
        english, chinese = self.hints[level - 1]
        more = level < len(self.hints)
        print(say(f"Hint {level} of {len(self.hints)}: {english}"
                  + (f" (`{self.name}.hint()` again for more)" if more else ""),
                  f"提示 {level}/{len(self.hints)}：{chinese}"
                  + (f"（再运行 `{self.name}.hint()` 看下一条）" if more else "")))

    def solution_cells(self) -> list[str] | None:
        """The sources of the solution cells before this exercise's check cell in the course's own
        notebook of this edition, or None where the repository has no such notebook."""
        import json

        folder = REPOSITORY / "notebooks" / ("zh-CN" if language() == "zh" else "")
        found = sorted(folder.glob(f"{self.notebook}*.ipynb"))
        if not found:
            return None
        cells = json.loads(found[0].read_text(encoding="utf-8"))["cells"]
        call = f"{self.name}.check()"
        for index, cell in enumerate(cells):
            if cell["cell_type"] == "code" and "".join(cell["source"]).strip() == call:
                before = []
                for previous in reversed(cells[:index]):
                    if "solution" not in previous["metadata"].get("tags", []):
                        break
                    before.insert(0, "".join(previous["source"]))
                return before or None
        return None

    def solution(self) -> None:
        """Print the solution cells of the course's notebook (the instructor's copy)."""
        cells = self.solution_cells()
        if not cells:
            print(say(f"The solution is in the instructor's copy of the notebook, "
                      f"notebooks/{self.notebook}*.ipynb.",
                      f"答案在讲师版笔记本 notebooks/zh-CN/{self.notebook}*.ipynb 里。"))
            return
        print(say("The solution, from the course's notebook:\n", "答案（取自课程笔记本）：\n"))
        print("\n\n".join(cells))
