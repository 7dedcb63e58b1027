"""Gamma-Gamma: gradient, shrinkage formula, stability, recovery."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import gammaln

from clv import gamma_gamma
from clv.gamma_gamma import GammaGammaParams

CDNOW = GammaGammaParams(p=6.25, q=3.74, v=15.44)


def test_density_matches_the_direct_form() -> None:
    """The note's 'safe' form equals its eq. 1a for moderate values."""
    x = np.array([1.0, 3.0, 10.0])
    m = np.array([20.0, 35.0, 80.0])
    p, q, v = CDNOW.as_tuple()
    direct = (
        gammaln(p * x + q)
        - gammaln(p * x)
        - gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(v + x * m)
    )
    assert np.allclose(gamma_gamma.log_likelihood(CDNOW, x, m), direct, rtol=1e-12)


def test_large_frequency_and_spend_stay_finite() -> None:
    ll = gamma_gamma.log_likelihood(CDNOW, [5_000, 1], [1e6, 1e-2])
    assert np.all(np.isfinite(ll))


def test_conditional_spend_is_the_published_shrinkage() -> None:
    # population mean 35.22; one $100 purchase -> 80.26; two -> 88.35 (from note eq. 5)
    e = gamma_gamma.conditional_expected_spend(CDNOW, [0, 1, 2], [0.0, 100.0, 100.0])
    assert np.round(e, 2).tolist() == [35.22, 80.26, 88.35]
    assert gamma_gamma.population_mean_spend(CDNOW) == pytest.approx(35.22, abs=0.01)


def test_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(5)
    x = rng.integers(1, 20, 300).astype(float)
    m = rng.gamma(3.0, 10.0, 300)
    theta = np.log([4.0, 3.0, 12.0])
    _, grad = gamma_gamma._neg_ll_and_grad(theta, x, m)
    for i in range(3):
        step = np.zeros(3)
        step[i] = 1e-6
        fd = (
            gamma_gamma._neg_ll_and_grad(theta + step, x, m)[0]
            - gamma_gamma._neg_ll_and_grad(theta - step, x, m)[0]
        ) / 2e-6
        assert grad[i] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_recovers_simulated_parameters() -> None:
    """100k customers (p is weakly identified: 20k leave ±15%); p and E(Z) within 10% and 5%."""
    rng = np.random.default_rng(11)
    truth = GammaGammaParams(p=5.0, q=4.0, v=20.0)
    n = 100_000
    x = rng.integers(1, 10, n)
    nu = rng.gamma(truth.q, 1 / truth.v, n)
    m = rng.gamma(truth.p * x, 1 / (nu * x))  # mean of x gamma(p, nu) draws
    fitted = gamma_gamma.fit(x, m).params
    assert fitted.p == pytest.approx(truth.p, rel=0.1)
    assert gamma_gamma.population_mean_spend(fitted) == pytest.approx(
        gamma_gamma.population_mean_spend(truth), rel=0.05
    )


def test_needs_repeat_customers() -> None:
    with pytest.raises(gamma_gamma.ModelFitError):
        gamma_gamma.fit([0, 0, 1], [0.0, 0.0, 10.0])
