"""The three seed questions' answers (CONTRACT §6 ``query --json``), whatever store they come from.

Redis and MySQL lookups both return an ``Answer``; the CLI prints it. Money is integer
cents inside and a ``"123.45"`` string outside.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

Question = Literal["categories", "top-customers", "monthly"]
QUESTIONS: tuple[Question, ...] = ("categories", "top-customers", "monthly")


def cents_to_str(cents: int) -> str:
    """Integer cents → ``"-123.45"``; exact, no float."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    return f"{sign}{whole}.{frac:02d}"


def one_year_before(day: date) -> date:
    """MySQL's ``DATE_SUB(d, INTERVAL 1 YEAR)``: Feb 29 becomes Feb 28."""
    try:
        return day.replace(year=day.year - 1)
    except ValueError:
        return day.replace(year=day.year - 1, day=28)


def monthly_first_day(now: datetime) -> date:
    """First ``transaction_date`` the seed's third query includes at ``now`` (UTC, seconds).

    ``transaction_date >= DATE_SUB(NOW(), INTERVAL 1 YEAR)`` compares a DATE with a
    DATETIME, so the DATE is taken at midnight: the boundary day counts only when NOW()
    is exactly midnight.
    """
    boundary = one_year_before(now.date())
    if now.time().replace(microsecond=0) == time(0, 0, 0):
        return boundary
    return boundary + timedelta(days=1)


@dataclass(frozen=True)
class CategoryRow:
    product_category: str
    total_transactions: int
    total_cents: int

    def to_json(self) -> dict[str, Any]:
        return {
            "product_category": self.product_category,
            "total_transactions": self.total_transactions,
            "total_amount": cents_to_str(self.total_cents),
        }


@dataclass(frozen=True)
class CustomerRow:
    customer_id: str
    total_cents: int

    def to_json(self) -> dict[str, Any]:
        return {"customer_id": self.customer_id, "total_amount": cents_to_str(self.total_cents)}


@dataclass(frozen=True)
class MonthRow:
    month: str  # YYYY-MM
    total_cents: int

    def to_json(self) -> dict[str, Any]:
        return {"month": self.month, "total_amount": cents_to_str(self.total_cents)}


Row = CategoryRow | CustomerRow | MonthRow


@dataclass(frozen=True)
class Answer:
    """Rows in contract order, and how fresh they are (shown beside, never inside, --json rows)."""

    question: Question
    rows: tuple[Row, ...]
    source: Literal["redis", "mysql"]
    as_of: datetime | None = None  # time of the newest change the answer reflects
    offsets: dict[int, int] = field(default_factory=dict)  # raw partition -> last applied offset

    def to_json(self) -> list[dict[str, Any]]:
        return [row.to_json() for row in self.rows]


def sort_categories(rows: list[CategoryRow]) -> tuple[CategoryRow, ...]:
    """By category (CONTRACT: ``by category``), binary order as MySQL's binary collation."""
    return tuple(sorted(rows, key=lambda r: r.product_category.encode("utf-8")))


def top_customers(rows: list[CustomerRow], limit: int) -> tuple[CustomerRow, ...]:
    """Largest first, ties by ``customer_id`` (binary order)."""
    ranked = sorted(rows, key=lambda r: (-r.total_cents, r.customer_id.encode("utf-8")))
    return tuple(ranked[:limit])


def sort_months(rows: list[MonthRow]) -> tuple[MonthRow, ...]:
    return tuple(sorted(rows, key=lambda r: r.month))
