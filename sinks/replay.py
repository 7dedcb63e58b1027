"""Replaying the ledger into MySQL (``txnpipe replay --target mysql``) and starting afresh.

Every write of the sink is idempotent (entry ids and ``(transaction_id, updated_at)`` are
unique keys, ``transactions`` follows the newest version), so a replay is: move the stored
offsets back, then drain. A sink running meanwhile notices the move (its next batch is
fenced: the stored offsets are not where it left them) and continues from there.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from mysql.connector.errors import Error as MySQLError

from common.settings import Settings
from schemas import LEDGER
from sinks import db, schema
from sinks.consumer import group_id

log = logging.getLogger(__name__)

SINK_TABLES = (
    schema.LEDGER,
    schema.VERSIONS,
    schema.CURRENT,
    schema.OFFSETS,
    schema.PENDING,
    schema.RAW_POSITIONS,
    schema.DEAD_LETTERS,
    schema.REDRIVES,
    schema.MIGRATIONS,
)


def rewind(settings: Settings, targets: dict[int, int]) -> None:
    """Store ``targets`` (ledger partition → next offset) as the sink's offsets, in one txn."""
    from sinks.consumer import group_id
    from sinks.writer import LedgerWriter

    writer = LedgerWriter(
        settings,
        group=group_id(settings),
        topic=settings.topic(LEDGER.suffix),
        dlq_topic="",
        send_dead=lambda _: None,
        clock=_utcnow,
    )
    try:
        writer.load_offsets(sorted(targets))  # creates the tables and rows if needed
        conn = writer.connect()
        cur = conn.cursor()
        for partition, offset in sorted(targets.items()):
            cur.execute(
                f"UPDATE {schema.OFFSETS} SET next_offset = %s, updated_at = CURRENT_TIMESTAMP(6) "
                "WHERE consumer_group = %s AND topic = %s AND kafka_partition = %s",
                (offset, group_id(settings), settings.topic(LEDGER.suffix), partition),
            )
        conn.commit()
        cur.close()
        log.info("sink: offsets rewound to %s", targets)
    finally:
        writer.close()


def stored_offsets(settings: Settings) -> dict[int, int]:
    """Only the sink's stored ledger offsets (cheap: read before a snapshot, to compare)."""
    try:
        conn = db.connect(settings, autocommit=True)
    except MySQLError as exc:
        if getattr(exc, "errno", None) == 1049:
            return {}
        raise
    try:
        cur = conn.cursor()
        try:
            cur.execute(
                f"SELECT kafka_partition, next_offset FROM {schema.OFFSETS} "
                "WHERE consumer_group = %s AND topic = %s",
                (group_id(settings), settings.topic(LEDGER.suffix)),
            )
        except MySQLError as exc:
            if getattr(exc, "errno", None) == 1146:
                return {}
            raise
        rows = cur.fetchall()
        cur.close()
    finally:
        db.close_quietly(conn)
    return {int(p): max(int(o), 0) for p, o in rows}


def drain(
    settings: Settings, until: dict[int, int] | None = None, idle_seconds: float = 2.0
) -> dict[str, int]:
    """Run a sink here until the stored offsets reach ``until`` (the ledger's end when the
    replay began), or, without ``until``, until it is idle. A sink already running in the
    group shares the work; new records arriving meanwhile never keep a replay waiting."""
    import threading
    import time

    from sinks.runner import SinkRunner

    runner = SinkRunner(settings, idle_seconds=idle_seconds)
    if until is None:
        runner.run(until_idle=True)
        return dict(runner.totals)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            runner.run(until_idle=False)
        except BaseException as exc:  # surfaced below
            failure.append(exc)

    thread = threading.Thread(target=work, name="replay-sink", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            stored = stored_offsets(settings)
            if all(stored.get(p, 0) >= end for p, end in until.items()):
                break
            time.sleep(0.5)  # polls MySQL; the sink thread does the work
    finally:
        runner.stop()
        thread.join(60)
    if failure:
        raise failure[0]
    return dict(runner.totals)


def held_positions(settings: Settings) -> int:
    """How many partitions the sink's stored offsets hold a position for (0: nothing to lose)."""
    try:
        conn = db.connect(settings, autocommit=True)
    except MySQLError as exc:
        if getattr(exc, "errno", None) == 1049:  # no such database
            return 0
        raise
    try:
        cur = conn.cursor()
        try:
            cur.execute(f"SELECT COUNT(*) FROM {schema.OFFSETS} WHERE next_offset >= 0")
            return int(cur.fetchone()[0])
        except MySQLError as exc:
            if getattr(exc, "errno", None) == 1146:  # no such table
                return 0
            raise
        finally:
            cur.close()
    finally:
        db.close_quietly(conn)


def drop_tables(settings: Settings) -> bool:
    """Drop the sink's tables when they hold positions (the broker lost its topics); True if so.

    Other tables of the database (e.g. ``customer_clv``) are left alone. Callers decide
    whether dropping is allowed (``txnpipe run`` only for its own broker or on request).
    """
    if not held_positions(settings):
        return False
    conn = db.connect(settings, autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute(f"DROP TABLE IF EXISTS {', '.join(SINK_TABLES)}")
        cur.close()
        log.warning("sink: dropped tables %s of database=%s", SINK_TABLES, settings.mysql_database)
        return True
    finally:
        db.close_quietly(conn)


def _utcnow() -> datetime:
    return datetime.now(UTC)
