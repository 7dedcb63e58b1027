"""``SinkRunner``: the confluent-kafka loop around ``LedgerWriter`` (``txnpipe sink``).

Offsets live in MySQL, not in Kafka: on every partition assignment the runner seeks to the
offsets stored with the data (``on_assign``), accumulates messages until a batch is big
(``BatchSizer``, adapted between 1,000 and ``batch_messages``), old (``max_batch_age``,
so batches commit at least every second under steady load) or nothing more arrives, and
writes each batch with its offsets in one DB transaction — in a writer thread, while this
thread decodes the next batch (pipelining; one batch in flight at most). After
the DB commit it also commits the offsets to the consumer group, asynchronously and only
for the lag figures of ``txnpipe status``; they are never read back.

``--until-idle``: Tansu's high watermark is wrong, so "caught up" is decided from things
we trust: partitions are assigned, nothing is buffered, ``consume()`` returned nothing
for ``idle_seconds``, and for every assigned partition the offset stored in MySQL is at
least the consumer's own position (what it has fetched so far) — everything delivered
is committed. Idle means no new ledger message for that long, not "end of topic".

This module is the loop and its fencing (assignment, revocation, re-seeking); the Kafka
settings and topics are in ``consumer``, batch sizing in ``sizing``, retry classification
in ``retries``, the DLQ producer in ``dead_letters``, the SQL in ``writer``.
"""

from __future__ import annotations

import gc
import logging
import signal
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from types import FrameType
from typing import Any, TypeVar

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from common.errors import ServiceUnavailableError
from common.settings import Settings
from schemas import DLQ, LEDGER, DeadLetter
from sinks import db, retries
from sinks.batch import BatchPlan, Received, decode, fold, render
from sinks.consumer import consumer_config, ensure_topics, group_id, leave_when_settled
from sinks.dead_letters import DeadLetterPublisher
from sinks.metrics import SinkMetrics
from sinks.sizing import BatchSizer
from sinks.writer import BatchResult, FencedError, LedgerWriter

__all__ = ["SinkRunner", "ensure_topics", "group_id"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class SinkRunner:
    """Consume the ledger topic and write it to MySQL until stopped (or idle)."""

    def __init__(
        self,
        settings: Settings,
        *,
        batch_messages: int = 20000,
        max_batch_age: float = 0.5,
        idle_seconds: float = 3.0,
        clock: Callable[[], datetime] | None = None,
        metrics: SinkMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or SinkMetrics(settings.namespace)
        self.topic = settings.topic(LEDGER.suffix)
        self.dlq_topic = settings.topic(DLQ.suffix)
        self.batch_messages = batch_messages
        self.sizer = BatchSizer(batch_messages)
        self.max_batch_age = max_batch_age
        self.idle_seconds = idle_seconds
        self.clock = clock or (lambda: datetime.now(UTC))
        self.stopping = False
        self.expected: dict[int, int] = {}  # partition -> next offset stored in MySQL
        self.buffer: list[Any] = []
        self.batch_started = 0.0
        self.last_activity = time.monotonic()
        self.first_message_at: float | None = None  # monotonic, for benchmarks
        self.commit_times: list[float] = []  # monotonic time of each batch commit
        self.totals = {
            "batches": 0,
            "messages": 0,
            "units": 0,
            "entries": 0,
            "dead": 0,
            "retries": 0,
            "revoked": 0,
        }
        self.dead_letters = DeadLetterPublisher(settings, self.dlq_topic)
        self.writer = LedgerWriter(
            settings,
            group=group_id(settings),
            topic=self.topic,
            dlq_topic=self.dlq_topic,
            send_dead=self.dead_letters.send,
            clock=self.clock,
        )
        self.consumer: Consumer | None = None
        self._revoked = False  # partitions revoked and no assignment since: a rebalance is on
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sink-writer")
        self._inflight: tuple[BatchPlan, Future[BatchResult | FencedError | None]] | None = None
        self.metrics.watch(settings, self.topic, lambda: self.expected)

    # -- lifecycle -----------------------------------------------------------------------

    def stop(self, *_: object) -> None:
        """Finish the batch in hand, then leave (SIGTERM/SIGINT)."""
        self.stopping = True

    def install_signal_handlers(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            log.info("sink: signal %d, stopping after the current batch", signum)
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self, *, until_idle: bool = False) -> int:
        """The consume → batch → write loop; returns the process exit code."""
        # At start a MySQL that stays down is an error the operator must see (exit 1); once
        # running, the sink waits for it.
        self._with_retries(self.writer.connect, "connect", give_up_after=30.0)
        ensure_topics(self.settings)
        self.consumer = Consumer(consumer_config(self.settings))
        self.consumer.subscribe(
            [self.topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_revoke,
        )
        log.info(
            "sink: consuming topic=%s group=%s into database=%s",
            self.topic,
            group_id(self.settings),
            self.settings.mysql_database,
        )
        started = time.monotonic()
        # A batch allocates ~10 objects per message (pydantic models, rows) and frees them by
        # reference counting (no cycles); the cyclic GC's default gen-0 threshold of 700
        # scans them over and over and halves the decode rate. Measured: 28 → 15 µs/message.
        thresholds = gc.get_threshold()
        gc.freeze()
        gc.set_threshold(100_000, 50, 100)
        try:
            while not self.stopping:
                self._poll_once()
                if until_idle and self._caught_up(started):
                    log.info("sink: caught up (%s)", self._summary())
                    break
            self._flush(wait=True)
        finally:
            self._close()
            gc.set_threshold(*thresholds)
            gc.unfreeze()
        return 0

    def _close(self) -> None:
        if self._inflight is not None:
            try:
                self._settle()
            except Exception:
                log.exception("sink: the last batch failed")
        if self.consumer is not None:
            try:
                leave_when_settled(self.consumer, self.settings, lambda: self._revoked)
            except (KafkaException, RuntimeError):
                log.debug("closing the consumer failed", exc_info=True)
            self.consumer = None
        self._pool.shutdown(wait=True)
        self.dead_letters.close()
        self.writer.close()

    def _summary(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.totals.items())

    # -- partitions ----------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        self._flush(wait=True)  # the writer's connection is used below
        ours = [tp.partition for tp in assigned if tp.topic == self.topic]
        stored = self._with_retries(lambda: self.writer.load_offsets(ours), "load offsets")
        for tp in assigned:
            offset = stored.get(tp.partition, -2)
            tp.offset = OFFSET_BEGINNING if offset < 0 else offset
            self.expected[tp.partition] = offset
        consumer.assign(assigned)
        self._revoked = False
        self.last_activity = time.monotonic()
        log.info(
            "sink: assigned partitions %s at stored offsets %s",
            ours,
            {p: stored.get(p) for p in ours},
        )

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        gone = {tp.partition for tp in revoked}
        self._flush(wait=True)  # commit what we hold before the partitions move
        if gone:
            self.totals["revoked"] += 1
            self.metrics.revocations.inc()
            self._revoked = True
        # Buffered messages of revoked partitions are dropped, not written: their offsets
        # are not committed, so whoever gets the partition reads them again from MySQL's offset.
        self.buffer = [m for m in self.buffer if m.partition() not in gone]
        for p in gone:
            self.expected.pop(p, None)
        try:
            consumer.unassign()
        except KafkaException:
            log.debug("unassign failed", exc_info=True)
        log.info("sink: partitions %s revoked", sorted(gone))

    def _caught_up(self, started: float) -> bool:
        assert self.consumer is not None
        now = time.monotonic()
        if self.buffer or self._inflight or now - self.last_activity < self.idle_seconds:
            return False
        assignment = self.consumer.assignment()
        if not assignment:
            # Another sink of the group may own every partition; give the join a fair chance.
            return now - started > max(30.0, 3 * self.idle_seconds)
        for tp in self.consumer.position(assignment):
            if tp.offset == OFFSET_INVALID or tp.offset < 0:
                continue  # nothing fetched from this partition: nothing to commit
            if self.expected.get(tp.partition, -2) < tp.offset:
                return False
        return True

    # -- batches -------------------------------------------------------------------------

    def _poll_once(self) -> None:
        assert self.consumer is not None
        if self._inflight is not None and self._inflight[1].done():
            self._settle()
        if self.buffer:
            wait = max(0.0, self.max_batch_age - (time.monotonic() - self.batch_started))
        else:
            wait = 0.2
        room = max(1, min(5000, self.sizer.limit - len(self.buffer)))
        messages = self.consumer.consume(num_messages=room, timeout=min(wait, 0.2))
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise ServiceUnavailableError(f"Kafka consumer failed: {error.str()}")
                log.warning("sink: consumer error %s", error.str())
                continue
            if not self.buffer:
                self.batch_started = time.monotonic()
                if self.first_message_at is None:
                    self.first_message_at = self.batch_started
            self.buffer.append(message)
        if messages:
            self.last_activity = time.monotonic()
        if self.buffer and (
            len(self.buffer) >= self.sizer.limit
            or time.monotonic() - self.batch_started >= self.max_batch_age
            or not messages  # nothing more arrived in the wait: write what we have now
        ):
            self._flush()

    def _plan(self, messages: list[Any]) -> BatchPlan:
        items: list[Received | DeadLetter] = []
        next_offsets: dict[int, int] = {}
        for m in messages:
            partition, offset = m.partition(), m.offset()
            items.append(decode(self.topic, partition, offset, m.key(), m.value()))
            if offset + 1 > next_offsets.get(partition, -1):
                next_offsets[partition] = offset + 1
        plan = fold(items, next_offsets)
        return render(plan) if self.writer.bulk else plan

    def _flush(self, *, wait: bool = False) -> None:
        """Hand the buffered messages to the writer thread as one batch.

        Decoding and folding happen here, in the consumer thread, while the writer thread
        is still busy with the previous batch (pipelining: Python work overlaps the
        database's). At most one batch is in flight; its offsets are the next one's
        expected offsets. ``wait``: also wait for this batch to be committed.
        """
        if self.buffer:
            messages, self.buffer = self.buffer, []
            plan = self._plan(messages)
            if not self._settle():
                # The batch before this one was fenced or abandoned: these messages follow
                # offsets that were not committed. Read them again from what MySQL holds.
                self._reseek({p: self.expected.get(p, -2) for p in plan.next_offsets})
            elif plan.messages:
                expected = {p: self.expected.get(p, -2) for p in plan.next_offsets}
                self._inflight = (plan, self._pool.submit(self._write, plan, expected))
        if wait:
            self._settle()

    def _settle(self) -> bool:
        """Wait for the batch in flight; False when later batches must be dropped (re-seek)."""
        if self._inflight is None:
            return True
        plan, future = self._inflight
        self._inflight = None
        outcome = future.result()  # non-transient errors propagate: the sink stops loudly
        if isinstance(outcome, FencedError):
            self.metrics.batches.inc(1, "fenced")
            self._reseek(outcome.stored)
            return False
        if outcome is None:  # stopping with an unwritten batch: it is read again on start
            return False
        result = outcome
        self.sizer.observe(result.seconds, plan.messages)
        for p, offset in plan.next_offsets.items():
            self.expected[p] = offset
        self._commit_to_group(plan.next_offsets)
        self.last_activity = time.monotonic()  # idle time counts from here, not from the fetch
        self.totals["batches"] += 1
        self.totals["messages"] += plan.messages
        self.totals["units"] += result.units
        self.totals["entries"] += result.entries
        self.totals["dead"] += len(result.dead)
        self.metrics.settled(plan.messages, result)
        log.info(
            "sink: batch messages=%d versions=%d entries=%d pending=%d dead=%d in %.3fs%s",
            plan.messages,
            result.units,
            result.entries,
            result.orphans,
            len(result.dead),
            result.seconds,
            " (already committed)" if result.already else "",
        )
        return True

    def _write(self, plan: BatchPlan, expected: dict[int, int]) -> BatchResult | FencedError | None:
        """Writer thread: one batch, retried with backoff on transient errors."""
        backoff = retries.Backoff()
        while True:
            try:
                result = self.writer.write(plan, expected)
                self.commit_times.append(time.monotonic())
                return result
            except FencedError as fenced:
                self.writer.reset()
                log.warning("sink: %s", fenced)
                return fenced
            except (*retries.RETRIED, TimeoutError) as exc:  # type: ignore[misc]
                transient = retries.is_transient(exc, self.writer.conn)
                if isinstance(exc, db.DB_ERRORS):
                    self.metrics.db_error(transient)
                self.writer.reset()
                if not transient:
                    raise
                if self.stopping:
                    log.warning(
                        "sink: stopping with an unwritten batch (it is re-read on start): %s", exc
                    )
                    return None
                self.totals["retries"] += 1
                log.warning(
                    "sink: transient database error, retrying the batch in %.1fs: %s",
                    backoff.delay,
                    exc,
                )
                backoff.sleep()

    def _reseek(self, stored: dict[int, int]) -> None:
        """Another writer moved our partitions' offsets: continue from what MySQL says."""
        assert self.consumer is not None
        self.buffer = [m for m in self.buffer if m.partition() not in stored]
        for partition, offset in stored.items():
            self.expected[partition] = offset
            try:
                self.consumer.seek(
                    TopicPartition(
                        self.topic, partition, OFFSET_BEGINNING if offset < 0 else offset
                    )
                )
            except KafkaException:
                log.warning("sink: cannot seek partition=%d (revoked?)", partition, exc_info=True)

    def _commit_to_group(self, offsets: dict[int, int]) -> None:
        assert self.consumer is not None
        try:
            self.consumer.commit(
                offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()],
                asynchronous=True,
            )
        except KafkaException:
            log.debug("group commit (informational) failed", exc_info=True)

    def _with_retries(
        self, action: Callable[[], T], what: str, give_up_after: float | None = None
    ) -> T:
        """``action()``, retried with backoff on transient errors (until ``give_up_after`` s)."""
        return retries.with_retries(
            action,
            what,
            conn=lambda: self.writer.conn,
            reset=self.writer.reset,
            stopping=lambda: self.stopping,
            give_up_after=give_up_after,
            on_error=self.metrics.db_error,
        )
