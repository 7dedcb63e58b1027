"""The sink's side of ``txnpipe reconcile``: what MySQL holds, read in one consistent snapshot.

One ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` reads the stored offsets, the current
state, the newest version of every transaction and the ledger netted per transaction and
contribution, so the sections compared with Redis and the API all describe one instant
(the sink commits rows and offsets together: the snapshot never holds half a batch).
Full scans, by design: 100k transactions are three index scans of a few hundred ms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from mysql.connector.errors import Error as MySQLError

from common.settings import Settings
from schemas import LEDGER
from schemas.reconcile import CurrentRow
from sinks import db, schema
from sinks.consumer import group_id
from sinks.statements import marks

# transaction id -> {(customer, category, date): (cents, count)} with a non-zero net
LedgerNet = dict[str, dict[tuple[str, str, date], tuple[int, int]]]


@dataclass
class MySQLView:
    """The sink's tables as of one snapshot (times are aware UTC, money integer cents)."""

    offsets: dict[int, int] = field(default_factory=dict)  # ledger partition -> next offset
    current: dict[str, CurrentRow] = field(default_factory=dict)
    newest: dict[str, datetime] = field(default_factory=dict)  # id -> newest version's time
    partition_of: dict[str, int] = field(default_factory=dict)  # id -> raw (source) partition
    ledger: LedgerNet = field(default_factory=dict)
    raw_positions: dict[int, int] = field(default_factory=dict)  # raw partition -> last offset
    tables: bool = True  # False: the sink has not created its tables yet


def utc(moment: datetime) -> datetime:
    """A DATETIME(6) value (naive, UTC by session) as an aware UTC time."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_view(settings: Settings) -> MySQLView:
    """The whole state of the sink's tables, one snapshot; empty when there is no database."""
    view = MySQLView()
    try:
        conn = db.connect(settings)
    except MySQLError as exc:
        if getattr(exc, "errno", None) == 1049:  # unknown database: the sink never ran
            view.tables = False
            return view
        raise
    try:
        cur = conn.cursor()
        cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
        try:
            cur.execute(
                f"SELECT kafka_partition, next_offset FROM {schema.OFFSETS} "
                "WHERE consumer_group = %s AND topic = %s",
                (group_id(settings), settings.topic(LEDGER.suffix)),
            )
        except MySQLError as exc:
            if getattr(exc, "errno", None) == 1146:  # no tables yet
                view.tables = False
                return view
            raise
        view.offsets = {int(p): max(int(o), 0) for p, o in cur.fetchall()}
        cur.execute(
            "SELECT transaction_id, customer_id, product_category, "
            "CAST(transaction_amount * 100 AS SIGNED), "  # exact: DECIMAL(12,2) in cents
            f"transaction_date, status, updated_at FROM {schema.CURRENT}"
        )
        view.current = {
            t: CurrentRow(c, k, a, d, s, u.replace(tzinfo=UTC))
            for t, c, k, a, d, s, u in cur.fetchall()
        }
        cur.execute(
            "SELECT transaction_id, MAX(updated_at), MIN(source_partition) "
            f"FROM {schema.VERSIONS} WHERE stale = 0 GROUP BY transaction_id"
        )
        for t, u, p in cur.fetchall():
            view.newest[t] = u.replace(tzinfo=UTC)
            view.partition_of[t] = p
        cur.execute(
            "SELECT transaction_id, customer_id, product_category, transaction_date, "
            f"CAST(SUM(amount) * 100 AS SIGNED), SUM(`count`) FROM {schema.LEDGER} "
            "GROUP BY transaction_id, customer_id, product_category, transaction_date "
            "HAVING SUM(amount) <> 0 OR SUM(`count`) <> 0"
        )
        for t, c, k, d, a, n in cur.fetchall():
            view.ledger.setdefault(t, {})[(c, k, d)] = (int(a), int(n))
        cur.execute(f"SELECT raw_partition, last_source_offset FROM {schema.RAW_POSITIONS}")
        view.raw_positions = {int(p): int(o) for p, o in cur.fetchall()}
        conn.rollback()
        cur.close()
    finally:
        db.close_quietly(conn)
    return view


def select_in(cur: Any, sql: str, ids: list[str], chunk: int = 1000) -> list[tuple[Any, ...]]:
    """``sql`` with ``{marks}`` for an IN list, run over ``ids`` in chunks; every row."""
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        cur.execute(sql.format(marks=marks(len(part))), tuple(part))
        rows.extend(cur.fetchall())
    return rows


def execute_in(cur: Any, sql: str, ids: list[str], chunk: int = 1000) -> None:
    """``sql`` with ``{marks}`` for an IN list, run over ``ids`` in chunks."""
    for start in range(0, len(ids), chunk):
        part = ids[start : start + chunk]
        cur.execute(sql.format(marks=marks(len(part))), tuple(part))
