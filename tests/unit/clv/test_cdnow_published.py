"""The fits reproduce the published CDNOW results, and the holdout check.

Published numbers (see tests/data/cdnow/PROVENANCE.md):
- Fader, Hardie & Lee (2005), BG/NBD on the 2,357-customer sample, 39-week calibration:
  r=0.243, alpha=4.414, a=0.793, b=2.426, LL=-9582.4 (given to 3 decimals / 1 decimal).
- Fader & Hardie (2013) Gamma-Gamma note: p=6.25, q=3.74, gamma=15.44 (2 decimals), on the
  946 customers with a repeat purchase, whose mean average repeat spend is $35.08.
"""

from __future__ import annotations

import numpy as np

from clv import bgnbd, gamma_gamma
from clv.data import CustomerSummary


def test_summary_matches_the_published_cohort(cdnow: CustomerSummary) -> None:
    assert cdnow.size == 2357
    assert int(np.count_nonzero(cdnow.frequency)) == 946
    # customer 0001 in FHL's spreadsheet: x=2, t_x=30.43, T=38.86
    i = cdnow.customer_ids.index("0001")
    assert (
        int(cdnow.frequency[i]),
        round(float(cdnow.recency[i]), 2),
        round(float(cdnow.T[i]), 2),
    ) == (
        2,
        30.43,
        38.86,
    )
    assert round(float(cdnow.monetary[cdnow.frequency > 0].mean()), 2) == 35.08


def test_spend_independence_check_matches_fhl_jmr_2005(cdnow: CustomerSummary) -> None:
    """FHL (2005 JMR, sec. 2.2): corr(frequency, average repeat spend) = 0.11 on CDNOW."""
    repeat = cdnow.frequency > 0
    corr = np.corrcoef(cdnow.frequency[repeat], cdnow.monetary[repeat])[0, 1]
    assert round(float(corr), 2) == 0.11


def test_bgnbd_matches_fader_hardie_lee_2005(cdnow_bgnbd: bgnbd.BetaGeoFit) -> None:
    p = cdnow_bgnbd.params
    assert (round(p.r, 3), round(p.alpha, 3), round(p.a, 3), round(p.b, 3)) == (
        0.243,
        4.414,
        0.793,
        2.426,
    )
    assert round(cdnow_bgnbd.log_likelihood, 1) == -9582.4


def test_gamma_gamma_matches_fader_hardie_2013(cdnow_gg: gamma_gamma.GammaGammaFit) -> None:
    p = cdnow_gg.params
    assert cdnow_gg.n_customers == 946
    assert (round(p.p, 2), round(p.q, 2), round(p.v, 2)) == (6.25, 3.74, 15.44)


def test_holdout_per_customer(cdnow: CustomerSummary, cdnow_bgnbd: bgnbd.BetaGeoFit) -> None:
    """Per-customer conditional expectations for the 39 holdout weeks vs what happened.

    FHL (2005) publish two per-customer figures, which we reproduce to their digits: the
    correlation of expected and actual holdout purchases (0.626) and the zero class (the 1,411
    customers without a repeat purchase in calibration made 334 purchases, 0.24 each, and the
    model expects 0.23 each).
    """
    expected = bgnbd.conditional_expected_purchases(
        cdnow_bgnbd.params, cdnow.holdout_weeks, cdnow.frequency, cdnow.recency, cdnow.T
    )
    actual = cdnow.holdout_frequency
    assert round(float(np.corrcoef(expected, actual)[0, 1]), 3) == 0.626
    zero = cdnow.frequency == 0
    assert (int(zero.sum()), int(actual[zero].sum())) == (1411, 334)
    assert round(float(expected[zero].mean()), 2) == 0.23
    # Every calibration-frequency group: mean expected within 0.4 purchases (and within 30%)
    # of the mean actual; the groups have 1411 .. 35 customers, and FHL's figure 5 shows the
    # same gaps (the model is a little low for the mid-frequency groups).
    for k in range(8):
        group = (cdnow.frequency == k) if k < 7 else (cdnow.frequency >= 7)
        gap = abs(float(expected[group].mean()) - float(actual[group].mean()))
        assert gap < 0.4 and gap / float(actual[group].mean()) < 0.3, k


def test_holdout_total(cdnow: CustomerSummary, cdnow_bgnbd: bgnbd.BetaGeoFit) -> None:
    """Cohort totals: FHL report the week-78 cumulative forecast 4% under the actual.

    Actual: 2,457 repeat purchases in calibration + 1,882 in the holdout = 4,339. We require
    the under-forecast to be 4% when rounded to whole percent (published precision). The
    holdout-only total of conditional expectations is lower (1,653, -12%): FHL's figure 2
    shows the same widening gap after week 39, so we bound it at 15%.
    """
    ages_78 = (cdnow.holdout_end.toordinal() - cdnow.first_day) / 7.0  # type: ignore[union-attr]
    cumulative = float(bgnbd.expected_purchases(cdnow_bgnbd.params, ages_78).sum())
    actual_total = int(cdnow.frequency.sum() + cdnow.holdout_frequency.sum())
    assert actual_total == 4339
    assert round((1 - cumulative / actual_total) * 100) == 4
    conditional = bgnbd.conditional_expected_purchases(
        cdnow_bgnbd.params, cdnow.holdout_weeks, cdnow.frequency, cdnow.recency, cdnow.T
    )
    assert 0.85 < float(conditional.sum()) / int(cdnow.holdout_frequency.sum()) < 1.0
