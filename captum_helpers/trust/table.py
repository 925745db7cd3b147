"""A table the trust notebooks display: HTML, which JupyterLab, VS Code and the website all render
(a Markdown table in an output is left as text by some), with the rows kept for tests."""
from __future__ import annotations

import html
from typing import Sequence

from ..language import say
from .rule import Score, beats, beats_all, improvement


class Table:
    """Rows of equal keys, shown as an HTML table; ``rows`` keeps the values."""

    def __init__(self, rows: list[dict], caption: str = ""):
        if not rows:
            raise ValueError("a table needs at least one row")
        self.rows, self.caption, self.columns = rows, caption, list(rows[0])

    @staticmethod
    def _cell(value) -> str:
        if isinstance(value, bool):
            return say("yes", "是") if value else say("no", "否")
        if isinstance(value, float):
            return f"{value:.3f}"
        return str(value)

    def _repr_html_(self) -> str:
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in self.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(self._cell(r[c]))}</td>"
                                        for c in self.columns) + "</tr>" for r in self.rows)
        caption = f"<caption>{html.escape(self.caption)}</caption>" if self.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    def __repr__(self) -> str:
        cells = [self.columns] + [[self._cell(r[c]) for c in self.columns] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
        return "\n".join(([self.caption] if self.caption else []) + lines)


def rule_table(scores: dict[str, Sequence[float]], methods: Sequence[str],
               references: Sequence[str], lower_is_better: bool, digits: int = 3) -> Table:
    """One metric: every map's score (mean ± sd over the items), each method's improvement over
    each reference, and whether it beats every reference by the rule."""
    n = len(next(iter(scores.values())))
    score = say(f"score, mean ± sd over {n} items", f"分数（{n} 项的均值 ± 标准差）")
    rows = []
    for name in [*methods, *references]:
        row = {say("map", "图"): name, score: Score.of(scores[name]).text(digits)}
        for r in references:
            key = say(f"improvement over {r}", f"相对 {r} 的改进")
            row[key] = (improvement(scores[name], scores[r], lower_is_better).text(digits)
                        + (" ✓" if beats(scores[name], scores[r], lower_is_better) else "")
                        if name in methods else "")
        row[say("beats every reference", "胜过所有参照图")] = (
            beats_all(scores[name], {r: scores[r] for r in references}, lower_is_better)
            if name in methods else "")
        rows.append(row)
    return Table(rows)
