"""Named RFM segments with one readable rule each (the README lists them).

Scores are quintiles among the customers being scored (1 = worst, 5 = best), ties sharing
their mid-rank, so a segment is always relative to this customer base:

- R: days since the last purchase day (fewer is better);
- F: number of purchase days;
- M: average spend per purchase day.

The first rule that matches names the segment (``RULES`` in order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]

NEW_CUSTOMER_DAYS = 30


@dataclass(frozen=True)
class Scores:
    r: IntArray
    f: IntArray
    m: IntArray
    tenure_days: npt.NDArray[np.float64]


@dataclass(frozen=True)
class SegmentRule:
    name: str
    rule: str  # the rule in words, as the README and the report show it
    matches: Callable[[Scores], npt.NDArray[np.bool_]]


RULES: tuple[SegmentRule, ...] = (
    SegmentRule(
        "new",
        f"first purchase within the last {NEW_CUSTOMER_DAYS} days: too new to judge",
        lambda s: s.tenure_days <= NEW_CUSTOMER_DAYS,
    ),
    SegmentRule(
        "champions",
        "R ≥ 4 and F = 5 and M ≥ 3: bought recently, buy the most often, spend well",
        lambda s: (s.r >= 4) & (s.f == 5) & (s.m >= 3),
    ),
    SegmentRule(
        "loyal",
        "F ≥ 4 and R ≥ 3: buy often and have not lapsed",
        lambda s: (s.f >= 4) & (s.r >= 3),
    ),
    SegmentRule(
        "promising",
        "R ≥ 4: bought recently, not (yet) often",
        lambda s: s.r >= 4,
    ),
    SegmentRule(
        "at risk",
        "F ≥ 3 and R ≤ 2: used to buy often, not lately",
        lambda s: (s.f >= 3) & (s.r <= 2),
    ),
    SegmentRule(
        "hibernating",
        "R ≤ 2: last purchase long ago, few purchases",
        lambda s: s.r <= 2,
    ),
    SegmentRule(
        "needs attention",
        "everyone else: middling recency (R = 3), not frequent",
        lambda s: np.ones(s.r.size, dtype=bool),
    ),
)

SEGMENT_NAMES: tuple[str, ...] = tuple(rule.name for rule in RULES)


def quintile_scores(values: npt.ArrayLike, higher_is_better: bool = True) -> IntArray:
    """1..5 by mid-rank percentile; equal values always get equal scores."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return np.zeros(0, dtype=np.int64)
    if not higher_is_better:
        v = -v
    sorted_v = np.sort(v)
    below = np.searchsorted(sorted_v, v, side="left")
    not_above = np.searchsorted(sorted_v, v, side="right")
    pct = (below + not_above) / (2.0 * v.size)  # mid-rank in (0, 1)
    scores: IntArray = np.minimum(5, 1 + np.floor(pct * 5)).astype(np.int64)
    return scores


def score(
    days_since_last: npt.ArrayLike,
    purchases: npt.ArrayLike,
    average_spend: npt.ArrayLike,
    tenure_days: npt.ArrayLike,
) -> Scores:
    return Scores(
        r=quintile_scores(days_since_last, higher_is_better=False),
        f=quintile_scores(purchases),
        m=quintile_scores(average_spend),
        tenure_days=np.asarray(tenure_days, dtype=np.float64),
    )


def assign(scores: Scores) -> list[str]:
    """The segment name of every customer (first matching rule)."""
    n = scores.r.size
    out = np.full(n, -1, dtype=np.int64)
    for index, rule in enumerate(RULES):
        hit = (out < 0) & rule.matches(scores)
        out[hit] = index
    return [SEGMENT_NAMES[i] for i in out]
