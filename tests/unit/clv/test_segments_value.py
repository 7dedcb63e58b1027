"""RFM scores and segment rules; CLV discounting."""

from __future__ import annotations

import numpy as np
import pytest

from clv import segments, value
from clv.bgnbd import BetaGeoParams, conditional_expected_purchases

CDNOW = BetaGeoParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def test_quintiles_share_scores_on_ties_and_span_one_to_five() -> None:
    assert segments.quintile_scores([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]).tolist() == [
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
    ]
    tied = segments.quintile_scores([1] * 6 + [2, 3, 4, 5])
    assert len(set(tied[:6].tolist())) == 1
    assert segments.quintile_scores([5, 1], higher_is_better=False).tolist() == [2, 4]


def test_rules_in_order() -> None:
    s = segments.Scores(
        r=np.array([5, 5, 3, 5, 1, 1, 3]),
        f=np.array([5, 5, 4, 1, 4, 1, 2]),
        m=np.array([5, 5, 1, 1, 1, 1, 1]),
        tenure_days=np.array([10.0, 400, 400, 400, 400, 400, 400]),
    )
    assert segments.assign(s) == [
        "new",
        "champions",
        "loyal",
        "promising",
        "at risk",
        "hibernating",
        "needs attention",
    ]


def test_every_segment_has_a_rule_in_words() -> None:
    assert all(rule.rule for rule in segments.RULES)
    assert len(set(segments.SEGMENT_NAMES)) == len(segments.SEGMENT_NAMES)


def test_month_edges_cover_the_horizon_exactly() -> None:
    edges = value.month_edges(365)
    assert edges[0] == 0 and edges[-1] == 365 and len(edges) == 13
    assert value.month_edges(0) == [0.0]


def test_undiscounted_clv_is_margin_times_spend_times_expected_purchases() -> None:
    x, tx, T = np.array([0, 3]), np.array([0.0, 20.0]), np.array([30.0, 30.0])
    disc = value.discounted_expected_purchases(CDNOW, x, tx, T, 365, 0.0)
    assert disc == pytest.approx(conditional_expected_purchases(CDNOW, 365 / 7, x, tx, T))
    clv = value.customer_lifetime_value(disc, np.array([30.0, 50.0]), 0.25)
    assert clv == pytest.approx(0.25 * np.array([30.0, 50.0]) * disc)


def test_discounting_lowers_value_monotonically() -> None:
    x, tx, T = np.array([3]), np.array([20.0]), np.array([30.0])
    vals = [
        float(value.discounted_expected_purchases(CDNOW, x, tx, T, 730, d)[0])
        for d in (0, 0.01, 0.05)
    ]
    assert vals[0] > vals[1] > vals[2] > 0
