"""``DeadLetterIndexer``: the DLQ topic → the ``dead_letters`` table, exactly once.

It runs inside ``txnpipe sink`` (a thread beside the ledger loop) in the sink's batch
discipline: each batch of DLQ messages and the DLQ offsets it covers commit in one MySQL
transaction (``sink_offsets``, group ``{ns}.sink.dlq``); on start it seeks to the offsets
stored there; the stored offsets, locked first, are also the fence against another sink's
indexer (it assigns every DLQ partition: no group join, and two sinks index the same
messages at worst, the second one finding them already committed). Rows go in with
``ON DUPLICATE KEY UPDATE`` no-ops on the table's unique keys, so a redelivery — or the
same dead letter published twice — is one row. ``txnpipe dlq`` reads only this table.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from common.errors import ServiceUnavailableError
from common.kafka import end_offsets, partition_counts
from common.settings import Settings
from schemas import DLQ
from sinks import db, offsets, retries, schema
from sinks.batch import fold_offsets
from sinks.dead_letter_rows import COLUMNS, RAW_COLUMN, read_envelope, row
from sinks.metrics import SinkMetrics
from sinks.statements import ROWS_PER_STATEMENT, Statements

log = logging.getLogger(__name__)

BATCH_MESSAGES = 2000


def index_group(settings: Settings) -> str:
    """The key of the index's rows in ``sink_offsets`` (and its Kafka group id)."""
    return f"{settings.namespace}.sink.dlq"


def insert_rows(conn: Any, cur: Any, rows: list[tuple[Any, ...]]) -> int:
    """Multi-row INSERT of index rows; a row already there (either unique key) is kept as is.

    ``raw`` goes as a ``_binary`` literal: the bytes are not UTF-8 text, whatever the
    connection's character set.
    """
    prepare = db.escaper(conn)
    head = f"INSERT INTO {schema.DEAD_LETTERS} ({', '.join(COLUMNS)}) VALUES ".encode()
    tail = b" ON DUPLICATE KEY UPDATE dlq_offset = dlq_offset"
    affected = 0
    for start in range(0, len(rows), ROWS_PER_STATEMENT // 10):
        values = []
        for r in rows[start : start + ROWS_PER_STATEMENT // 10]:
            literals = list(prepare(r))
            literals[RAW_COLUMN] = b"_binary" + literals[RAW_COLUMN]
            values.append(b"(" + b",".join(literals) + b")")
        cur.execute(head + b",".join(values) + tail)
        affected += max(cur.rowcount, 0)
    return affected


class DeadLetterIndexer:
    """Consumes every DLQ partition into ``dead_letters`` until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Callable[[], datetime] | None = None,
        metrics: SinkMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.topic = settings.topic(DLQ.suffix)
        self.group = index_group(settings)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.expected: dict[int, int] = {}  # partition -> next offset stored in MySQL
        self.indexed = 0  # rows written (a row already there is not counted)
        self.failure: BaseException | None = None
        self._stop = threading.Event()
        self._target: dict[int, int] | None = None  # finish(): stop once these are stored
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self.conn: Any = None
        self.consumer: Any = None
        self._dialect: Any = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, on_failure: Callable[[], None] = lambda: None) -> threading.Thread:
        """Run in a daemon thread; ``on_failure`` is called if it stops on an error."""

        def work() -> None:
            try:
                self.run()
            except BaseException as exc:
                self.failure = exc
                log.exception("dead-letter index: stopped on an error")
                on_failure()

        self._thread = threading.Thread(target=work, name="dlq-index", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def finish(self, timeout: float = 60.0) -> bool:
        """Index up to the DLQ's end as of now, then stop; False if not done in ``timeout``."""
        self._target = end_offsets(self.settings.kafka_bootstrap, self.topic)
        done = self._caught_up.wait(timeout) if self.failure is None else False
        self.stop()
        return done

    def run(self) -> None:
        """Connect, seek to the stored offsets, index until stopped (or finished)."""
        from sinks.consumer import ensure_topics

        ensure_topics(self.settings)
        self._retrying(self._connect, "connect", give_up_after=30.0)
        count = partition_counts(self.settings.kafka_bootstrap, [self.topic]).get(self.topic, 0)
        if not count:
            raise ServiceUnavailableError(f"topic={self.topic} has no partitions")
        stored = self._retrying(lambda: self._load(list(range(count))), "load offsets")
        self.consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": self.group,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "fetch.queue.backoff.ms": 10,
                "fetch.wait.max.ms": 100,
            }
        )
        self.consumer.assign([self._position(p, o) for p, o in stored.items()])
        log.info("dead-letter index: consuming topic=%s at stored offsets %s", self.topic, stored)
        try:
            while not self._stop.is_set():
                messages = self.consumer.consume(num_messages=BATCH_MESSAGES, timeout=0.2)
                good = []
                for m in messages:
                    error = m.error()
                    if error is None:
                        good.append(m)
                    elif error.fatal():
                        raise ServiceUnavailableError(f"Kafka consumer failed: {error.str()}")
                    elif error.code() != KafkaError._PARTITION_EOF:
                        log.warning("dead-letter index: consumer error %s", error.str())
                if good:
                    self._retrying(lambda g=good: self._write(g), "write")  # type: ignore[misc]
                if self._target is not None and self._reached(self._target):
                    self._caught_up.set()
                    break
        finally:
            self.consumer.close()
            db.close_quietly(self.conn)
            self.conn = None

    # -- pieces ---------------------------------------------------------------------------

    def _position(self, partition: int, offset: int) -> TopicPartition:
        return TopicPartition(self.topic, partition, OFFSET_BEGINNING if offset < 0 else offset)

    def _reached(self, target: dict[int, int]) -> bool:
        return all(max(self.expected.get(p, 0), 0) >= end for p, end in target.items())

    def _connect(self) -> Any:
        if self.conn is None:
            db.ensure_database(self.settings)
            conn = db.connect(self.settings)
            schema.migrate(conn, self._today())
            conn.commit()
            self._dialect = self._dialect or db.dialect_of(conn)
            self.conn = conn
        return self.conn

    def _today(self) -> date:
        return self.clock().date()

    def _sql(self) -> Statements:
        return Statements(self.conn, self._dialect, None)

    def _load(self, partitions: list[int]) -> dict[int, int]:
        conn = self._connect()
        cur = conn.cursor()
        offsets.create(self._sql(), cur, self.group, self.topic, partitions)
        stored = offsets.read(cur, self.group, self.topic, partitions, lock=False)
        cur.close()
        conn.commit()
        self.expected = dict(stored)
        return stored

    def _write(self, messages: list[Any]) -> None:
        """One batch and its offsets in one transaction, behind the fence."""
        conn = self._connect()
        sql = self._sql()
        now = self.clock()
        keep = [m for m in messages if m.offset() >= self.expected.get(m.partition(), -2)]
        if not keep:
            return
        after = fold_offsets([(m.partition(), m.offset()) for m in keep])
        rows = [
            row(
                read_envelope(m.value(), self.topic, m.partition(), m.offset()),
                m.partition(),
                m.offset(),
                m.timestamp()[1],
                now,
            )
            for m in keep
        ]
        cur = conn.cursor()
        cur.execute("START TRANSACTION")
        stored = offsets.read(cur, self.group, self.topic, sorted(after), lock=True)
        state = offsets.fence(stored, {p: self.expected.get(p, -2) for p in after}, after)
        if state != "ours":
            conn.rollback()
            cur.close()
            if state == "fenced":  # another indexer moved on: continue from where it is
                log.info("dead-letter index: offsets moved to %s; re-seeking", stored)
                for p, o in stored.items():
                    self.consumer.seek(self._position(p, o))
            self.expected.update(stored)
            return
        written = insert_rows(conn, cur, rows)
        offsets.advance(sql, cur, self.group, self.topic, after, {})
        conn.commit()
        cur.close()
        self.expected.update(after)
        self.indexed += written
        if self.metrics is not None:
            self.metrics.rows.inc(written, schema.DEAD_LETTERS)
        log.info(
            "dead-letter index: batch messages=%d rows=%d offsets=%s", len(keep), written, after
        )

    def _retrying(
        self, action: Callable[[], Any], what: str, give_up_after: float | None = None
    ) -> Any:
        def reset() -> None:
            conn, self.conn = self.conn, None
            db.close_quietly(conn)

        return retries.with_retries(
            action,
            f"dead-letter index: {what}",
            conn=lambda: self.conn,
            reset=reset,
            stopping=self._stop.is_set,
            give_up_after=give_up_after,
            on_error=None if self.metrics is None else self.metrics.db_error,
        )
