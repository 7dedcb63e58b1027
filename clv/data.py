"""Purchase histories and the BTYD summary (frequency, recency, T, monetary value).

Money stays exact: amounts are parsed as ``Decimal`` and kept as integer cents; only the
model inputs (average spend in currency units, times in weeks) become floats.

Standard BTYD preparation (Fader, Hardie & Lee 2005): purchases of one customer on the same
day are merged into one transaction; ``frequency`` is the number of *repeat* purchase days in
the calibration period, ``recency`` the time from the first to the last purchase day and
``T`` the time from the first purchase day to the end of the calibration day, in weeks
(days / 7), so a customer whose first purchase is on the calibration end has ``T = 0``.
"""

from __future__ import annotations

import csv
import datetime as dt
from array import array
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import numpy.typing as npt

from common.errors import ConfigError

DAYS_PER_WEEK = 7.0
_CENT = Decimal("0.01")


class TransactionsFileError(ConfigError):
    """The purchases file cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class PurchaseLog:
    """Purchases in columns: customer index, day (proleptic ordinal), amount in cents."""

    customer_ids: tuple[str, ...]
    customer: npt.NDArray[np.int64]
    day: npt.NDArray[np.int64]
    cents: npt.NDArray[np.int64]

    @property
    def size(self) -> int:
        return int(self.customer.size)


class PurchaseLogBuilder:
    """Accumulates (customer, date, amount) rows; ``build()`` returns the columns."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        # array('q') holds 8 bytes per value where a list holds a 36-byte int object
        self._customer = array("q")
        self._day = array("q")
        self._cents = array("q")

    @property
    def index(self) -> dict[str, int]:
        """customer id -> index, for fast bulk loading."""
        return self._index

    @property
    def columns(self) -> tuple[array[int], array[int], array[int]]:
        """(customer index, day ordinal, cents) lists, for fast bulk loading."""
        return self._customer, self._day, self._cents

    def add(self, customer_id: str, day: dt.date, cents: int) -> None:
        idx = self._index.setdefault(customer_id, len(self._index))
        self._customer.append(idx)
        self._day.append(day.toordinal())
        self._cents.append(cents)

    def build(self) -> PurchaseLog:
        return PurchaseLog(
            customer_ids=tuple(self._index),
            customer=np.frombuffer(self._customer, dtype=np.int64).copy(),
            day=np.frombuffer(self._day, dtype=np.int64).copy(),
            cents=np.frombuffer(self._cents, dtype=np.int64).copy(),
        )


def to_cents(amount: Decimal) -> int:
    """Decimal currency amount to integer cents, round half up (CONTRACT §1)."""
    return int((amount.quantize(_CENT, rounding=ROUND_HALF_UP) * 100).to_integral_value())


def _amount_cents(text: str) -> int:
    """Exact cents of a plain decimal ≥ 0; the common ``123.45`` shape skips Decimal."""
    text = text.strip()
    whole, _, frac = text.partition(".")
    if len(frac) == 2 and whole.isascii() and frac.isascii() and whole.isdigit() and frac.isdigit():
        return int(whole) * 100 + int(frac)
    cents = to_cents(Decimal(text))
    if cents < 0:
        raise ValueError("negative amount (one row per purchase, refunds removed)")
    return cents


def _parse_date(text: str) -> dt.date:
    text = text.strip()
    if len(text) == 8 and text.isdigit():
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    if len(text) > 10 and text[10] in "T ":
        stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(dt.UTC)
        return stamp.date()
    return dt.date.fromisoformat(text)


def read_purchases_csv(path: Path) -> PurchaseLog:
    """Read ``customer_id,date,amount`` (CONTRACT §6; header required, extra columns ignored).

    Dates are ``YYYY-MM-DD`` (or ISO date-times, taken in UTC); amounts plain decimals ≥ 0
    (one row per purchase: refunds are removed upstream, not netted here).
    """
    builder = PurchaseLogBuilder()
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise TransactionsFileError(
            f"cannot open transactions file={path}: {exc.strerror}"
        ) from None
    with handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        missing = [c for c in ("customer_id", "date", "amount") if c not in header]
        if missing:
            raise TransactionsFileError(
                f"transactions file={path} lacks column(s) {', '.join(missing)}; "
                "expected a header customer_id,date,amount"
            )
        ci, di, ai = header.index("customer_id"), header.index("date"), header.index("amount")
        width = max(ci, di, ai)
        days: dict[str, int] = {}  # dates repeat a lot: parse each distinct text once
        index = builder.index
        customers, ordinals, amounts = builder.columns
        for line, row in enumerate(reader, start=2):
            try:
                customer_id = row[ci].strip()
                day_text = row[di]
                ordinal = days.get(day_text)
                if ordinal is None:
                    ordinal = days[day_text] = _parse_date(day_text).toordinal()
                cents = _amount_cents(row[ai])
                if not customer_id:
                    raise ValueError("empty customer_id")
            except IndexError:
                if not row or all(not cell.strip() for cell in row):
                    continue
                raise TransactionsFileError(
                    f"transactions file={path} line={line}: too few columns (need {width + 1})"
                ) from None
            except (ValueError, InvalidOperation) as exc:
                raise TransactionsFileError(
                    f"transactions file={path} line={line}: {exc or 'invalid amount'}"
                ) from None
            customers.append(index.setdefault(customer_id, len(index)))
            ordinals.append(ordinal)
            amounts.append(cents)
    return builder.build()


def read_cdnow(path: Path) -> PurchaseLog:
    """Read Fader & Hardie's CDNOW event log (``master_id sample_id YYYYMMDD quantity amount``).

    Customers are keyed by the sample id (0001..2357), as in the published summaries.
    """
    builder = PurchaseLogBuilder()
    with path.open(encoding="ascii") as handle:
        for line in handle:
            fields = line.split()
            if not fields:
                continue
            _, sample_id, ymd, _quantity, amount = fields
            builder.add(sample_id, _parse_date(ymd), to_cents(Decimal(amount)))
    return builder.build()


def purchases_from_rows(rows: Iterable[tuple[str, dt.date, Decimal]]) -> PurchaseLog:
    """Build a log from ``(customer_id, date, amount)`` rows (e.g. a MySQL cursor)."""
    builder = PurchaseLogBuilder()
    for customer_id, day, amount in rows:
        builder.add(str(customer_id), day, to_cents(Decimal(amount)))
    return builder.build()


@dataclass(frozen=True)
class CustomerSummary:
    """One row per customer of the calibration cohort (first purchase ≤ calibration end)."""

    customer_ids: tuple[str, ...]
    frequency: npt.NDArray[np.int64]  # repeat purchase days in the calibration period (x)
    recency: npt.NDArray[np.float64]  # weeks from first to last purchase day (t_x)
    T: npt.NDArray[np.float64]  # weeks from first purchase day to the calibration end
    repeat_cents: npt.NDArray[np.int64]  # total spend over the x repeat purchase days
    total_cents: npt.NDArray[np.int64]  # total spend over all calibration purchase days
    first_day: npt.NDArray[np.int64]  # ordinal of the first purchase day
    holdout_frequency: npt.NDArray[np.int64]  # purchase days in (calibration_end, holdout_end]
    calibration_end: dt.date
    holdout_end: dt.date | None
    excluded_later_customers: int  # customers whose first purchase is after calibration_end

    @property
    def size(self) -> int:
        return int(self.frequency.size)

    @property
    def monetary(self) -> npt.NDArray[np.float64]:
        """Average repeat-purchase value in currency units (0 where frequency is 0)."""
        x = self.frequency
        out = np.zeros(x.size)
        np.divide(self.repeat_cents, 100.0 * x, out=out, where=x > 0)
        return out

    @property
    def monetary_cents(self) -> npt.NDArray[np.int64]:
        """Average repeat-purchase value in cents, rounded half up (0 where frequency is 0)."""
        x = self.frequency
        safe = np.maximum(x, 1)
        rounded = (2 * self.repeat_cents + safe) // (2 * safe)
        return np.where(x > 0, rounded, 0).astype(np.int64)

    def monetary_decimal(self, i: int) -> Decimal:
        """Exact average repeat-purchase value of customer ``i``, rounded half up to cents."""
        x = int(self.frequency[i])
        if x == 0:
            return Decimal("0.00")
        return (Decimal(int(self.repeat_cents[i])) / x / 100).quantize(_CENT, ROUND_HALF_UP)

    @property
    def holdout_weeks(self) -> float:
        if self.holdout_end is None:
            return 0.0
        return (self.holdout_end - self.calibration_end).days / DAYS_PER_WEEK


def _merge_days(
    log: PurchaseLog, keep: npt.NDArray[np.bool_]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Same-day purchases of a customer merged into one purchase day with their total."""
    cust, day, cents = log.customer[keep], log.day[keep], log.cents[keep]
    if cust.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    order = np.lexsort((day, cust))
    cust, day, cents = cust[order], day[order], cents[order]
    starts = np.flatnonzero(np.r_[True, (cust[1:] != cust[:-1]) | (day[1:] != day[:-1])])
    return cust[starts], day[starts], np.add.reduceat(cents, starts)


def summarise(
    log: PurchaseLog, calibration_end: dt.date, holdout_end: dt.date | None = None
) -> CustomerSummary:
    """The per-customer (x, t_x, T, monetary) summary, plus holdout counts when asked."""
    cal = calibration_end.toordinal()
    cust, day, cents = _merge_days(log, log.day <= cal)
    n = len(log.customer_ids)
    starts = (
        np.flatnonzero(np.r_[True, cust[1:] != cust[:-1]]) if cust.size else np.zeros(0, np.int64)
    )
    ids_present = cust[starts]
    counts = np.diff(np.r_[starts, cust.size])
    first = day[starts]
    last = day[np.r_[starts[1:], cust.size] - 1] if cust.size else first
    totals = np.add.reduceat(cents, starts) if cust.size else np.zeros(0, np.int64)
    repeat = totals - cents[starts] if cust.size else totals

    holdout = np.zeros(ids_present.size, dtype=np.int64)
    if holdout_end is not None:
        hcust, _, _ = _merge_days(log, (log.day > cal) & (log.day <= holdout_end.toordinal()))
        per_customer = np.bincount(hcust, minlength=n)
        holdout = per_customer[ids_present].astype(np.int64)

    all_customers = np.unique(log.customer) if log.size else np.zeros(0, np.int64)
    return CustomerSummary(
        customer_ids=tuple(log.customer_ids[i] for i in ids_present),
        frequency=(counts - 1).astype(np.int64),
        recency=(last - first) / DAYS_PER_WEEK,
        T=(cal - first) / DAYS_PER_WEEK,
        repeat_cents=repeat.astype(np.int64),
        total_cents=totals.astype(np.int64),
        first_day=first.astype(np.int64),
        holdout_frequency=holdout,
        calibration_end=calibration_end,
        holdout_end=holdout_end,
        excluded_later_customers=int(all_customers.size - ids_present.size),
    )
