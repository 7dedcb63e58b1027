"""From a purchase log to fitted models, per-customer predictions, segments and CLV."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from clv import bgnbd, gamma_gamma, segments
from clv.data import DAYS_PER_WEEK, CustomerSummary, PurchaseLog, summarise
from clv.value import customer_lifetime_value, discounted_expected_purchases

log = logging.getLogger(__name__)

MODEL_NAME = "bgnbd-gg-v1"
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ClvOptions:
    """What to fit and predict. Times in days; rates per month; margin as a fraction."""

    calibration_end: dt.date
    horizon_days: int = 365
    monthly_discount_rate: float = 0.01
    margin: float = 1.0
    # None: use every purchase after the calibration end as the holdout (if there are any)
    holdout_end: dt.date | None = None
    # the point in time the input was read as of (MySQL source); part of the model version
    as_of: dt.datetime | None = None

    @property
    def model_version(self) -> str:
        version = f"{MODEL_NAME}@{self.calibration_end.isoformat()}"
        if self.as_of is not None:
            stamp = self.as_of.astimezone(dt.UTC) if self.as_of.tzinfo else self.as_of
            version += f"/asof={stamp:%Y%m%dT%H%M%SZ}"
        return version

    def __post_init__(self) -> None:
        if self.horizon_days < 0:
            raise ValueError("horizon_days must be >= 0")
        if not 0 <= self.monthly_discount_rate < 1:
            raise ValueError("monthly discount rate must be in [0, 1)")
        if not 0 < self.margin <= 1:
            raise ValueError("margin must be in (0, 1]")


@dataclass(frozen=True)
class Tracking:
    """Cumulative repeat purchases of the cohort by week: actual vs BG/NBD (FHL fig. 2)."""

    start: dt.date
    weeks: FloatArray  # end of each week, weeks since the first purchase in the cohort
    actual: FloatArray
    expected: FloatArray
    calibration_weeks: float


def tracking(
    purchases: PurchaseLog, s: CustomerSummary, params: bgnbd.BetaGeoParams
) -> Tracking | None:
    """Weekly cumulative repeat purchase days, actual and expected, to the holdout end."""
    if s.size == 0:
        return None
    end = (s.holdout_end or s.calibration_end).toordinal()
    start = int(s.first_day.min())
    n_weeks = max(1, int(np.ceil((end - start + 1) / DAYS_PER_WEEK)))
    week_end_day = start - 1 + np.minimum(np.arange(1, n_weeks + 1) * 7, end - start + 1)
    # actual: distinct purchase days of cohort customers after their first day
    index = {cid: i for i, cid in enumerate(purchases.customer_ids)}
    cohort = np.zeros(len(purchases.customer_ids), dtype=bool)
    first = np.full(len(purchases.customer_ids), np.iinfo(np.int64).max, dtype=np.int64)
    ids = np.fromiter((index[c] for c in s.customer_ids), dtype=np.int64, count=s.size)
    cohort[ids] = True
    first[ids] = s.first_day
    keep = cohort[purchases.customer] & (purchases.day <= end)
    # distinct (customer, day) pairs through one int64 key: 1-D unique is far faster than axis=0
    key = np.sort(purchases.customer[keep] * (1 << 32) + purchases.day[keep])
    key = key[np.r_[True, key[1:] != key[:-1]]] if key.size else key
    pair_customer, pair_day = key >> 32, key & ((1 << 32) - 1)
    repeat_days = pair_day[pair_day > first[pair_customer]]
    actual = np.searchsorted(np.sort(repeat_days), week_end_day, side="right").astype(np.float64)
    # expected: sum over birth days of count * E[X(age)] at each week end
    births, counts = np.unique(s.first_day, return_counts=True)
    ages = np.clip((week_end_day[None, :] - births[:, None]) / DAYS_PER_WEEK, 0.0, None)
    expected = (counts[:, None] * bgnbd.expected_purchases(params, ages)).sum(axis=0)
    return Tracking(
        start=dt.date.fromordinal(start),
        weeks=(week_end_day - start + 1) / DAYS_PER_WEEK,
        actual=actual,
        expected=np.asarray(expected, dtype=np.float64),
        calibration_weeks=(s.calibration_end.toordinal() - start + 1) / DAYS_PER_WEEK,
    )


@dataclass(frozen=True)
class ClvResult:
    options: ClvOptions
    summary: CustomerSummary
    bgnbd: bgnbd.BetaGeoFit
    gamma_gamma: gamma_gamma.GammaGammaFit
    expected_purchases: FloatArray  # repeat purchases expected in the horizon
    p_alive: FloatArray
    expected_spend: FloatArray  # Gamma-Gamma conditional mean spend per purchase
    clv: FloatArray
    segment: list[str]
    holdout_expected: FloatArray | None  # E[Y(holdout length)], when there is a holdout
    tracking: Tracking | None = None
    model_version: str = MODEL_NAME
    computed_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))

    def contract_json(self) -> dict[str, Any]:
        """CONTRACT §6 shape of ``txnpipe clv fit --json``."""
        s = self.summary
        b, g = self.bgnbd.params, self.gamma_gamma.params
        monetary_cents = s.monetary_cents.tolist()
        columns = zip(
            s.customer_ids,
            s.frequency.tolist(),
            _rounded(s.recency),
            _rounded(s.T),
            monetary_cents,
            _rounded(self.expected_purchases),
            _rounded(self.p_alive),
            _rounded(self.clv, 2),
            strict=True,
        )
        customers = [
            {
                "customer_id": cid,
                "frequency": x,
                "recency": rec,
                "T": age,
                # a JSON number printing exactly as the 2-place decimal (int/100 is
                # correctly rounded and repr is the shortest round-trip form)
                "monetary": cents / 100,
                "expected_purchases": exp,
                "p_alive": alive,
                "clv": value,
            }
            for cid, x, rec, age, cents, exp, alive, value in columns
        ]
        return {
            "bgnbd": {
                "r": b.r,
                "alpha": b.alpha,
                "a": b.a,
                "b": b.b,
                "log_likelihood": self.bgnbd.log_likelihood,
            },
            "gamma_gamma": {
                "p": g.p,
                "q": g.q,
                "v": g.v,
                "log_likelihood": self.gamma_gamma.log_likelihood,
            },
            "customers": customers,
        }


def _rounded(values: FloatArray, digits: int = 6) -> list[float]:
    """Rounded plain floats; non-finite values (never expected) become 0 to keep JSON valid."""
    clean = np.where(np.isfinite(values), values, 0.0)
    out: list[float] = np.round(clean, digits).tolist()
    return out


def default_holdout_end(log_: PurchaseLog, calibration_end: dt.date) -> dt.date | None:
    """The last purchase day when it is after the calibration end, else no holdout."""
    if log_.size == 0:
        return None
    last = dt.date.fromordinal(int(log_.day.max()))
    return last if last > calibration_end else None


def run(purchases: PurchaseLog, options: ClvOptions, with_tracking: bool = True) -> ClvResult:
    """Summarise, fit BG/NBD and Gamma-Gamma, predict, value and segment every customer."""
    holdout_end = options.holdout_end or default_holdout_end(purchases, options.calibration_end)
    s = summarise(purchases, options.calibration_end, holdout_end)
    if s.size == 0:
        raise bgnbd.ModelFitError(
            f"no customer purchased on or before calibration_end={options.calibration_end}"
        )
    log.info(
        "CLV: %d customers (%d repeat), %d first seen after %s",
        s.size,
        int(np.count_nonzero(s.frequency)),
        s.excluded_later_customers,
        options.calibration_end,
    )
    bg = bgnbd.fit(s.frequency, s.recency, s.T)
    gg = gamma_gamma.fit(s.frequency, s.monetary)
    horizon_weeks = options.horizon_days / DAYS_PER_WEEK
    expected = bgnbd.conditional_expected_purchases(
        bg.params, horizon_weeks, s.frequency, s.recency, s.T
    )
    alive = bgnbd.p_alive(bg.params, s.frequency, s.recency, s.T)
    spend = gamma_gamma.conditional_expected_spend(gg.params, s.frequency, s.monetary)
    if gg.params.q <= 1:
        # E(Z) is infinite for q <= 1: fall back to the observed mean for one-time buyers
        fallback = float(np.mean(s.monetary[s.frequency > 0]))
        log.warning(
            "Gamma-Gamma q=%.3f <= 1: one-time buyers valued at the observed mean", gg.params.q
        )
        spend = np.where(s.frequency > 0, spend, fallback)
    discounted = discounted_expected_purchases(
        bg.params, s.frequency, s.recency, s.T, options.horizon_days, options.monthly_discount_rate
    )
    value = customer_lifetime_value(discounted, spend, options.margin)
    scores = segments.score(
        days_since_last=(s.T - s.recency) * DAYS_PER_WEEK,
        purchases=s.frequency + 1,
        average_spend=s.total_cents / (s.frequency + 1.0),
        tenure_days=s.T * DAYS_PER_WEEK,
    )
    holdout_expected = None
    if s.holdout_end is not None:
        holdout_expected = bgnbd.conditional_expected_purchases(
            bg.params, s.holdout_weeks, s.frequency, s.recency, s.T
        )
    return ClvResult(
        options=options,
        summary=s,
        bgnbd=bg,
        gamma_gamma=gg,
        expected_purchases=expected,
        p_alive=alive,
        expected_spend=spend,
        clv=value,
        segment=segments.assign(scores),
        holdout_expected=holdout_expected,
        tracking=tracking(purchases, s, bg.params) if with_tracking else None,
        model_version=options.model_version,
    )
