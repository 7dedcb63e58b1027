"""Customer lifetime value over a horizon: margin × expected spend × discounted purchases.

The horizon is cut into months of 365.25/12 days (the last one possibly shorter); the
expected repeat purchases falling in month k (a difference of BG/NBD conditional
expectations) are discounted by ``(1 + monthly_rate) ** k``, as is customary (lifetimes,
Fader-Hardie-Lee's "discounted expected transactions" on a monthly grid).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from clv.bgnbd import BetaGeoParams, conditional_expected_purchases
from clv.data import DAYS_PER_WEEK

DAYS_PER_MONTH = 365.25 / 12

FloatArray = npt.NDArray[np.float64]


def month_edges(horizon_days: float) -> list[float]:
    """Month boundaries (days) from 0 to the horizon inclusive."""
    if horizon_days <= 0:
        return [0.0]
    n = math.ceil(horizon_days / DAYS_PER_MONTH - 1e-9)
    return [min(k * DAYS_PER_MONTH, float(horizon_days)) for k in range(n + 1)]


def discounted_expected_purchases(
    params: BetaGeoParams,
    frequency: npt.ArrayLike,
    recency: npt.ArrayLike,
    T: npt.ArrayLike,
    horizon_days: float,
    monthly_discount_rate: float,
) -> FloatArray:
    """Σ_k (E[Y(t_k)] − E[Y(t_{k−1})]) / (1+d)^k over the months of the horizon."""
    x = np.asarray(frequency, dtype=np.float64)
    total = np.zeros(x.size)
    previous = np.zeros(x.size)
    edges = month_edges(horizon_days)
    for k, edge in enumerate(edges[1:], start=1):
        current = conditional_expected_purchases(params, edge / DAYS_PER_WEEK, x, recency, T)
        total += (current - previous) / (1.0 + monthly_discount_rate) ** k
        previous = current
    return total


def customer_lifetime_value(
    discounted_purchases: npt.ArrayLike, expected_spend: npt.ArrayLike, margin: float
) -> FloatArray:
    """CLV = margin × E(spend per purchase) × discounted expected purchases."""
    return np.asarray(
        margin * np.asarray(expected_spend, dtype=np.float64) * np.asarray(discounted_purchases),
        dtype=np.float64,
    )
