"""Monthly RANGE partitions of ``transaction_ledger``: names, bounds and their upkeep.

The ledger is ``PARTITION BY RANGE COLUMNS(transaction_date)`` with one ``pYYYYMM``
partition per month and a catch-all ``pmax``. Partitions for the coming months are made
ahead of time by reorganising ``pmax`` (cheap while it is empty); a backdated entry older
than the lowest partition splits that partition into monthly ones first, so every entry
lands in its own month. A row in ``pmax`` means upkeep fell behind: it is logged at ERROR
and shown by ``partition_report`` (never accumulated silently).

The month arithmetic is pure; the DDL runs under a named lock so that several sinks can
do upkeep at once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import Any

log = logging.getLogger(__name__)

CATCH_ALL = "pmax"
_NAME = re.compile(r"^p(\d{4})(\d{2})$")

Month = int  # months since year 0: year * 12 + (month - 1)
MAX_FUTURE_MONTHS = 12


def month_of(day: date) -> Month:
    return day.year * 12 + day.month - 1


def month_start(month: Month) -> date:
    return date(month // 12, month % 12 + 1, 1)


def partition_name(month: Month) -> str:
    return f"p{month // 12:04d}{month % 12 + 1:02d}"


def parse_name(name: str) -> Month | None:
    found = _NAME.match(name)
    if not found:
        return None
    return int(found.group(1)) * 12 + int(found.group(2)) - 1


def definitions(months: Iterable[Month], *, catch_all: bool) -> str:
    """``PARTITION pYYYYMM VALUES LESS THAN ('YYYY-MM-01'), ...`` for consecutive months."""
    parts = [
        f"PARTITION {partition_name(m)} VALUES LESS THAN ('{month_start(m + 1).isoformat()}')"
        for m in sorted(months)
    ]
    if catch_all:
        parts.append(f"PARTITION {CATCH_ALL} VALUES LESS THAN (MAXVALUE)")
    return ", ".join(parts)


def initial_clause(today: date, back: int, ahead: int) -> str:
    """``PARTITION BY`` of a new ledger: ``back`` months before today to ``ahead`` after."""
    now = month_of(today)
    months = range(now - back, now + ahead + 1)
    return f"PARTITION BY RANGE COLUMNS(transaction_date) ({definitions(months, catch_all=True)})"


@dataclass(frozen=True)
class Layout:
    """The monthly partitions a table has now: lowest and highest month (inclusive)."""

    low: Month
    high: Month
    has_catch_all: bool

    def covers(self, month: Month) -> bool:
        """True when an entry of ``month`` lands in its own month's partition."""
        return self.low <= month <= self.high


@dataclass(frozen=True)
class Plan:
    """DDL to run so that ``needed`` months (and ``ahead`` future ones) have partitions."""

    split_low: tuple[Month, ...]  # new months below the lowest (the lowest is split into them)
    extend_high: tuple[Month, ...]  # new months carved out of pmax

    @property
    def empty(self) -> bool:
        return not self.split_low and not self.extend_high


def plan(layout: Layout, needed: Iterable[Month], today: date, ahead: int) -> Plan:
    """What to add: every needed month, and every month up to ``today`` + ``ahead``."""
    horizon = month_of(today) + ahead
    # A date far in the future (a bad clock upstream) stays in pmax, reported, rather than
    # making hundreds of empty partitions.
    wanted = {m for m in needed if m <= horizon + MAX_FUTURE_MONTHS}
    wanted.add(horizon)
    lowest, highest = min(wanted), max(wanted)
    split = tuple(range(lowest, layout.low)) if lowest < layout.low else ()
    extend = tuple(range(layout.high + 1, highest + 1)) if highest > layout.high else ()
    return Plan(split, extend)


def read_layout(conn: Any, table: str) -> Layout:
    cur = conn.cursor()
    cur.execute(
        "SELECT PARTITION_NAME FROM information_schema.PARTITIONS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s ORDER BY PARTITION_ORDINAL_POSITION",
        (table,),
    )
    names = [str(row[0]) for row in cur.fetchall()]
    cur.close()
    months = [m for m in (parse_name(n) for n in names) if m is not None]
    if not months:
        raise RuntimeError(f"table={table} has no monthly pYYYYMM partitions")
    return Layout(min(months), max(months), CATCH_ALL in names)


def apply(conn: Any, table: str, todo: Plan) -> None:
    """Run the DDL of ``todo`` (each REORGANIZE is atomic; DDL commits, so no open batch)."""
    cur = conn.cursor()
    layout = read_layout(conn, table)
    if todo.extend_high:
        months = [m for m in todo.extend_high if m > layout.high]
        if months:
            cur.execute(
                f"ALTER TABLE {table} REORGANIZE PARTITION {CATCH_ALL} INTO "
                f"({definitions(months, catch_all=True)})"
            )
            log.info(
                "partitions: added %s..%s to %s",
                partition_name(months[0]),
                partition_name(months[-1]),
                table,
            )
    if todo.split_low:
        months = [m for m in todo.split_low if m < layout.low]
        if months:
            cur.execute(
                f"ALTER TABLE {table} REORGANIZE PARTITION {partition_name(layout.low)} INTO "
                f"({definitions([*months, layout.low], catch_all=False)})"
            )
            log.info(
                "partitions: split %s into %s..%s for backdated entries",
                partition_name(layout.low),
                partition_name(months[0]),
                partition_name(layout.low),
            )
    cur.close()


def catch_all_rows(conn: Any, table: str) -> int:
    """Rows sitting in ``pmax`` (should be 0: every month has its own partition)."""
    cur = conn.cursor()
    cur.execute(f"SELECT COUNT(*) FROM {table} PARTITION ({CATCH_ALL})")
    row = cur.fetchone()
    cur.close()
    return int(row[0]) if row else 0


class PartitionKeeper:
    """Keeps ``table``'s monthly partitions ahead of the clock and of backdated entries."""

    def __init__(self, table: str, *, ahead: int, lock_name: str) -> None:
        self.table = table
        self.ahead = ahead
        self.lock_name = lock_name
        self.layout: Layout | None = None

    def needs_work(self, months: Iterable[Month], today: date) -> bool:
        """Cheap check (no SQL) once the layout is known."""
        if self.layout is None:
            return True
        months = list(months)
        months.append(month_of(today) + self.ahead)
        return not all(self.layout.covers(m) for m in months)

    def ensure(self, conn: Any, months: Iterable[Month], today: date) -> int:
        """Add what is missing under a named lock; return rows found in ``pmax`` (logged loudly)."""
        months = list(months)
        cur = conn.cursor()
        cur.execute("SELECT GET_LOCK(%s, 120)", (self.lock_name,))
        got = cur.fetchone()
        if not got or got[0] != 1:
            cur.close()
            raise TimeoutError(f"partition upkeep lock={self.lock_name} not granted in 120 s")
        try:
            todo = plan(read_layout(conn, self.table), months, today, self.ahead)
            if not todo.empty:
                apply(conn, self.table, todo)
            self.layout = read_layout(conn, self.table)
            stray = catch_all_rows(conn, self.table)
        finally:
            cur.execute("SELECT RELEASE_LOCK(%s)", (self.lock_name,))
            cur.fetchall()
            cur.close()
        if stray:
            log.error(
                "partitions: %d rows of table=%s sit in the catch-all partition %s; "
                "they are not in their month's partition (run the sink's upkeep or reorganise)",
                stray,
                self.table,
                CATCH_ALL,
            )
        return stray
