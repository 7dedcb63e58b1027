"""Put a transaction's ledger rows and current row back to what its versions say (reconcile).

The audit trail (``transaction_versions``) records for every accepted version whether it
counted, the version before it and the ids of the entries it made. CONTRACT §2 then fixes
the entries exactly (a reversal of the previous contribution, an entry for the new one),
so when the chain of versions is whole and every derived entry id matches the recorded
ones, the ledger rows and the current row are rewritten from it — all transactions of a
repair in ONE MySQL transaction, after locking the sink's offset rows (a running sink's
batches wait for it, as they lock those rows first). When the chain is broken (a version
row lost), nothing is written for that transaction: it is reported, and the API's copy
re-published to the raw topic or the ledger replayed is what brings it back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from common.settings import Settings
from schemas import entry_id
from schemas.answers import cents_to_str
from sinks import db, schema
from sinks.audit import execute_in, select_in, utc
from sinks.batch import naive_utc
from sinks.lookups import to_cents

log = logging.getLogger(__name__)

VERSION_FIELDS = (
    "transaction_id", "updated_at", "customer_id", "product_category", "transaction_amount",
    "transaction_date", "status", "counted", "previous_updated_at", "entry_ids",
    "accepted_at", "source_partition", "source_offset", "ledger_partition", "ledger_offset",
)  # fmt: skip

_LEDGER_COLUMNS = (
    "entry_id", "transaction_id", "version_updated_at", "entry_type", "customer_id",
    "product_category", "transaction_date", "amount", "`count`", "source_partition",
    "source_offset", "ledger_partition", "ledger_offset",
)  # fmt: skip
_CURRENT_COLUMNS = (
    "transaction_id", "customer_id", "product_category", "transaction_amount",
    "transaction_date", "status", "updated_at", "accepted_at",
)  # fmt: skip


@dataclass(frozen=True)
class Derived:
    """What one transaction's rows must be: its ledger rows and its current row (or none)."""

    ledger: tuple[tuple[Any, ...], ...]
    current: tuple[Any, ...] | None


def derive(rows: Sequence[Sequence[Any]]) -> Derived | None:
    """Pure: versions rows (``VERSION_FIELDS``, oldest first) -> the rows they imply, or None
    when the chain is not whole (a version missing) or a recorded entry id disagrees."""
    ledger: list[tuple[Any, ...]] = []
    previous: Sequence[Any] | None = None
    for row in rows:
        tid, updated, prev_at, ids = row[0], row[1], row[8], row[9]
        if (previous is None) != (prev_at is None):
            return None
        if previous is not None and utc(previous[1]) != utc(prev_at):
            return None
        old = _contribution(previous)
        new = _contribution(row)
        made: list[tuple[Any, ...]] = []
        if old != new:
            at = naive_utc(utc(updated))
            coords = tuple(row[11:15])
            if old is not None:
                made.append(_entry(tid, at, "reversal", old, -1, coords))
            if new is not None:
                made.append(_entry(tid, at, "new", new, 1, coords))
        recorded = [i for i in str(ids or "").split(",") if i]
        if [m[0] for m in made] != recorded:
            return None
        ledger += made
        previous = row
    if previous is None:
        return None
    current = None
    if previous[7]:
        p = previous
        current = (p[0], p[2], p[3], p[4], p[5], p[6], p[1], p[10])
    return Derived(tuple(ledger), current)


def _contribution(row: Sequence[Any] | None) -> tuple[str, str, date, int] | None:
    if row is None or not row[7]:
        return None
    return (str(row[2]), str(row[3]), row[5], to_cents(row[4]))


def _entry(
    tid: str,
    at: datetime,
    kind: str,
    c: tuple[str, str, date, int],
    sign: int,
    coords: tuple[Any, ...],
) -> tuple[Any, ...]:
    customer, category, day, cents = c
    amount = Decimal(cents_to_str(sign * cents))
    return (entry_id(tid, utc(at), kind), tid, at, kind, customer, category, day, amount,
            sign, *coords)  # fmt: skip


def repair_from_versions(settings: Settings, ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Rewrite the ledger and current rows of ``ids`` from their versions, in one transaction.

    Returns (repaired ids, ids whose versions cannot say what the state must be)."""
    wanted = sorted(set(ids))
    if not wanted:
        return [], []
    conn = db.connect(settings)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT next_offset FROM {schema.OFFSETS} FOR UPDATE")
        cur.fetchall()
        rows = select_in(
            cur,
            f"SELECT {', '.join(VERSION_FIELDS)} FROM {schema.VERSIONS} "
            # stale versions (late replicas stored for as-of answers) are not in the chain
            "WHERE stale = 0 AND transaction_id IN ({marks}) "
            "ORDER BY transaction_id, updated_at FOR UPDATE",
            wanted,
        )
        by_id: dict[str, list[tuple[Any, ...]]] = {}
        for row in rows:
            by_id.setdefault(str(row[0]), []).append(row)
        fixed: list[str] = []
        broken: list[str] = []
        ledger: list[tuple[Any, ...]] = []
        current: list[tuple[Any, ...]] = []
        for tid in wanted:
            derived = derive(by_id.get(tid, []))
            if derived is None:
                broken.append(tid)
                continue
            fixed.append(tid)
            ledger += derived.ledger
            if derived.current is not None:
                current.append(derived.current)
        if fixed:
            for table in (schema.LEDGER, schema.CURRENT):
                execute_in(cur, f"DELETE FROM {table} WHERE transaction_id IN ({{marks}})", fixed)
            for table, columns, values in (
                (schema.LEDGER, _LEDGER_COLUMNS, ledger),
                (schema.CURRENT, _CURRENT_COLUMNS, current),
            ):
                if values:
                    cur.executemany(
                        f"INSERT INTO {table} ({', '.join(columns)}) "
                        f"VALUES ({', '.join(['%s'] * len(columns))})",
                        values,
                    )
        conn.commit()
        cur.close()
    except BaseException:
        conn.rollback()
        raise
    finally:
        db.close_quietly(conn)
    log.info("reconcile: %d transactions rewritten from their versions, %d not", len(fixed),
             len(broken))  # fmt: skip
    return fixed, broken
