"""Entries waiting for their version in ``sink_pending_entries``.

The stream app publishes a version's entries before the version; a batch boundary can
fall between them. Such entries (orphans) wait in this table, written in the batch's DB
transaction, and are attached to their version when it arrives; a version still lacking
entries is a redelivered duplicate or a dead letter. Kept apart from the writer because
this is the only state the sink carries across batches besides the offsets.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from schemas import LEDGER_ADAPTER, DeadLetter, LedgerEntry
from sinks import schema
from sinks.batch import Received, Unit, dead_letter, naive_utc
from sinks.statements import ROWS_PER_STATEMENT, Statements, marks

log = logging.getLogger(__name__)

PENDING_COLUMNS = (
    "entry_id",
    "transaction_id",
    "version_updated_at",
    "payload",
    "ledger_partition",
    "ledger_offset",
)


def read_ids(conn: Any) -> set[str]:
    """Every entry id waiting (the table is small)."""
    cur = conn.cursor()
    cur.execute(f"SELECT entry_id FROM {schema.PENDING}")
    ids = {str(row[0]) for row in cur.fetchall()}
    cur.close()
    return ids


def load(conn: Any, entry_ids: Sequence[str]) -> dict[str, Received]:
    """The waiting entries among ``entry_ids``, decoded as if just received."""
    cur = conn.cursor()
    found: dict[str, Received] = {}
    for start in range(0, len(entry_ids), ROWS_PER_STATEMENT):
        chunk = entry_ids[start : start + ROWS_PER_STATEMENT]
        cur.execute(
            f"SELECT entry_id, payload, ledger_partition, ledger_offset FROM {schema.PENDING} "
            f"WHERE entry_id IN ({','.join(['%s'] * len(chunk))})",
            tuple(chunk),
        )
        for entry_id, payload, partition, offset in cur.fetchall():
            raw = payload.encode() if isinstance(payload, str) else bytes(payload)
            found[str(entry_id)] = Received(
                int(partition), int(offset), None, raw, LEDGER_ADAPTER.validate_json(raw)
            )
    cur.close()
    return found


def existing_versions(cur: Any, keys: Sequence[tuple[str, datetime]]) -> set[tuple[str, datetime]]:
    """Which ``(transaction_id, updated_at)`` versions the audit trail already holds."""
    if not keys:
        return set()
    marks_ = ",".join(["(%s,%s)"] * len(keys))
    flat = [x for t, u in keys for x in (t, naive_utc(u))]
    cur.execute(
        f"SELECT transaction_id, updated_at FROM {schema.VERSIONS} "
        f"WHERE (transaction_id, updated_at) IN ({marks_})",
        tuple(flat),
    )
    return {(str(t), u) for t, u in cur.fetchall()}


def complete(
    cur: Any,
    topic: str,
    units: list[Unit],
    pending: dict[str, Received],
    waiting: set[str],
    dead: list[DeadLetter],
) -> tuple[list[Unit], list[str]]:
    """Attach pending entries; a version still lacking some is a duplicate or a dead letter.

    Pending copies of entries that this batch also carries (a re-publication) are
    deleted too; returns the units to write and the pending entry ids deleted.
    """
    out: list[Unit] = []
    resolved: list[str] = []
    incomplete: list[Unit] = []
    for unit in units:
        if waiting:
            resolved.extend(i for i in unit.record.entry_ids if i in waiting and i not in pending)
        if not unit.missing:
            out.append(unit)
            continue
        found = [pending[i] for i in unit.missing if i in pending]
        resolved.extend(i for i in unit.missing if i in pending)
        unit = Unit(
            unit.version,
            (*unit.entries, *found),
            tuple(i for i in unit.missing if i not in pending),
        )
        (incomplete if unit.missing else out).append(unit)
    if resolved:
        for start in range(0, len(resolved), ROWS_PER_STATEMENT):
            chunk = resolved[start : start + ROWS_PER_STATEMENT]
            cur.execute(
                f"DELETE FROM {schema.PENDING} WHERE entry_id IN ({marks(len(chunk))})",
                tuple(chunk),
            )
    if incomplete:
        known = existing_versions(
            cur, [(u.record.transaction_id, u.record.updated_at) for u in incomplete]
        )
        for unit in incomplete:
            key = (unit.record.transaction_id, naive_utc(unit.record.updated_at))
            if key in known:
                continue  # a redelivered copy of a version already written with its entries
            log.error(
                "version transaction_id=%s updated_at=%s lacks entries %s: dead letter",
                unit.record.transaction_id,
                unit.record.updated_at.isoformat(),
                unit.missing,
            )
            dead.extend(
                dead_letter(
                    topic,
                    item,
                    "missing_entries",
                    f"entries {','.join(unit.missing)} never arrived before their version",
                )
                for item in unit.messages()
            )
    return out, resolved


def live_orphans(cur: Any, orphans: list[Received]) -> list[Received]:
    """Orphans whose version is already stored are late duplicates: drop them."""
    if not orphans:
        return []
    keys = [
        (o.message.transaction_id, o.message.version_updated_at)
        for o in orphans
        if isinstance(o.message, LedgerEntry)
    ]
    known = existing_versions(cur, keys)
    return [
        o
        for o in orphans
        if isinstance(o.message, LedgerEntry)
        and (o.message.transaction_id, naive_utc(o.message.version_updated_at)) not in known
    ]


def write_orphans(sql: Statements, cur: Any, orphans: list[Received]) -> None:
    """Park ``orphans`` until their version arrives (a redelivered one is skipped)."""
    rows = []
    for o in orphans:
        e = o.message
        assert isinstance(e, LedgerEntry)
        rows.append(
            (
                e.entry_id,
                e.transaction_id,
                naive_utc(e.version_updated_at),
                o.raw.decode("utf-8"),
                o.partition,
                o.offset,
            )
        )
    sql.insert(
        cur, schema.PENDING, PENDING_COLUMNS, rows, "ON DUPLICATE KEY UPDATE entry_id = entry_id"
    )
