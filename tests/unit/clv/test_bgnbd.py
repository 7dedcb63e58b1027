"""BG/NBD numerics: gradient, stability for heavy buyers and long horizons, recovery."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from scipy.special import gammaln

from clv import bgnbd
from clv.bgnbd import BetaGeoParams
from clv.gamma_gamma import GammaGammaParams
from clv.simulate import simulate

CDNOW = BetaGeoParams(r=0.243, alpha=4.414, a=0.793, b=2.426)


def _reference_conditional(p: BetaGeoParams, t: float, x: int, t_x: float, T: float) -> float:
    """FHL eq. 10 with the *untransformed* 2F1 summed term by term in log space.

    Independent of the Euler transformation and of scipy's hyp2f1: every term of
    2F1(r+x, b+x; a+b+x-1; z) is positive, so log-sum-exp of enough terms is exact to
    rounding; the (1-z)^(r+x) factor is folded into the log of each term.
    """
    r, al, a, b = p.as_tuple()
    A, B, C = r + x, b + x, a + b + x - 1
    z = t / (al + T + t)
    k = np.arange(400_000, dtype=np.float64)
    log_terms = (
        gammaln(A + k)
        - gammaln(A)
        + gammaln(B + k)
        - gammaln(B)
        - gammaln(C + k)
        + gammaln(C)
        - gammaln(k + 1)
        + k * np.log(z)
        + A * np.log1p(-z)
    )
    assert log_terms[-1] < log_terms.max() - 40, "series not converged"
    tail = float(np.exp(np.logaddexp.reduce(log_terms)))
    num = C / (a - 1) * (1 - tail)
    den = 1 + (x > 0) * a / (b + x - 1) * ((al + T) / (al + t_x)) ** (r + x) if x > 0 else 1.0
    return num / den


@pytest.mark.parametrize(
    ("x", "t_x", "T", "t"),
    [
        (0, 0.0, 38.86, 39.0),
        (2, 30.43, 38.86, 39.0),
        (7, 29.43, 38.86, 52.0),
        (50, 37.0, 38.0, 104.0),  # heavy buyer, two years
        (400, 90.0, 100.0, 52.0),  # very heavy buyer
        (20, 10.0, 100.0, 520.0),  # lapsed buyer, ten-year horizon
        (1, 1.0, 2.0, 260.0),  # brand-new customer, five years
    ],
    ids=["zero-class", "fhl-0001", "fhl-0006", "heavy-2y", "very-heavy", "lapsed-10y", "new-5y"],
)
def test_conditional_expectation_matches_independent_series(
    x: int, t_x: float, T: float, t: float
) -> None:
    ours = float(bgnbd.conditional_expected_purchases(CDNOW, t, x, t_x, T))
    assert ours == pytest.approx(_reference_conditional(CDNOW, t, x, t_x, T), rel=1e-9)


def test_fhl_spreadsheet_rows() -> None:
    """FHL's Excel rows for customers 0001 and 0006 (x, t_x, T) and P(alive)."""
    x, tx, T = np.array([2, 7]), np.array([30.43, 29.43]), np.array([38.86, 38.86])
    alive = bgnbd.p_alive(CDNOW, x, tx, T)
    assert np.round(alive, 2).tolist() == [0.73, 0.64]
    ll = bgnbd.log_likelihood(CDNOW, x[:1], tx[:1], T[:1])
    assert round(float(ll[0]), 2) == -9.46


def test_heavy_buyers_and_long_horizons_stay_finite() -> None:
    x = np.array([0, 1, 10, 1_000, 20_000])
    T = np.full(5, 500.0)
    tx = np.array([0.0, 250.0, 499.0, 499.9, 500.0])
    for t in (0.0, 1.0, 52.0, 5_200.0):
        e = bgnbd.conditional_expected_purchases(CDNOW, t, x, tx, T)
        assert np.all(np.isfinite(e)) and np.all(e >= 0)
    assert np.all(np.isfinite(bgnbd.log_likelihood(CDNOW, x, tx, T)))
    alive = bgnbd.p_alive(CDNOW, x, tx, T)
    assert alive[0] == 1.0 and np.all((alive >= 0) & (alive <= 1))
    # a 20,000-purchase customer who bought at T is alive and keeps buying at ~40/week
    e = bgnbd.conditional_expected_purchases(CDNOW, 1.0, x[-1:], tx[-1:], T[-1:])
    assert 30 < float(e[0]) < 50


def test_conditional_expectation_is_zero_at_zero_and_grows() -> None:
    ts = np.array([0.0, 1.0, 10.0, 100.0, 1000.0])
    e = bgnbd.conditional_expected_purchases(CDNOW, ts, 3, 20.0, 30.0)
    assert e[0] == pytest.approx(0.0, abs=1e-12)
    assert np.all(np.diff(e) > 0)


def test_a_equal_one_is_the_continuous_limit() -> None:
    near = BetaGeoParams(0.5, 5.0, 1.0 + 1e-4, 2.0)
    at = BetaGeoParams(0.5, 5.0, 1.0, 2.0)
    e_near = float(bgnbd.conditional_expected_purchases(near, 52.0, 3, 20.0, 30.0))
    e_at = float(bgnbd.conditional_expected_purchases(at, 52.0, 3, 20.0, 30.0))
    assert np.isfinite(e_at) and e_at == pytest.approx(e_near, rel=1e-3)


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    x = rng.integers(0, 30, 200).astype(float)
    T = rng.uniform(5, 80, 200)
    tx = np.where(x > 0, T * rng.uniform(0.05, 1, 200), 0.0)
    w = np.ones(200)
    theta = np.log([0.4, 3.0, 0.8, 2.5])
    _, grad = bgnbd._neg_ll_and_grad(theta, x, tx, T, w)
    for i in range(4):
        step = np.zeros(4)
        step[i] = 1e-6
        fd = (
            bgnbd._neg_ll_and_grad(theta + step, x, tx, T, w)[0]
            - bgnbd._neg_ll_and_grad(theta - step, x, tx, T, w)[0]
        ) / 2e-6
        assert grad[i] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_recovers_simulated_parameters() -> None:
    """20k customers drawn from known parameters: each estimate within 10% of the truth."""
    truth = BetaGeoParams(r=0.6, alpha=5.0, a=0.9, b=3.0)
    cohort = simulate(
        20_000, truth, GammaGammaParams(6.0, 4.0, 15.0), dt.date(2024, 1, 1), 180, 540, seed=7
    )
    fitted = bgnbd.fit(cohort.frequency, cohort.recency, cohort.T).params
    for got, want in zip(fitted.as_tuple(), truth.as_tuple(), strict=True):
        assert got == pytest.approx(want, rel=0.10)


def test_rejects_inconsistent_summaries() -> None:
    with pytest.raises(bgnbd.ModelFitError):
        bgnbd.fit([1], [5.0], [4.0])  # recency beyond T
    with pytest.raises(bgnbd.ModelFitError):
        bgnbd.fit([], [], [])


@pytest.mark.parametrize("x", [0, 2, 7, 50], ids=["x0", "x2", "x7", "x50"])
def test_quadrature_agrees_with_the_closed_form(x: int) -> None:
    """The fallback used when 2F1 overflows agrees with the closed form where both work."""
    r, al, a, b = CDNOW.as_tuple()
    T, t = np.array([38.86]), np.array([52.0])
    xs = np.array([float(x)])
    closed = bgnbd._alive_purchases(CDNOW, xs, T, t)
    quad = bgnbd._alive_purchases_quadrature(r, al, a, b, xs, T, t)
    assert quad == pytest.approx(closed, rel=1e-6)


def test_no_dropout_fit_still_predicts() -> None:
    """a, b at the top of their range (data without dropout evidence): finite predictions."""
    p = BetaGeoParams(r=0.75, alpha=1.2, a=158_844.0, b=162_754.0)
    e = bgnbd.conditional_expected_purchases(p, 52.0, [0, 3], [0.0, 9.0], [13.0, 13.0])
    assert np.all(np.isfinite(e)) and np.all(e > 0)
    assert np.isfinite(bgnbd.expected_purchases(p, 52.0))


def _adaptive_bracket(p: BetaGeoParams, x: float, T: float, t: float) -> float:
    """E[purchases in (T, T+t] | alive] = E_p[(1 - ((α+T)/(α+T+pt))^(r+x)) / p] by adaptive quad."""
    from scipy.integrate import quad
    from scipy.stats import beta as beta_dist

    r, al, a, b = p.as_tuple()

    def f(q: float) -> float:
        g = -np.expm1((r + x) * np.log((al + T) / (al + T + q * t))) / q
        return float(g * beta_dist.pdf(q, a, b + x))

    return float(quad(f, 0, 1e-3, limit=500)[0] + quad(f, 1e-3, 1, limit=500)[0])


@pytest.mark.parametrize("t", [1.0, 52.0, 520.0, 5_200.0, 52_000.0], ids=lambda t: f"t{t:g}")
@pytest.mark.parametrize("x", [0, 1, 5, 200], ids=lambda x: f"x{x}")
def test_closed_form_agrees_with_integration_up_to_z_near_one(x: int, t: float) -> None:
    """Closed form vs adaptive integration over the dropout probability, even when
    t/(α+T+t) → 1 (a 1,000-year horizon); the fixed-node fallback is within 1e-4."""
    r, al, a, b = CDNOW.as_tuple()
    xs, T, tt = np.array([float(x)]), np.array([10.0]), np.array([t])
    closed = float(bgnbd._alive_purchases(CDNOW, xs, T, tt)[0])
    assert closed == pytest.approx(_adaptive_bracket(CDNOW, x, 10.0, t), rel=1e-8)
    fallback = float(bgnbd._alive_purchases_quadrature(r, al, a, b, xs, T, tt)[0])
    assert fallback == pytest.approx(closed, rel=1e-4)
