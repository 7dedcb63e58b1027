"""The sink's stored positions: ledger offsets in ``sink_offsets`` and raw-topic positions.

Offsets are stored with the data they cover, in the same DB transaction: that is what
makes the sink exactly once. Locking a batch's offset rows first (``FOR UPDATE``) is also
the fence: when they are not where this sink left them, another sink took the partitions
over (or our own COMMIT succeeded although the reply was lost), and the batch must not
be written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from common.errors import TxnpipeError
from sinks import schema
from sinks.statements import Statements

OFFSET_BEGINNING = -2  # librdkafka's OFFSET_BEGINNING: nothing stored yet
OFFSET_COLUMNS = ("consumer_group", "topic", "kafka_partition", "next_offset")

Fence = Literal["ours", "already", "fenced"]


class FencedError(TxnpipeError):
    """The stored offsets moved under us: another sink owns (or owned) these partitions."""

    retriable = True

    def __init__(self, stored: dict[int, int]) -> None:
        super().__init__(f"stored offsets moved to {stored}; re-seeking")
        self.stored = stored


def fence(
    stored: Mapping[int, int], expected: Mapping[int, int], after: Mapping[int, int]
) -> Fence:
    """``ours`` when the stored offsets are where we left them, ``already`` when they are
    where this batch would move them (an earlier attempt committed), else ``fenced``."""
    if all(stored.get(p) == expected.get(p) for p in after):
        return "ours"
    if all(stored.get(p) == after[p] for p in after):
        return "already"
    return "fenced"


def read(
    cur: Any, group: str, topic: str, partitions: Sequence[int], *, lock: bool
) -> dict[int, int]:
    """Stored next offsets of ``partitions`` (``lock``: ``FOR UPDATE``, the fence)."""
    if not partitions:
        return {}
    marks = ",".join(["%s"] * len(partitions))
    cur.execute(
        f"SELECT kafka_partition, next_offset FROM {schema.OFFSETS} "
        f"WHERE consumer_group = %s AND topic = %s AND kafka_partition IN ({marks})"
        + (" FOR UPDATE" if lock else ""),
        (group, topic, *partitions),
    )
    return {int(p): int(o) for p, o in cur.fetchall()}


def create(sql: Statements, cur: Any, group: str, topic: str, partitions: Sequence[int]) -> None:
    """Rows at ``OFFSET_BEGINNING`` for partitions that have none yet."""
    rows = [(group, topic, p, OFFSET_BEGINNING) for p in partitions]
    if rows:
        sql.insert(
            cur,
            schema.OFFSETS,
            OFFSET_COLUMNS,
            rows,
            "ON DUPLICATE KEY UPDATE next_offset = next_offset",
        )


def advance(
    sql: Statements,
    cur: Any,
    group: str,
    topic: str,
    next_offsets: Mapping[int, int],
    positions: Mapping[int, int],
) -> None:
    """Store the batch's next ledger offsets and the raw-topic positions its versions reached."""
    if positions:
        sql.insert(
            cur,
            schema.RAW_POSITIONS,
            ("raw_partition", "last_source_offset"),
            sorted(positions.items()),
            "ON DUPLICATE KEY UPDATE last_source_offset = GREATEST(last_source_offset, "
            f"{sql.incoming('last_source_offset')}), updated_at = CURRENT_TIMESTAMP(6)",
        )
    partitions = sorted(next_offsets)
    if partitions:
        sql.insert(
            cur,
            schema.OFFSETS,
            OFFSET_COLUMNS,
            [(group, topic, p, next_offsets[p]) for p in partitions],
            f"ON DUPLICATE KEY UPDATE next_offset = {sql.incoming('next_offset')}, "
            "updated_at = CURRENT_TIMESTAMP(6)",
        )
