"""The Faust worker: raw bytes in, batches of one partition handed to ``BatchProcessor``.

Faust pays its per-message asyncio cost per Kafka message; ``take_events`` hands us up to
``batch_size`` messages at once, grouped here by partition, and all the per-record work
(cleaning, dedup, versioning, the Redis Lua call, the ledger publish) happens per batch
in a worker thread. Offsets are committed by Faust after the batch returns (the events are
acked then), i.e. only after its ledger messages were acked by the broker.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import threading
import time
from collections import defaultdict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.web import Request, Response, View

from common.settings import Settings
from schemas.deadletter import redrive_of
from stream_app.fold import RawMessage
from stream_app.lookups import answer_payload
from stream_app.metrics import PartitionState, StreamMetrics
from stream_app.processor import BatchProcessor, BatchReport

log = logging.getLogger(__name__)

# aiokafka long-polls with fetch_max_wait_ms, which Faust hard-codes to 1500 ms; a broker
# that does not answer a waiting fetch early (the bundled Tansu) then adds up to 1.5 s to
# freshness. 50 ms bounds it; a real Kafka answers as soon as data arrives either way.
FETCH_MAX_WAIT_MS = 50
CRASH_EXIT = 70  # an unexpected error: exit WITHOUT acking the batch; a restart redoes it
SHUTDOWN_GRACE = 120.0  # seconds a batch in flight at shutdown may take to finish
MAX_UNEXPECTED = 5


@dataclass
class Totals:
    """Batches since the last INFO line (one line per LOG_EVERY seconds, not per batch)."""

    LOG_EVERY = 10.0
    records: int = 0
    messages: int = 0
    batches: int = 0
    steps: dict[str, float] = field(default_factory=dict)
    since: float = field(default_factory=time.monotonic)
    wait: float = 0.0  # longest time a message waited (producer timestamp -> batch start)

    def add(self, report: BatchReport) -> None:
        if self.batches == 0:  # measure from the first batch, not from an idle start
            busy = report.parse_s + report.read_s + report.fold_s + report.apply_s
            self.since = time.monotonic() - busy - report.publish_s
        self.records += report.records
        self.messages += report.messages
        self.batches += 1
        for step in ("parse", "read", "fold", "apply", "publish"):
            self.steps[step] = self.steps.get(step, 0.0) + getattr(report, f"{step}_s")
        elapsed = time.monotonic() - self.since
        if elapsed >= self.LOG_EVERY:
            split = " ".join(f"{k}={v:.2f}s" for k, v in self.steps.items())
            log.info(
                "applied %d records in %d messages, %d batches: %.0f records/s "
                "(%s in %.1fs; longest wait before a batch %.0f ms)",
                self.records, self.messages, self.batches, self.records / elapsed, split, elapsed,
                self.wait * 1000,
            )  # fmt: skip
            self.wait = 0.0
            self.records = self.messages = self.batches = 0
            self.steps.clear()
            self.since = time.monotonic()


@dataclass(frozen=True)
class WorkerOptions:
    """Knobs of one worker (flags of ``txnpipe stream``)."""

    batch_size: int = 1000  # Kafka messages per take(); a poller message holds many records
    within: float = 0.05  # seconds take() waits for a batch to fill (bounds freshness)
    web_port: int = 6066  # 0 disables the web server
    web_bind: str = "127.0.0.1"
    session_timeout: float = 10.0
    metrics_port: int = 0  # GET /metrics (0: off)
    metrics_bind: str = "127.0.0.1"


def _shorten_fetch_wait() -> None:
    from faust.transport.drivers import aiokafka as driver

    thread_cls: Any = getattr(driver, "AIOKafkaConsumerThread", None)
    original = getattr(thread_cls, "_create_worker_consumer", None)
    if original is None:  # another faust-streaming layout: freshness is worse, not wrong
        log.warning("cannot shorten Faust's fetch wait; freshness may lag up to 1.5 s")
        return
    if getattr(thread_cls, "_txnpipe_patched", False):
        return

    def create_worker_consumer(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = FETCH_MAX_WAIT_MS  # read when it starts its fetcher
        return consumer

    thread_cls._create_worker_consumer = create_worker_consumer
    thread_cls._txnpipe_patched = True


def create_app(settings: Settings, options: WorkerOptions) -> tuple[faust.App, BatchProcessor]:
    """The Faust app and the processor it drives (call ``processor.close()`` after the worker)."""
    _shorten_fetch_wait()
    app_id = f"{settings.namespace}-stream"
    datadir = settings.state_dir / "faust" / app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)
    brokers = [f"kafka://{server.strip()}" for server in settings.kafka_bootstrap.split(",")]
    app = faust.App(
        app_id,
        broker=brokers,
        value_serializer="raw",
        key_serializer="raw",
        topic_partitions=settings.partitions,
        topic_disable_leader=True,
        datadir=str(datadir),
        web_enabled=options.web_port > 0,
        web_port=options.web_port or 6066,
        web_bind=options.web_bind,
        broker_session_timeout=options.session_timeout,
        broker_heartbeat_interval=max(0.5, options.session_timeout / 10),
        consumer_auto_offset_reset="earliest",
        stream_wait_empty=True,
        broker_max_poll_records=max(500, options.batch_size),
        consumer_max_fetch_size=8 * 1024 * 1024,  # poller messages are large JSON arrays
        stream_buffer_maxsize=max(100, options.batch_size),
    )
    raw_topic = app.topic(
        settings.topic("transactions.raw"),
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
        internal=False,
    )
    stop = threading.Event()
    # ONE thread applies every batch: glibc gives each thread its own malloc arena, and a
    # pool of N threads would grow N arenas to the size of the largest batch. A second
    # thread publishes, so waiting for broker acks overlaps with the next batch's work.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="txnpipe-apply")
    publishing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="txnpipe-publish")
    metrics = StreamMetrics(settings.namespace)
    owned = PartitionState(settings, metrics)  # lag and freshness, read when scraped
    processor = BatchProcessor(settings, stop=stop, publishing=publishing, metrics=metrics)
    unexpected = {"count": 0}
    totals = Totals()

    def finish_or_die(work: Future[Any], partition: int) -> None:
        """Shutting down mid-batch: Faust acks (and commits) the batch once the agent
        returns, so the batch must be applied and published first; else exit unacked."""
        try:
            result = work.result(timeout=SHUTDOWN_GRACE)
            if isinstance(result, BatchReport) and result.publishing is not None:
                result.publishing.result(timeout=SHUTDOWN_GRACE)
        except Exception as exc:
            log.critical("partition=%d: batch unfinished at shutdown (%s); exiting unacked",
                         partition, exc)  # fmt: skip
            os._exit(CRASH_EXIT)

    async def published(partition: int, work: Future[None]) -> None:
        """Wait for a batch's publish; if it failed, publish its outbox again (or die)."""
        try:
            await asyncio.shield(asyncio.wrap_future(work))
        except asyncio.CancelledError:
            finish_or_die(work, partition)
            raise
        except Exception:
            if stop.is_set():
                finish_or_die(work, partition)
            log.exception("partition=%d: publishing failed; publishing the outbox", partition)
            try:
                await asyncio.to_thread(processor.recover, partition)
            except Exception:
                log.critical("partition=%d: cannot publish; exiting unacked", partition)
                os._exit(CRASH_EXIT)

    async def handle(partition: int, messages: list[RawMessage]) -> Future[None] | None:
        """Apply one partition's batch; returns its publish, still running, if any."""
        while True:
            work = executor.submit(processor.process, partition, messages)
            try:
                # shielded: a cancelled agent must not cancel a batch half-way through
                report = await asyncio.shield(asyncio.wrap_future(work))
                if report.skipped < report.messages:  # not a redelivery of applied ones
                    metrics.applied_at(stamps.get(partition, ()))
                unexpected["count"] = 0
                log.debug("partition=%d %s", partition, report)
                totals.add(report)
                return report.publishing
            except asyncio.CancelledError:
                finish_or_die(work, partition)
                raise
            except Exception:
                if stop.is_set():
                    finish_or_die(work, partition)  # it failed: exits without acking
                unexpected["count"] += 1
                metrics.redis_errors.inc(1, "permanent")  # not a known transient failure
                log.exception("partition=%d: batch failed unexpectedly", partition)
                if unexpected["count"] >= MAX_UNEXPECTED:
                    # Never ack (and so skip) a batch we could not apply: die, be restarted.
                    log.critical(
                        "giving up after %d failures; exiting without acking", MAX_UNEXPECTED
                    )
                    os._exit(CRASH_EXIT)
                await asyncio.sleep(1.0)
                try:  # publish whatever the failed attempt applied but did not publish
                    await asyncio.to_thread(processor.recover, partition)
                except Exception:
                    log.exception("partition=%d: recovery failed too", partition)

    stamps: dict[int, list[float]] = defaultdict(list)  # the batch's message timestamps

    @app.agent(raw_topic, name=f"{app_id}-apply")
    async def apply(stream: Any) -> None:
        async for events in stream.take_events(options.batch_size, within=options.within):
            by_partition: dict[int, list[RawMessage]] = defaultdict(list)
            stamps.clear()
            oldest = time.time()
            for event in events:
                msg = event.message
                by_partition[msg.partition].append(
                    RawMessage(msg.offset, msg.key, msg.value, redrive_of(msg.headers))
                )
                stamps[msg.partition].append(msg.timestamp)
                oldest = min(oldest, msg.timestamp or oldest)
            totals.wait = max(totals.wait, time.time() - oldest)  # produce -> in our hands
            pending: list[tuple[int, Future[None]]] = []
            for partition, messages in by_partition.items():
                messages.sort(key=lambda m: m.offset)
                work = await handle(partition, messages)
                if work is not None:
                    pending.append((partition, work))
            for partition, work in pending:  # the take acks its events after this
                await published(partition, work)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(_sender: Any, assigned: Any, **_: Any) -> None:
        """Before any batch of a newly assigned partition: publish its leftover outbox, and
        restore it from the ledger if Redis has lost it."""
        mine = sorted(tp.partition for tp in assigned if tp.topic == raw_topic.get_topic_name())
        owned.set_assigned(mine, True)
        wms = await asyncio.gather(*(asyncio.to_thread(processor.recover, p) for p in mine))
        log.info("assigned partitions=%s watermarks=%s", mine, list(wms))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(_sender: Any, revoked: Any, **_: Any) -> None:
        gone = sorted(tp.partition for tp in revoked if tp.topic == raw_topic.get_topic_name())
        owned.set_assigned(gone, False)
        log.info("revoked partitions=%s", gone)

    def _view(question: str) -> type[View]:
        class AnswerView(View):
            async def get(self, request: Request) -> Response:
                limit_arg = request.query.get("limit")
                try:
                    limit = int(limit_arg) if limit_arg else None
                except ValueError:
                    return self.json({"error": "limit must be an integer"}, status=400)
                if limit is not None and limit < 1:
                    return self.json({"error": "limit must be at least 1"}, status=400)
                payload = await asyncio.to_thread(answer_payload, settings, question, limit)
                return self.json(payload)

        return AnswerView

    if options.web_port > 0:
        app.page("/categories")(_view("categories"))
        app.page("/top-customers")(_view("top-customers"))
        app.page("/monthly")(_view("monthly"))

    app.conf.stream_processing_timeout = 300  # a restore may take a while

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def on_shutdown(_sender: Any, **_: Any) -> None:
        stop.set()  # retry loops give up instead of holding the shutdown forever

    return app, processor


# A batch allocates several objects per record (dicts, tuples, models) and frees them by
# reference counting; the cyclic GC's default gen-0 threshold of 700 scans the long-lived
# ones (Faust, state read back) over and over: measured 41 -> 29 us/record on the pure
# parse + fold (the sink does the same, sinks/runner.py).
GC_THRESHOLDS = (100_000, 50, 100)


def run_worker(settings: Settings, options: WorkerOptions, loglevel: str = "INFO") -> int:
    """Run one worker until SIGTERM/SIGINT; return the exit code."""
    app, processor = create_app(settings, options)
    processor.metrics.serve(options.metrics_port, options.metrics_bind)
    gc.freeze()  # what start-up built lives for the whole run: never scan it again
    gc.set_threshold(*GC_THRESHOLDS)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 0
    else:  # pragma: no cover - execute_from_commandline always raises SystemExit
        code = 0
    finally:
        processor.stop.set()
        processor.close()
    return code
