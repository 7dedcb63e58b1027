"""The read side of the dead-letter index (``txnpipe dlq``) and the redrive journal.

Every query goes through an index of ``dead_letters``: ``(reason, dead_at)``, ``dead_at``,
``transaction_id``, or the source key ``(stage, source_topic, source_partition,
source_offset, source_index)`` that redrive and export page through in the raw topic's
order (keyset pagination, never an OFFSET). Nothing here reads the DLQ topic but its end
offsets, to say how far behind the index is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mysql.connector.errors import Error as MySQLError

from common.errors import TxnpipeError
from common.kafka import end_offsets
from common.settings import Settings
from schemas import DLQ
from sinks import db, schema
from sinks.dead_letter_index import index_group

D, J = schema.DEAD_LETTERS, schema.REDRIVES
_FIELDS = (
    "dlq_partition, dlq_offset, dead_at, stage, reason, detail, transaction_id, source_topic, "
    "source_partition, source_offset, source_index, raw_length, LENGTH(raw), redrive_of"
)


@dataclass(frozen=True)
class Letter:
    """One indexed dead letter; ``raw`` may be a preview (``stored`` is what the index holds)."""

    partition: int
    offset: int
    dead_at: datetime
    stage: str
    reason: str
    detail: str
    transaction_id: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    source_index: int | None
    raw_length: int  # the record's full length as received
    stored: int  # bytes the index holds (less than raw_length when the envelope cut it)
    redrive_of: str | None
    raw: bytes

    @property
    def complete(self) -> bool:
        return self.stored >= self.raw_length


@dataclass(frozen=True)
class ReasonCount:
    stage: str
    reason: str
    count: int  # dead letters of records as received
    back: int  # redriven records that came back still invalid
    first_seen: datetime
    last_seen: datetime


class NoIndexError(TxnpipeError):
    """The database has no dead-letter index yet."""


def _letter(r: Sequence[Any], raw: bytes) -> Letter:
    return Letter(
        int(r[0]), int(r[1]), r[2], str(r[3]), str(r[4]), str(r[5]), r[6], str(r[7]),
        int(r[8]), int(r[9]), None if int(r[10]) < 0 else int(r[10]), int(r[11]), int(r[12]),
        r[13], bytes(raw),
    )  # fmt: skip


def _where(
    reason: str | None, since: datetime | None, transaction_id: str | None = None
) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    args: list[Any] = []
    if reason is not None:
        clauses.append("reason = %s")
        args.append(reason)
    if since is not None:
        clauses.append("dead_at >= %s")
        args.append(since.replace(tzinfo=None))
    if transaction_id is not None:
        clauses.append("transaction_id = %s")
        args.append(transaction_id)
    return (" AND ".join(clauses) or "TRUE"), args


class DeadLetterIndex:
    """Queries on ``dead_letters`` and ``dead_letter_redrives`` over one connection."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic(DLQ.suffix)
        try:
            self.conn = db.connect(settings, autocommit=True)
        except MySQLError as exc:
            if getattr(exc, "errno", None) == 1049:
                raise self._missing() from None
            raise
        try:
            self._all(f"SELECT 1 FROM {D} LIMIT 1")
        except MySQLError as exc:
            db.close_quietly(self.conn)
            if getattr(exc, "errno", None) == 1146:
                raise self._missing() from None
            raise

    def _missing(self) -> NoIndexError:
        return NoIndexError(
            f"no dead-letter index in database={self.settings.mysql_database}: "
            "`txnpipe sink` keeps it (start it, or `txnpipe run`)"
        )

    def close(self) -> None:
        db.close_quietly(self.conn)

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.cursor()
        cur.execute(sql, tuple(args))
        rows = list(cur.fetchall())
        cur.close()
        return rows

    # -- freshness ------------------------------------------------------------------------

    def behind(self) -> int | None:
        """DLQ messages not yet in the index (None when the broker does not answer)."""
        try:
            ends = end_offsets(self.settings.kafka_bootstrap, self.topic)
        except Exception:
            return None
        stored = {
            int(p): max(int(o), 0)
            for p, o in self._all(
                f"SELECT kafka_partition, next_offset FROM {schema.OFFSETS} "
                "WHERE consumer_group = %s AND topic = %s",
                (index_group(self.settings), self.topic),
            )
        }
        return sum(max(end - stored.get(p, 0), 0) for p, end in ends.items())

    # -- stats ----------------------------------------------------------------------------

    def reasons(self, since: datetime | None) -> list[ReasonCount]:
        where, args = _where(None, since)
        rows = self._all(
            f"SELECT stage, reason, SUM(redrive_of IS NULL), SUM(redrive_of IS NOT NULL), "
            f"MIN(dead_at), MAX(dead_at) FROM {D} WHERE {where} GROUP BY stage, reason",
            args,
        )
        return [
            ReasonCount(str(s), str(r), int(n), int(b), first, last)
            for s, r, n, b, first, last in rows
        ]

    def first_seen(self) -> dict[tuple[str, str], datetime]:
        """When each (stage, reason) was first seen, over the whole index."""
        rows = self._all(
            f"SELECT stage, reason, MIN(dead_at) FROM {D} WHERE redrive_of IS NULL "
            "GROUP BY stage, reason"
        )
        return {(str(s), str(r)): first for s, r, first in rows}

    def oldest(self) -> datetime | None:
        rows = self._all(f"SELECT MIN(dead_at) FROM {D}")
        return rows[0][0] if rows else None

    def hourly(self, now: datetime, hours: int = 24) -> list[tuple[str, str, int, int]]:
        """(stage, reason, hours ago, count) of records as received in the last ``hours``:
        0 is the last 60 minutes before ``now``."""
        at = now.replace(tzinfo=None)
        rows = self._all(
            f"SELECT stage, reason, FLOOR(TIMESTAMPDIFF(SECOND, dead_at, %s) / 3600) AS age, "
            f"COUNT(*) FROM {D} WHERE dead_at > %s - INTERVAL %s HOUR AND dead_at <= %s "
            "AND redrive_of IS NULL GROUP BY stage, reason, age",
            (at, at, hours, at),
        )
        return [(str(s), str(r), int(a), int(n)) for s, r, a, n in rows if 0 <= int(a) < hours]

    def redriven(self) -> dict[str, int]:
        """Dead letters redriven at least once, by reason."""
        rows = self._all(
            f"SELECT d.reason, COUNT(DISTINCT j.dlq_partition, j.dlq_offset) FROM {J} j "
            f"JOIN {D} d ON d.dlq_partition = j.dlq_partition AND d.dlq_offset = j.dlq_offset "
            "GROUP BY d.reason"
        )
        return {str(r): int(n) for r, n in rows}

    # -- letters --------------------------------------------------------------------------

    def letters(
        self,
        *,
        reason: str | None = None,
        since: datetime | None = None,
        transaction_id: str | None = None,
        limit: int = 50,
        preview: int = 120,
    ) -> list[Letter]:
        """The newest dead letters matching, with the first ``preview`` bytes of each record."""
        where, args = _where(reason, since, transaction_id)
        rows = self._all(
            f"SELECT {_FIELDS}, SUBSTRING(raw, 1, %s) FROM {D} WHERE {where} "
            "ORDER BY dead_at DESC, dlq_partition DESC, dlq_offset DESC LIMIT %s",
            [preview, *args, limit],
        )
        return [_letter(r, r[14]) for r in rows]

    def letter(self, partition: int | None, offset: int) -> list[Letter]:
        """The dead letter at ``partition``:``offset`` (every partition's when None)."""
        if partition is None:
            rows = self._all(f"SELECT {_FIELDS}, raw FROM {D} WHERE dlq_offset = %s", (offset,))
        else:
            rows = self._all(
                f"SELECT {_FIELDS}, raw FROM {D} WHERE dlq_partition = %s AND dlq_offset = %s",
                (partition, offset),
            )
        return [_letter(r, r[14]) for r in sorted(rows, key=lambda r: r[0])]

    def by_transaction(self, transaction_id: str) -> list[Letter]:
        rows = self._all(
            f"SELECT {_FIELDS}, raw FROM {D} WHERE transaction_id = %s "
            "ORDER BY dead_at, dlq_partition, dlq_offset",
            (transaction_id,),
        )
        return [_letter(r, r[14]) for r in rows]

    def in_source_order(
        self,
        *,
        source_topic: str,
        reason: str | None,
        since: datetime | None,
        originals_only: bool,
        chunk: int = 500,
    ) -> Iterator[Letter]:
        """Stream-stage dead letters of ``source_topic`` in the order it held the records
        (all versions of a transaction in one raw partition keep their order)."""
        where, args = _where(reason, since)
        if originals_only:
            where += " AND redrive_of IS NULL"
        after: tuple[int, int, int] = (-2, -2, -2)
        while True:
            rows = self._all(
                f"SELECT {_FIELDS}, raw FROM {D} WHERE stage = 'stream' AND source_topic = %s "
                f"AND (source_partition, source_offset, source_index) > (%s, %s, %s) "
                f"AND {where} ORDER BY source_partition, source_offset, source_index LIMIT %s",
                [source_topic, *after, *args, chunk],
            )
            for r in rows:
                yield _letter(r, r[14])
            if len(rows) < chunk:
                return
            last = rows[-1]
            after = (int(last[8]), int(last[9]), int(last[10]))

    def count_other_stages(
        self, *, source_topic: str, reason: str | None, since: datetime | None
    ) -> int:
        """Dead letters a redrive to ``source_topic`` cannot take (the sink's, foreign ones)."""
        where, args = _where(reason, since)
        rows = self._all(
            f"SELECT COUNT(*) FROM {D} WHERE NOT (stage = 'stream' AND source_topic = %s) "
            f"AND {where}",
            [source_topic, *args],
        )
        return int(rows[0][0])

    # -- the redrive journal --------------------------------------------------------------

    def journaled(self, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` were redriven already."""
        out: set[str] = set()
        for start in range(0, len(keys), 1000):
            part = keys[start : start + 1000]
            marks = ",".join(["%s"] * len(part))
            out.update(
                str(k)
                for (k,) in self._all(
                    f"SELECT redrive_key FROM {J} WHERE redrive_key IN ({marks})", part
                )
            )
        return out

    def record(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Journal published records: (key, partition, offset, origin, sha256, expected, run,
        raw partition, raw offset); one transaction, a row already there is kept."""
        if not rows:
            return
        cur = self.conn.cursor()
        cur.execute("START TRANSACTION")
        cur.executemany(
            f"INSERT INTO {J} (redrive_key, dlq_partition, dlq_offset, origin, raw_sha256, "
            "expected, run_id, raw_partition, raw_offset) VALUES "
            "(%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON DUPLICATE KEY UPDATE redrive_key = redrive_key",
            list(rows),
        )
        cur.execute("COMMIT")
        cur.close()
