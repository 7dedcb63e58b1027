"""The current-state table ``transactions``: each transaction's newest version, if it counts.

Only versions that are the newest the audit trail knows get here, so the table never
regresses to an older ``updated_at``. Two paths with the same result: a batch of many
units replaces rows with ``LOAD DATA ... REPLACE`` (fast), a single unit (the end of a
bisection, or ``local_infile=OFF``) takes a guarded ``INSERT ... ON DUPLICATE KEY UPDATE``.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from schemas import VersionRecord
from sinks import schema
from sinks.batch import CURRENT_COLUMNS, Unit, current_row, naive_utc
from sinks.statements import ROWS_PER_STATEMENT, Statements, marks


def newest_only(cur: Any, latest: dict[str, Unit]) -> dict[str, Unit]:
    """Drop the units whose version is not the newest the audit trail holds (stale copies)."""
    ids = list(latest)
    newest: dict[str, datetime] = {}
    for start in range(0, len(ids), ROWS_PER_STATEMENT):
        chunk = ids[start : start + ROWS_PER_STATEMENT]
        cur.execute(
            f"SELECT transaction_id, MAX(updated_at) FROM {schema.VERSIONS} "
            f"WHERE transaction_id IN ({marks(len(chunk))}) GROUP BY transaction_id",
            tuple(chunk),
        )
        newest.update({str(t): u for t, u in cur.fetchall()})
    return {t: u for t, u in latest.items() if newest.get(t) == naive_utc(u.record.updated_at)}


def replace_current(
    sql: Statements, cur: Any, latest: list[Unit], counted: Collection[str]
) -> None:
    """``transactions`` := the newest versions: LOAD DATA REPLACE, then delete the gone.

    Safe without an ``updated_at`` guard: ``latest`` holds only versions that are the
    newest the audit trail knows (all new, or checked by ``newest_only``), and no other
    sink writes these transactions meanwhile (their partitions' offset rows are locked
    by this transaction since its first statement).
    """
    rows = sorted(u.current() for u in latest if u.record.status in counted)
    sql.load(cur, schema.CURRENT, CURRENT_COLUMNS, rows, replace=True)
    gone = [u.record.transaction_id for u in latest if u.record.status not in counted]
    for start in range(0, len(gone), ROWS_PER_STATEMENT):
        chunk = gone[start : start + ROWS_PER_STATEMENT]
        cur.execute(
            f"DELETE FROM {schema.CURRENT} WHERE transaction_id IN ({marks(len(chunk))})",
            tuple(chunk),
        )


def apply_current(
    sql: Statements, cur: Any, versions: list[VersionRecord], counted: Collection[str]
) -> None:
    """Guarded upsert: an older ``updated_at`` never overwrites a newer row, nor deletes it."""
    rows = sorted((v for v in versions if v.status in counted), key=lambda v: v.transaction_id)
    gone = [v for v in versions if v.status not in counted]
    if rows:
        inc = sql.incoming
        # updated_at last: the other columns compare against the stored one.
        sets = ", ".join(
            f"{c} = IF({inc('updated_at')} >= updated_at, {inc(c)}, {c})"
            for c in CURRENT_COLUMNS
            if c not in ("transaction_id", "updated_at")
        )
        sets += f", updated_at = GREATEST(updated_at, {inc('updated_at')})"
        sql.insert(
            cur,
            schema.CURRENT,
            CURRENT_COLUMNS,
            [current_row(v) for v in rows],
            f"ON DUPLICATE KEY UPDATE {sets}",
        )
    for start in range(0, len(gone), ROWS_PER_STATEMENT):
        chunk = gone[start : start + ROWS_PER_STATEMENT]
        derived = " UNION ALL ".join(["SELECT %s AS id, %s AS upto"] * len(chunk))
        flat = [x for v in chunk for x in (v.transaction_id, naive_utc(v.updated_at))]
        cur.execute(
            f"DELETE t FROM {schema.CURRENT} t JOIN ({derived}) d "
            "ON t.transaction_id = d.id AND t.updated_at <= d.upto",
            tuple(flat),
        )
