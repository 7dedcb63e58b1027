"""What ``txnpipe status`` shows about the sink: stored offsets, freshness, partitions.

Every query here is cheap on a large database: offsets and pending entries are small
tables, freshness and the last minute's rows use the ``accepted_at`` index, partition
sizes are InnoDB's estimates (``information_schema.PARTITIONS``), and only the catch-all
partition — which should be empty — is counted exactly.
"""

from __future__ import annotations

from typing import Any

from mysql.connector.errors import Error as MySQLError

from common.settings import Settings
from schemas import LEDGER
from sinks import db, partitions, schema


def sink_status(settings: Settings) -> dict[str, Any]:
    """``next_offsets``, ``rows_last_minute``, ``as_of``, ``partitions``, ``catch_all_rows`` …"""
    try:
        conn = db.connect(settings, autocommit=True)
    except MySQLError as exc:
        if getattr(exc, "errno", None) == 1049:  # no database yet: the sink has not run
            return {"next_offsets": {}, "tables": "missing"}
        raise
    try:
        cur = conn.cursor()
        try:
            cur.execute(
                f"SELECT kafka_partition, next_offset FROM {schema.OFFSETS} "
                "WHERE consumer_group = %s AND topic = %s",
                (f"{settings.namespace}.sink", settings.topic(LEDGER.suffix)),
            )
        except MySQLError as exc:
            if getattr(exc, "errno", None) == 1146:  # the sink has not run yet
                return {"next_offsets": {}, "tables": "missing"}
            raise
        offsets = {int(p): max(int(o), 0) for p, o in cur.fetchall()}
        cur.execute(
            f"SELECT COUNT(*) FROM {schema.VERSIONS} "
            "WHERE accepted_at >= UTC_TIMESTAMP(6) - INTERVAL 1 MINUTE"
        )
        last_minute = int(cur.fetchone()[0])
        cur.execute(f"SELECT MAX(accepted_at) FROM {schema.VERSIONS}")
        newest = cur.fetchone()[0]
        cur.execute(f"SELECT COUNT(*) FROM {schema.PENDING}")
        pending = int(cur.fetchone()[0])
        cur.execute(
            "SELECT PARTITION_NAME, TABLE_ROWS FROM information_schema.PARTITIONS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s "
            "ORDER BY PARTITION_ORDINAL_POSITION",
            (schema.LEDGER,),
        )
        parts = [{"name": str(n), "rows": int(r or 0)} for n, r in cur.fetchall()]
        cur.close()
        stray = partitions.catch_all_rows(conn, schema.LEDGER)
    finally:
        db.close_quietly(conn)
    return {
        "next_offsets": offsets,
        "rows_last_minute": last_minute,
        "as_of": newest.isoformat() + "Z" if newest is not None else None,
        "partitions": parts,
        "catch_all_rows": stray,
        "pending_entries": pending,
    }
