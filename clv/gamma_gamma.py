"""Gamma-Gamma spend model (Fader & Hardie 2013 note 025; Fader, Hardie & Lee 2005 JMR).

Fitted on customers with at least one repeat purchase, on their average repeat-purchase
value. The density of the average is written in the note's numerically safe form
``-log z - betaln(px, q) + q log(γ/(γ+xz)) + px log(xz/(γ+xz))`` (both bases below one), so
large x and large averages are harmless.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import betaln, digamma

from clv.bgnbd import ModelFitError, minimize_log_params

log = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float  # γ in the note: scale of the gamma mixing distribution of ν

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.p, self.q, self.v)


@dataclass(frozen=True)
class GammaGammaFit:
    params: GammaGammaParams
    log_likelihood: float
    n_customers: int
    iterations: int


def _inputs(frequency: npt.ArrayLike, monetary: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary, dtype=np.float64)
    keep = (x > 0) & (m > 0)
    return x[keep], m[keep]


def log_likelihood(
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary: npt.ArrayLike
) -> FloatArray:
    """Per-customer log density of the observed average spend (customers with x > 0, m > 0)."""
    x, m = _inputs(frequency, monetary)
    p, q, v = params.as_tuple()
    xm = x * m
    return np.asarray(
        -np.log(m) - betaln(p * x, q) + q * np.log(v / (v + xm)) + p * x * np.log(xm / (v + xm)),
        dtype=np.float64,
    )


def _neg_ll_and_grad(theta: FloatArray, x: FloatArray, m: FloatArray) -> tuple[float, FloatArray]:
    p, q, v = np.exp(theta)
    xm = x * m
    log_sv = np.log(v / (v + xm))
    log_sm = np.log(xm / (v + xm))
    ll = -np.log(m) - betaln(p * x, q) + q * log_sv + p * x * log_sm
    psi_all = digamma(p * x + q)
    d_p = x * (psi_all - digamma(p * x)) + x * log_sm
    d_q = psi_all - digamma(q) + log_sv
    d_v = q / v - (p * x + q) / (v + xm)
    grad = np.array([d_p.sum() * p, d_q.sum() * q, d_v.sum() * v])
    return -float(ll.sum()), -grad


def fit(
    frequency: npt.ArrayLike, monetary: npt.ArrayLike, initial: GammaGammaParams | None = None
) -> GammaGammaFit:
    """Maximum-likelihood p, q, γ from repeat customers' (x, average repeat spend)."""
    x, m = _inputs(frequency, monetary)
    if x.size < 2:
        raise ModelFitError("Gamma-Gamma: need at least two customers with repeat purchases")
    if initial is None:
        # moments: individual CV ~ 1/sqrt(p); population mean p*v/(q-1) ~ mean(m)
        initial = GammaGammaParams(p=2.0, q=3.0, v=float(np.mean(m)))
    theta0 = np.log(np.array(initial.as_tuple()))
    best = minimize_log_params(_neg_ll_and_grad, theta0, (x, m), "Gamma-Gamma")
    p, q, v = (float(t) for t in np.exp(best.x))
    log.info("Gamma-Gamma fit: p=%.4f q=%.4f v=%.4f LL=%.3f", p, q, v, -best.fun)
    return GammaGammaFit(GammaGammaParams(p, q, v), float(-best.fun), int(x.size), int(best.nit))


def population_mean_spend(params: GammaGammaParams) -> float:
    """E(Z) = pγ/(q-1); infinite when q ≤ 1 (heavy tail), which we report as NaN."""
    p, q, v = params.as_tuple()
    return p * v / (q - 1) if q > 1 else float("nan")


def conditional_expected_spend(
    params: GammaGammaParams, frequency: npt.ArrayLike, monetary: npt.ArrayLike
) -> FloatArray:
    """E(Z | x, m_x) = p(γ + x m_x)/(px + q - 1): a shrinkage of m_x towards E(Z) (note eq. 5).

    Customers with x = 0 get the population mean.
    """
    p, q, v = params.as_tuple()
    x = np.asarray(frequency, dtype=np.float64)
    m = np.where(x > 0, np.asarray(monetary, dtype=np.float64), 0.0)
    return np.asarray(p * (v + x * m) / (p * x + q - 1), dtype=np.float64)
