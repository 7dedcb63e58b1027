"""The MySQL sink's metrics (``stage="sink"``): counted once per committed batch; lag,
freshness and the catch-all partition's rows are read when Prometheus scrapes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from common.metrics import DURATION_BUCKETS, SIZE_BUCKETS, StageMetrics
from common.settings import Settings
from sinks.schema import LEDGER, PENDING, VERSIONS

if TYPE_CHECKING:
    from sinks.writer import BatchResult

STATE_EVERY = 2.0  # seconds a lag reading is reused
CATCH_ALL_EVERY = 10.0  # a COUNT(*) on MySQL: at most this often


class SinkMetrics(StageMetrics):
    """What ``txnpipe sink`` wrote to MySQL, and what it ran into."""

    def __init__(self, namespace: str, registry: CollectorRegistry | None = None) -> None:
        super().__init__(namespace, "sink", registry)
        self.messages = self.counter(
            "sink_messages", "Ledger messages in batches committed to MySQL"
        )
        self.batches = self.counter(
            "sink_batches",
            "Batches by outcome: committed, already (an earlier attempt had), fenced",
            ["outcome"],
        )
        self.rows = self.counter("sink_rows_written", "Rows written per MySQL table", ["table"])
        self.dead_letters = self.counter(
            "dead_letters", "Messages the sink sent to the dead-letter topic by reason", ["reason"]
        )
        self.batch_messages = self.histogram(
            "sink_batch_messages", "Ledger messages per batch", SIZE_BUCKETS
        )
        self.batch_seconds = self.histogram(
            "sink_batch_duration_seconds",
            "Time to write one batch and its offsets in one MySQL transaction",
            DURATION_BUCKETS,
        )
        self.mysql_errors = self.counter(
            "mysql_errors", "MySQL failures by kind: transient (retried), permanent", ["kind"]
        )
        self.revocations = self.counter("sink_revocations", "Partition revocations (rebalances)")
        self.last_commit: float | None = None  # time.time() of the last committed batch
        for kind in ("transient", "permanent"):
            self.mysql_errors.of(kind)
        self.state(
            "sink_freshness_seconds",
            "Seconds since the last batch committed to MySQL",
            lambda: [] if self.last_commit is None else [((), time.time() - self.last_commit)],
        )

    def settled(self, messages: int, result: BatchResult) -> None:
        """A batch the writer finished: committed now, or by an earlier attempt."""
        if result.already:
            self.batches.inc(1, "already")
            return
        rows = {LEDGER: result.entries, VERSIONS: result.units, PENDING: result.orphans}
        dead = [d.reason for d in result.dead]
        self.committed(messages=messages, rows=rows, dead=dead, seconds=result.seconds)

    def committed(
        self, *, messages: int, rows: dict[str, int], dead: Iterable[str], seconds: float
    ) -> None:
        """One committed batch: its rows per table, the reasons of its dead letters."""
        self.batches.inc(1, "committed")
        self.messages.inc(messages)
        for table, count in rows.items():
            self.rows.inc(count, table)
        for reason in dead:
            self.dead_letters.inc(1, reason)
        self.batch_messages.observe(messages)
        self.batch_seconds.observe(seconds)
        self.last_commit = time.time()

    def db_error(self, transient: bool) -> None:
        self.mysql_errors.inc(1, "transient" if transient else "permanent")

    def watch(self, settings: Settings, topic: str, expected: Callable[[], dict[int, int]]) -> None:
        """Lag per assigned partition (``expected``: next offsets stored in MySQL) and the
        rows of the ledger's catch-all partition, read when scraped."""

        def lag() -> list[tuple[tuple[str], float]]:
            from common.kafka import end_offsets

            stored = dict(expected())
            if not stored:
                return []
            ends = end_offsets(settings.kafka_bootstrap, topic)
            return [
                ((str(p),), float(max(ends[p] - max(o, 0), 0)))
                for p, o in sorted(stored.items())
                if p in ends
            ]

        def catch_all() -> list[tuple[tuple[()], float]]:
            from sinks import db, partitions, schema

            conn = db.connect(settings, autocommit=True)
            try:
                return [((), float(partitions.catch_all_rows(conn, schema.LEDGER)))]
            finally:
                db.close_quietly(conn)

        self.state(
            "sink_consumer_lag",
            "Ledger messages not yet committed to MySQL, per partition this sink owns",
            lag,
            ["partition"],
            STATE_EVERY,
        )
        self.state(
            "sink_catch_all_rows",
            "Ledger rows in the catch-all partition (should be 0: every month has its own)",
            catch_all,
            (),
            CATCH_ALL_EVERY,
        )
