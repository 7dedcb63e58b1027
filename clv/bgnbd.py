"""BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way").

Maximum likelihood over log-parameters with the analytic gradient. Everything is evaluated
in log space (``gammaln``, ``betaln``, ``logaddexp``), so heavy buyers (x in the thousands)
and long horizons neither overflow nor lose precision:

- the likelihood (FHL eq. 6) as ``A1 + A2 + logaddexp(A3, A4)``;
- P(alive) as a logistic of a log-odds, never a ratio of tiny numbers;
- the conditional expectation (FHL eq. 10) after Euler's transformation of its 2F1,
  ``(1-z)^(r+x) 2F1(r+x, b+x; a+b+x-1; z) = (1-z)^(a-1) 2F1(a+b-1-r, a-1; a+b+x-1; z)``,
  whose numerator parameters do not grow with x, so the series stays short and tame.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

from common.errors import TxnpipeError

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

# log-parameter box: keeps the optimiser away from exp() overflow; real fits sit well inside.
_LOG_BOUNDS = (-12.0, 12.0)
# a == 1 makes eq. 9/10 a 0/0 limit; nudge a by this much (the result is continuous in a).
_A_EPS = 1e-7


class ModelFitError(TxnpipeError):
    """The data cannot support a fit (too few customers, no repeat buyers, inconsistent
    summaries) or the optimiser failed; the message says which model and why (exit 1)."""


@dataclass(frozen=True)
class BetaGeoParams:
    r: float
    alpha: float
    a: float
    b: float

    def as_tuple(self) -> tuple[float, float, float, float]:
        return (self.r, self.alpha, self.a, self.b)


def _unique_rows(
    x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Collapse identical (x, t_x, T) rows into weights: daily data repeats them a lot."""
    stacked = np.stack([x, t_x, T], axis=1)
    uniq, counts = np.unique(stacked, axis=0, return_counts=True)
    return uniq[:, 0], uniq[:, 1], uniq[:, 2], counts.astype(np.float64)


def _loglik_terms(
    params: tuple[float, float, float, float], x: FloatArray, t_x: FloatArray, T: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return a1, a2, a3, a4


def log_likelihood(
    params: BetaGeoParams | tuple[float, float, float, float],
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> FloatArray:
    """Per-customer log-likelihood (FHL eq. 6), stable for any x."""
    p = params.as_tuple() if isinstance(params, BetaGeoParams) else params
    x, t_x, TT = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
    a1, a2, a3, a4 = _loglik_terms(p, x, t_x, TT)
    return np.asarray(a1 + a2 + np.logaddexp(a3, a4), dtype=np.float64)


def _neg_ll_and_grad(
    theta: FloatArray, x: FloatArray, t_x: FloatArray, T: FloatArray, w: FloatArray
) -> tuple[float, FloatArray]:
    r, alpha, a, b = np.exp(theta)
    a1, a2, a3, a4 = _loglik_terms((r, alpha, a, b), x, t_x, T)
    lse = np.logaddexp(a3, a4)
    w3 = np.exp(a3 - lse)
    w4 = np.exp(a4 - lse)  # 0 where x == 0
    ll = float(np.dot(w, a1 + a2 + lse))
    rep = x > 0
    bx1 = np.where(rep, b + x - 1, 1.0)
    log_at = np.log(alpha + T)
    log_atx = np.log(alpha + t_x)
    d_r = digamma(r + x) - digamma(r) + np.log(alpha) - w3 * log_at - w4 * log_atx
    d_alpha = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
    d_a = digamma(a + b) - digamma(a + b + x) + w4 / a
    d_b = digamma(a + b) + digamma(b + x) - digamma(b) - digamma(a + b + x) - w4 / bx1
    grad = np.array(
        [np.dot(w, d_r) * r, np.dot(w, d_alpha) * alpha, np.dot(w, d_a) * a, np.dot(w, d_b) * b]
    )
    return -ll, -grad


@dataclass(frozen=True)
class BetaGeoFit:
    params: BetaGeoParams
    log_likelihood: float
    n_customers: int
    iterations: int


def minimize_log_params(
    neg_ll_and_grad: Callable[..., tuple[float, FloatArray]],
    theta0: FloatArray,
    args: tuple[object, ...],
    model: str,
) -> Any:
    """Maximum likelihood over log-parameters with L-BFGS-B, restarted from its optimum
    until two runs agree (its stopping rule is relative); ModelFitError if not finite."""
    best = None
    for _ in range(3):
        res = minimize(
            neg_ll_and_grad,
            theta0,
            args=args,
            jac=True,
            method="L-BFGS-B",
            bounds=[_LOG_BOUNDS] * len(theta0),
            options={"maxiter": 2000, "ftol": 1e-15, "gtol": 1e-9},
        )
        if best is not None and abs(best.fun - res.fun) < 1e-10:
            best = res if res.fun < best.fun else best
            break
        best = res if best is None or res.fun <= best.fun else best
        theta0 = best.x
    assert best is not None
    if not np.isfinite(best.fun):
        raise ModelFitError(f"{model}: likelihood not finite ({best.message})")
    return best


def fit(
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
    initial: BetaGeoParams | None = None,
) -> BetaGeoFit:
    """Maximum-likelihood BG/NBD parameters (L-BFGS-B on log-parameters, analytic gradient)."""
    x, t_x, TT = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
    if x.size == 0:
        raise ModelFitError("BG/NBD: no customers to fit")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > TT + 1e-9) or np.any((x > 0) & (t_x <= 0)):
        raise ModelFitError("BG/NBD: need x >= 0 and 0 <= t_x <= T, with t_x > 0 when x > 0")
    ux, ut, uT, w = _unique_rows(x, t_x, TT)
    if initial is None:
        # method-of-moments flavoured start: mean rate ~ r/alpha, a=b=1 (uniform dropout)
        rate = max(float(np.sum(x) / max(np.sum(TT), 1e-9)), 1e-3)
        initial = BetaGeoParams(r=0.5, alpha=0.5 / rate, a=1.0, b=1.0)
    theta0 = np.log(np.array(initial.as_tuple()))
    best = minimize_log_params(_neg_ll_and_grad, theta0, (ux, ut, uT, w), "BG/NBD")
    if np.any(np.abs(best.x) >= _LOG_BOUNDS[1] - 1e-3):
        log.warning(
            "BG/NBD: a parameter reached its bound (log-params %s): the data carry little "
            "evidence about it (e.g. no dropout seen); predictions stay finite",
            np.round(best.x, 2).tolist(),
        )
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    log.info("BG/NBD fit: r=%.4f alpha=%.4f a=%.4f b=%.4f LL=%.3f", r, alpha, a, b, -best.fun)
    return BetaGeoFit(BetaGeoParams(r, alpha, a, b), float(-best.fun), int(x.size), int(best.nit))


def p_alive(
    params: BetaGeoParams, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
) -> FloatArray:
    """P(still active at T | x, t_x, T); 1 for customers with no repeat purchase."""
    r, alpha, a, b = params.as_tuple()
    x, t_x, TT = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T))
    rep = x > 0
    bx1 = np.where(rep, b + x - 1, 1.0)
    log_odds_dead = np.log(a) - np.log(bx1) + (r + x) * (np.log(alpha + TT) - np.log(alpha + t_x))
    return np.asarray(np.where(rep, expit(-log_odds_dead), 1.0), dtype=np.float64)


def _a_safe(a: float) -> float:
    return a + _A_EPS if abs(a - 1.0) < _A_EPS else a


_U, _UW = np.polynomial.legendre.leggauss(96)
_U, _UW = (_U + 1) / 2, _UW / 2  # Gauss-Legendre on (0, 1)


def _alive_purchases_quadrature(
    r: float, alpha: float, a: float, b: float, x: FloatArray, T: FloatArray, t: FloatArray
) -> FloatArray:
    """E[purchases in (T, T+t] | alive at T] as a 1-D integral over the dropout probability.

    Given alive, λ ~ gamma(r+x, α+T) and p ~ beta(a, b+x) independently, and a customer
    alive at T buys (1 - e^{-λpt})/p in expectation, so the bracket of FHL eq. 10 is
    E_p[(1 - ((α+T)/(α+T+pt))^(r+x)) / p]. The integrand is bounded and smooth on (0, 1], so
    Gauss-Legendre over the beta quantiles is accurate; used where the closed form's 2F1
    overflows (a and b in the hundreds of thousands: the "nobody drops out" fits).
    """
    from scipy.stats import beta as beta_dist

    p = beta_dist.ppf(_U[None, :], a, (b + x)[:, None])
    p = np.clip(p, 1e-300, 1.0)
    ratio = (alpha + T)[:, None] / ((alpha + T)[:, None] + p * t[:, None])
    g = -np.expm1((r + x)[:, None] * np.log(ratio)) / p
    return np.asarray(g @ _UW, dtype=np.float64)


def _alive_purchases(
    params: BetaGeoParams, x: FloatArray, T: FloatArray, t: FloatArray
) -> FloatArray:
    """Expected repeat purchases in (T, T+t] for customers alive at T (FHL eq. 10 numerator)."""
    r, alpha, a, b = params.as_tuple()
    a = _a_safe(a)
    x, T, t = np.broadcast_arrays(x, T, t)
    z = t / (alpha + T + t)
    c = a + b + x - 1
    # (1-z)^(r+x) 2F1(r+x, b+x; c; z) after Euler's transformation (see module docstring)
    with np.errstate(over="ignore", invalid="ignore"):
        tail = np.exp((a - 1) * np.log1p(-z)) * hyp2f1(a + b - 1 - r, a - 1, c, z)
        out = c / (a - 1) * (1 - tail)
    bad = ~np.isfinite(out) | (out < 0)
    if np.any(bad):
        out = np.array(out, dtype=np.float64)
        out[bad] = _alive_purchases_quadrature(r, alpha, a, b, x[bad], T[bad], t[bad])
    return np.asarray(out, dtype=np.float64)


def conditional_expected_purchases(
    params: BetaGeoParams,
    t: ArrayLike,
    frequency: ArrayLike,
    recency: ArrayLike,
    T: ArrayLike,
) -> FloatArray:
    """E[Y(t) | x, t_x, T]: expected repeat purchases in (T, T+t] (FHL eq. 10), t in weeks."""
    x, t_x, TT, tt = (np.asarray(v, dtype=np.float64) for v in (frequency, recency, T, t))
    alive = p_alive(params, x, t_x, TT)
    return np.asarray(_alive_purchases(params, x, TT, tt) * alive, dtype=np.float64)


def expected_purchases(params: BetaGeoParams, t: ArrayLike) -> FloatArray:
    """E[X(t)] for a customer just acquired: repeat purchases in (0, t] (FHL eq. 9)."""
    tt = np.asarray(t, dtype=np.float64)
    zero = np.zeros(tt.shape)
    return _alive_purchases(params, zero, zero, tt)
