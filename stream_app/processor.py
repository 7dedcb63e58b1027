"""One batch of one raw partition, end to end: parse, read, fold, apply (CAS), publish.

Blocking code (redis-py, confluent-kafka); the Faust agent runs it in a worker thread.
Infrastructure failures back off and retry the SAME batch, never skip it; a bad record is
data (DLQ), never an exception.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

import redis

from common.errors import TxnpipeError
from common.settings import Settings
from schemas.rules import enabled
from stream_app.fold import Fold, RawMessage, fold_batch, parse_batch, unpack_outbox
from stream_app.metrics import StreamMetrics
from stream_app.publisher import LedgerPublisher
from stream_app.restore import restore_partition
from stream_app.store import APPLIED, CONFLICT, NO_WATERMARK, OUTBOX_LOST, RedisStore

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRIABLE: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    redis.exceptions.BusyLoadingError,
    TxnpipeError,
)


@dataclass
class BatchReport:
    """What one call of ``process`` did (for logs, stats and the benchmark)."""

    partition: int
    messages: int = 0
    records: int = 0
    accepted: int = 0
    invalid: int = 0
    skipped: int = 0  # messages at or below the watermark (redelivered)
    conflicts: int = 0
    restores: int = 0
    # seconds spent per step, for the periodic INFO line and the benchmark
    parse_s: float = 0.0
    read_s: float = 0.0
    fold_s: float = 0.0
    apply_s: float = 0.0
    publish_s: float = 0.0
    # set when the publish runs on the publishing thread: the caller must wait for it
    # before the batch may be acked
    publishing: Future[None] | None = None


class BatchProcessor:
    """Applies raw batches to Redis exactly once in effect and publishes the ledger."""

    def __init__(
        self,
        settings: Settings,
        store: RedisStore | None = None,
        publisher: LedgerPublisher | None = None,
        stop: threading.Event | None = None,
        max_backoff: float = 5.0,
        publishing: Executor | None = None,
        metrics: StreamMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or StreamMetrics(settings.namespace)
        self.counted = settings.counted
        self.rules = enabled(settings.cleaning_rules)  # opt-in forms beyond CONTRACT §1
        self.raw_topic = settings.topic("transactions.raw")
        self.store = store or RedisStore(settings)
        self.publisher = publisher or LedgerPublisher(settings)
        self.stop = stop or threading.Event()
        self.max_backoff = max_backoff
        self.publishing = publishing  # None: publish in the calling thread
        self._locks: dict[int, threading.Lock] = {}  # per partition: recovery vs batches
        self._locks_guard = threading.Lock()

    def _lock(self, partition: int) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(partition, threading.Lock())

    def close(self) -> None:
        self.publisher.close()
        self.store.close()

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        """Call ``fn`` until it succeeds (infrastructure failures back off; never skip)."""
        delay = 0.1
        while True:
            try:
                return fn()
            except RETRIABLE as exc:
                if isinstance(exc, redis.exceptions.RedisError):
                    self.metrics.redis_errors.inc(1, "transient")
                if self.stop.is_set():
                    raise
                log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, self.max_backoff)

    # -- recovery -------------------------------------------------------------------------

    def recover(self, partition: int) -> int:
        """Publish a leftover outbox, and restore the partition if Redis lost it; return wm."""
        with self._lock(partition):
            self._retry(
                f"flushing the outbox of partition={partition}",
                lambda: self._flush_outbox(partition),
            )
            wm = self._retry(
                f"reading partition={partition}", lambda: self.store.watermark(partition)
            )
            if wm is None:
                wm = self._restore(partition)
            return wm

    def _flush_outbox(self, partition: int) -> None:
        leftovers = self.store.outbox(partition)
        if not leftovers:
            return
        messages = [m for _, blob in leftovers for m in unpack_outbox(blob)]
        log.info("partition=%d: publishing %d leftover outbox messages", partition, len(messages))
        self.publisher.publish(partition, messages)
        self.store.drop_outbox(partition, [offset for offset, _ in leftovers])

    def _restore(self, partition: int) -> int:
        """Rebuild the partition from the ledger until installed (by us or another worker)."""
        while True:
            restored = self._retry(
                f"restoring partition={partition}",
                lambda: restore_partition(self.settings, partition, self.counted),
            )
            result = self._retry(
                f"installing partition={partition}",
                lambda r=restored: self.store.install(r),  # type: ignore[misc]
            )
            if result == 1:
                self.metrics.restores.inc()  # installed by us (like the stats hash counts)
            if result in (0, 1):
                wm = self.store.watermark(partition)
                if wm is not None:
                    return wm
            log.warning("partition=%d: restore interrupted (result=%d), again", partition, result)

    # -- the hot path ---------------------------------------------------------------------

    def process(self, partition: int, messages: Sequence[RawMessage]) -> BatchReport:
        """Apply one batch of ONE raw partition (offset order); retries until it is applied."""
        report = BatchReport(partition, messages=len(messages))
        t0 = time.perf_counter()
        parsed = parse_batch(partition, messages, self.rules)
        report.records = sum(len(r) for r in parsed.results)
        ids = parsed.transaction_ids()
        t1 = time.perf_counter()
        report.parse_s = t1 - t0
        with self._lock(partition):
            while True:
                t1 = time.perf_counter()
                wm, current = self._retry(
                    f"reading partition={partition}", lambda: self.store.read(partition, ids)
                )
                t2 = time.perf_counter()
                report.read_s += t2 - t1
                if wm is None:
                    report.restores += 1
                    self._restore(partition)
                    continue
                fold = fold_batch(
                    parsed, current, watermark=wm, counted=self.counted,
                    raw_topic=self.raw_topic, accepted_at=datetime.now(UTC),
                )  # fmt: skip
                t3 = time.perf_counter()
                report.fold_s += t3 - t2
                if fold.messages == 0:
                    # all applied before: a redelivery after a crash, or an apply whose
                    # reply was lost (then its publish did not run): publish leftovers now
                    report.skipped = len(messages)
                    self._retry(
                        f"flushing the outbox of partition={partition}",
                        lambda: self._flush_outbox(partition),
                    )
                    self._count(report, fold)
                    return report
                result = self._retry(
                    f"applying partition={partition}",
                    lambda f=fold, w=wm: self.store.apply(f, w),  # type: ignore[misc]
                )
                report.apply_s += time.perf_counter() - t3
                if result == APPLIED:
                    break
                if result == NO_WATERMARK:
                    report.restores += 1
                    self._restore(partition)
                elif result == OUTBOX_LOST:
                    log.warning("partition=%d: outbox blob lost before the apply; again", partition)
                elif result == CONFLICT:
                    report.conflicts += 1
                    self.metrics.conflicts.inc()
                    log.info(
                        "partition=%d: watermark moved (another worker); recomputing", partition
                    )
            report.skipped = len(messages) - fold.messages
            report.accepted = fold.accepted
            report.invalid = fold.invalid
            t4 = time.perf_counter()
            report.publishing = self._publish(fold)
            report.publish_s = time.perf_counter() - t4
        self._count(report, fold)
        return report

    def _count(self, report: BatchReport, fold: Fold) -> None:
        """The batch's metrics, once per batch (the publish runs on: its time is the hand-off)."""
        self.metrics.batch(
            records=report.records,
            skipped=report.skipped,
            applied=fold.messages,
            outcomes=(fold.accepted, fold.duplicates, fold.stale, fold.invalid),
            entries=fold.entries,
            reasons=fold.reasons,
            steps=(report.parse_s, report.read_s, report.fold_s, report.apply_s, report.publish_s),
        )

    def _publish(self, fold: Fold) -> Future[None] | None:
        """Publish the batch's messages, then forget its outbox. With a publishing thread
        this returns at once: waiting for acks overlaps with the next batch's work (the
        thread is FIFO, so a partition's ledger stays in order)."""
        if not fold.out:
            return None

        def publish() -> None:
            self.publisher.publish(fold.partition, fold.out)
            self.store.drop_outbox(fold.partition, [fold.last_offset])

        what = f"publishing partition={fold.partition}"
        if self.publishing is None:
            self._retry(what, publish)
            return None
        return self.publishing.submit(self._retry, what, publish)
