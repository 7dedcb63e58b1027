"""Synthetic customers drawn from BG/NBD + Gamma-Gamma, for tests and the benchmark.

Each customer: λ ~ gamma(r, rate α) purchases per week while alive, p ~ beta(a, b) chance
of dropping out after each purchase, ν ~ gamma(q, rate γ) and each purchase's value
~ gamma(p_spend, rate ν). The first purchase is at the customer's birth.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from clv.bgnbd import BetaGeoParams
from clv.data import DAYS_PER_WEEK, PurchaseLog
from clv.gamma_gamma import GammaGammaParams


@dataclass(frozen=True)
class SyntheticCohort:
    log: PurchaseLog
    # exact continuous-time summary at the observation end (weeks), before day rounding
    frequency: npt.NDArray[np.int64]
    recency: npt.NDArray[np.float64]
    T: npt.NDArray[np.float64]
    end: dt.date


def simulate(
    n: int,
    bg: BetaGeoParams,
    gg: GammaGammaParams,
    start: dt.date,
    birth_span_days: int,
    observe_days: int,
    seed: int = 0,
) -> SyntheticCohort:
    """``n`` customers born uniformly over ``birth_span_days`` from ``start``, observed for
    ``observe_days`` from ``start``."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(bg.r, 1.0 / bg.alpha, n)
    drop = rng.beta(bg.a, bg.b, n)
    nu = rng.gamma(gg.q, 1.0 / gg.v, n)
    birth_day = rng.integers(0, birth_span_days, n)
    T = (observe_days - 1 - birth_day) / DAYS_PER_WEEK  # through the end of the last day
    cust_parts = [np.arange(n)]
    time_parts = [np.zeros(n)]
    x = np.zeros(n, dtype=np.int64)
    t_x = np.zeros(n)
    now = np.zeros(n)
    active = np.arange(n)
    while active.size:
        # BG/NBD: the dropout coin is tossed after each *repeat* purchase, not the first one
        now_a = now[active] + rng.exponential(1.0, active.size) / np.maximum(lam[active], 1e-12)
        inside = now_a <= T[active]
        active, now_a = active[inside], now_a[inside]
        now[active] = now_a
        x[active] += 1
        t_x[active] = now_a
        cust_parts.append(active)
        time_parts.append(now_a)
        active = active[rng.random(active.size) >= drop[active]]
    cust = np.concatenate(cust_parts)
    times = np.concatenate(time_parts)
    day = dt.date(start.year, start.month, start.day).toordinal() + birth_day[cust]
    day = day + np.floor(times * DAYS_PER_WEEK).astype(np.int64)
    spend = rng.gamma(gg.p, 1.0 / nu[cust])
    cents = np.maximum(1, np.round(spend * 100)).astype(np.int64)
    log = PurchaseLog(
        customer_ids=tuple(f"c{i:07d}" for i in range(n)),
        customer=cust.astype(np.int64),
        day=day.astype(np.int64),
        cents=cents,
    )
    return SyntheticCohort(
        log=log,
        frequency=x,
        recency=t_x,
        T=T,
        end=start + dt.timedelta(days=observe_days - 1),
    )
