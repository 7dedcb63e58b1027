"""Month-close restatements, pure: how much each closed month moved since its close, and why.

A month M *closes* at ``close_at(M, D)`` = the D-th day of the following month, 00:00 UTC.
Its amount at an instant T is the sum of the counted amounts of the versions known at T
(per transaction, the greatest ``updated_at <= T``) whose ``transaction_date`` is in M. A
transaction *moved* M when its contribution to M at the close differs from now; only a
transaction with a version updated after the close can do that, so the moved ones are
found among those (``sinks.asof.candidates``). A backdated correction moves two months:
the one its old date leaves (negative) and the one its new date enters (positive).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from schemas.answers import cents_to_str

Month = tuple[int, int]  # (year, month)
TOP = 10
FIELDS = ("transaction_amount", "transaction_date", "status", "product_category", "customer_id")


@dataclass(frozen=True, slots=True)
class Version:
    """One stored version (a row of ``transaction_versions``), money in cents."""

    transaction_id: str
    updated_at: datetime  # aware, UTC
    customer_id: str
    product_category: str
    amount_cents: int
    transaction_date: date
    status: str

    def values(self) -> dict[str, Any]:
        return {
            "transaction_amount": cents_to_str(self.amount_cents),
            "transaction_date": self.transaction_date.isoformat(),
            "status": self.status,
            "product_category": self.product_category,
            "customer_id": self.customer_id,
        }


def month_of(day: date) -> Month:
    return (day.year, day.month)


def label(month: Month) -> str:
    return f"{month[0]:04d}-{month[1]:02d}"


def next_month(month: Month) -> Month:
    year, mon = month
    return (year + 1, 1) if mon == 12 else (year, mon + 1)


def previous_month(month: Month) -> Month:
    year, mon = month
    return (year - 1, 12) if mon == 1 else (year, mon - 1)


def close_at(month: Month, close_day: int) -> datetime:
    """The close of ``month``: day ``close_day`` of the following month, 00:00 UTC."""
    year, mon = next_month(month)
    return datetime(year, mon, close_day, tzinfo=UTC)


def closed_months(now: datetime, count: int, close_day: int) -> list[Month]:
    """The ``count`` most recent months whose close is at or before ``now``, oldest first."""
    month = month_of(now.astimezone(UTC).date())
    while close_at(month, close_day) > now:
        month = previous_month(month)
    out = [month]
    while len(out) < count:
        out.append(previous_month(out[-1]))
    return out[::-1]


def known_at(versions: Sequence[Version], at: datetime) -> Version | None:
    """The version known at ``at`` among one transaction's versions (any order)."""
    best: Version | None = None
    for v in versions:
        if v.updated_at <= at and (best is None or v.updated_at > best.updated_at):
            best = v
    return best


def contribution(v: Version | None, month: Month, counted: Collection[str]) -> int:
    """Cents that version ``v`` adds to ``month`` (0 when absent, not counted, elsewhere)."""
    if v is None or v.status not in counted or month_of(v.transaction_date) != month:
        return 0
    return v.amount_cents


@dataclass(frozen=True)
class Moved:
    """One transaction that moved a month: its contribution then and now, and its story."""

    transaction_id: str
    at_close_cents: int
    now_cents: int
    versions: tuple[Version, ...]  # the one known at the close (if any), then later ones
    known_at_close: datetime | None  # updated_at of the version known at the close

    @property
    def change_cents(self) -> int:
        return self.now_cents - self.at_close_cents

    def to_json(self) -> dict[str, Any]:
        story: list[dict[str, Any]] = []
        previous: dict[str, Any] | None = None
        for v in self.versions:
            values = v.values()
            changed = [] if previous is None else [f for f in FIELDS if values[f] != previous[f]]
            story.append(
                {
                    "updated_at": iso(v.updated_at),
                    "known_at_close": v.updated_at == self.known_at_close,
                    **values,
                    "changed": changed,
                }
            )
            previous = values
        return {
            "transaction_id": self.transaction_id,
            "change": cents_to_str(self.change_cents),
            "at_close": cents_to_str(self.at_close_cents),
            "now": cents_to_str(self.now_cents),
            "versions": story,
        }


@dataclass
class MonthRestatement:
    month: Month
    closed_at: datetime
    now_cents: int
    moved: list[Moved] = field(default_factory=list)  # every one, largest change first

    @property
    def difference_cents(self) -> int:
        return sum(m.change_cents for m in self.moved)

    @property
    def at_close_cents(self) -> int:
        return self.now_cents - self.difference_cents

    def to_json(self, top: int = TOP) -> dict[str, Any]:
        return {
            "month": label(self.month),
            "closed_at": iso(self.closed_at),
            "amount_at_close": cents_to_str(self.at_close_cents),
            "amount_now": cents_to_str(self.now_cents),
            "difference": cents_to_str(self.difference_cents),
            "transactions_moved": len(self.moved),
            "top": [m.to_json() for m in self.moved[:top]],
        }


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def restate(
    months: Sequence[Month],
    close_day: int,
    now: datetime,
    candidates: Mapping[str, Sequence[Version]],
    amounts_now: Mapping[Month, int],
    counted: Collection[str],
) -> list[MonthRestatement]:
    """Per month: the amount now (given), and every candidate whose contribution moved.

    ``candidates``: every version (up to ``now``) of each transaction with a version
    updated after the oldest close; the amount at the close is now minus what moved."""
    out: list[MonthRestatement] = []
    histories = {
        tid: sorted((v for v in versions if v.updated_at <= now), key=_when)
        for tid, versions in candidates.items()
    }
    current = {tid: known_at(ordered, now) for tid, ordered in histories.items()}
    for month in months:
        closed = close_at(month, close_day)
        report = MonthRestatement(month, closed, amounts_now.get(month, 0))
        for tid, ordered in histories.items():
            then_v = known_at(ordered, closed)
            then_c = contribution(then_v, month, counted)
            now_c = contribution(current[tid], month, counted)
            if then_c == now_c:
                continue
            story = tuple(v for v in ordered if v is then_v or v.updated_at > closed)
            when = then_v.updated_at if then_v is not None else None
            report.moved.append(Moved(tid, then_c, now_c, story, when))
        report.moved.sort(key=lambda m: (-abs(m.change_cents), m.transaction_id.encode()))
        out.append(report)
    return out


def _when(v: Version) -> datetime:
    return v.updated_at


def group(rows: Iterable[Version]) -> dict[str, list[Version]]:
    """Versions by transaction id."""
    out: dict[str, list[Version]] = {}
    for v in rows:
        out.setdefault(v.transaction_id, []).append(v)
    return out
