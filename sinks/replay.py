"""Replay support for the sink: move its stored offsets back, drain the ledger again, or
forget the namespace's tables when the broker they point into is gone.

Moving the offsets in MySQL is enough to make a running sink replay too: its next batch
finds the stored offsets changed (it is fenced), re-seeks and re-consumes. Rewriting a range
is idempotent: entry ids and (transaction, version) are unique keys, and the current-state
table only moves forward in ``updated_at``.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

from common.settings import Settings
from schemas import LEDGER
from sinks import db, schema
from sinks.runner import SinkRunner, group_id

log = logging.getLogger(__name__)

SINK_TABLES = (
    schema.LEDGER,
    schema.VERSIONS,
    schema.CURRENT,
    schema.OFFSETS,
    schema.PENDING,
    schema.RAW_POSITIONS,
    schema.MIGRATIONS,
)


def rewind(settings: Settings, targets: dict[int, int]) -> None:
    """Set the sink's next offset of each ledger partition to ``targets`` in one transaction."""
    if not targets:
        return
    db.ensure_database(settings)
    conn = db.connect(settings)
    try:
        schema.migrate(conn, _today())
        cur = conn.cursor()
        cur.execute("START TRANSACTION")
        topic = settings.topic(LEDGER.suffix)
        for partition, offset in sorted(targets.items()):
            cur.execute(
                f"INSERT INTO {schema.OFFSETS} "
                "(consumer_group, topic, kafka_partition, next_offset) VALUES (%s, %s, %s, %s) "
                "ON DUPLICATE KEY UPDATE next_offset = %s, updated_at = CURRENT_TIMESTAMP(6)",
                (group_id(settings), topic, partition, offset, offset),
            )
        conn.commit()
        cur.close()
        log.info("sink offsets rewound to %s", targets)
    finally:
        db.close_quietly(conn)


def drain(settings: Settings, idle_seconds: float = 3.0) -> None:
    """Run the sink in this process until it has caught up with the ledger."""
    SinkRunner(settings, idle_seconds=idle_seconds).run(until_idle=True)


def drop_tables(settings: Settings) -> list[str]:
    """Drop the sink's tables of the namespace's database; return those that existed."""
    db.ensure_database(settings)
    conn = db.connect(settings, autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (settings.mysql_database,),
        )
        existing = {str(row[0]) for row in cur.fetchall()}
        dropped = [t for t in SINK_TABLES if t in existing]
        for table in dropped:
            cur.execute(f"DROP TABLE IF EXISTS `{table}`")
        cur.close()
        return dropped
    finally:
        db.close_quietly(conn)


def _today() -> date:
    return datetime.now(UTC).date()
