"""When does one map beat another? Item by item, beyond the noise.

A method and each reference map are scored on the same items (a photo, and a seed where a
reference is drawn at random), so the comparison is paired: for every item the improvement of
the method over the reference (reference minus method where lower is better, method minus
reference where higher is better), and the method beats the reference when those improvements
have mean - sd > 0 (sample sd, ddof = 1) over at least ``MIN_ITEMS`` items. How often the rule
says "beats" when nothing differs, its false-alarm rate, is measured the same way: one random
map against another.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

MIN_ITEMS = 6


class Score(NamedTuple):
    """A score on every item, in the items' order (the same order for every name)."""
    values: tuple[float, ...]

    @classmethod
    def of(cls, values) -> "Score":
        v = tuple(float(x) for x in values)
        if not v or not np.isfinite(v).all():
            raise ValueError(f"a score needs finite values, got {list(v)}")
        return cls(v)

    @property
    def mean(self) -> float:
        return float(np.mean(self.values))

    @property
    def sd(self) -> float:
        """The sample standard deviation (ddof = 1); 0 for a single item."""
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else 0.0

    def text(self, digits: int = 2) -> str:
        return f"{self.mean:.{digits}f} ± {self.sd:.{digits}f}"

    def __str__(self) -> str:
        return self.text()


def improvement(method: Sequence[float], reference: Sequence[float],
                lower_is_better: bool) -> Score:
    """The method's improvement over the reference on each item."""
    m, r = np.asarray(method, dtype=float), np.asarray(reference, dtype=float)
    if m.shape != r.shape or m.ndim != 1:
        raise ValueError(f"paired scores need one value per item on both sides, got {m.size} "
                         f"and {r.size}")
    return Score.of(r - m if lower_is_better else m - r)


def beats(method: Sequence[float], reference: Sequence[float], lower_is_better: bool,
          min_items: int = MIN_ITEMS) -> bool:
    """Whether the improvements over the reference have mean - sd > 0, over at least
    ``min_items`` items."""
    gain = improvement(method, reference, lower_is_better)
    if len(gain.values) < min_items:
        raise ValueError(f"the rule compares at least {min_items} items, got {len(gain.values)}")
    return gain.mean - gain.sd > 0


def beats_all(method: Sequence[float], references: dict[str, Sequence[float]],
              lower_is_better: bool) -> bool:
    """Whether the method beats every reference by :func:`beats`."""
    return all(beats(method, r, lower_is_better) for r in references.values())


def false_alarm_rate(draws: Sequence[Sequence[float]], lower_is_better: bool) -> float:
    """How often one draw of a random map beats another by :func:`beats`: the share of the
    ordered pairs of different draws in which the rule says "beats" though nothing differs."""
    pairs = [(a, b) for a in range(len(draws)) for b in range(len(draws)) if a != b]
    if not pairs:
        raise ValueError("the false-alarm rate needs at least two draws")
    return sum(beats(draws[a], draws[b], lower_is_better) for a, b in pairs) / len(pairs)


def verdicts(scores: dict[str, dict[str, list[float]]], methods: Sequence[str],
             references: Sequence[str], lower_is_better: dict[str, bool]
             ) -> dict[str, dict[str, bool]]:
    """method -> metric -> whether the method beats every reference on that metric."""
    return {m: {metric: beats_all(by_name[m], {r: by_name[r] for r in references},
                                  lower_is_better[metric])
                for metric, by_name in scores.items()}
            for m in methods}
