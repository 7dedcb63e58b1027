"""The stream worker's metrics (``stage="stream"``): counted once per partition batch from
its ``BatchReport`` and ``Fold``, never per record; lag and freshness of the partitions
this worker owns are read from Kafka and Redis when Prometheus scrapes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry

from common.metrics import DURATION_BUCKETS, LATENCY_BUCKETS, SIZE_BUCKETS, StageMetrics
from common.settings import Settings

OUTCOMES = ("accepted", "duplicate", "stale", "invalid")
STEPS = ("parse", "read", "fold", "apply", "publish")
STATE_EVERY = 2.0  # seconds a lag/freshness reading is reused (a fast scraper costs little)


class StreamMetrics(StageMetrics):
    """What one ``txnpipe stream`` worker applied, and how fast."""

    def __init__(self, namespace: str, registry: CollectorRegistry | None = None) -> None:
        super().__init__(namespace, "stream", registry)
        self.records = self.counter(
            "stream_records",
            "Records decided by outcome: accepted, duplicate, stale, invalid",
            ["outcome"],
        )
        self.read = self.counter(
            "stream_records_read", "Records in the raw messages handed to the worker"
        )
        self.messages = self.counter(
            "stream_messages",
            "Raw messages by outcome: applied, skipped (at or below the watermark: redelivered)",
            ["outcome"],
        )
        self.entries = self.counter("stream_ledger_entries", "Ledger entries published")
        self.dead_letters = self.counter(
            "dead_letters", "Records sent to the dead-letter topic by reason", ["reason"]
        )
        self.batch_records = self.histogram(
            "stream_batch_records", "Records per partition batch", SIZE_BUCKETS
        )
        self.batch_seconds = self.histogram(
            "stream_batch_duration_seconds",
            "Time to apply one partition batch (parse to Redis)",
            DURATION_BUCKETS,
        )
        self.step_seconds = self.counter(
            "stream_step_seconds", "Time spent per step of the batches", ["step"]
        )
        self.latency = self.histogram(
            "stream_publish_to_apply_seconds",
            "From a raw message's timestamp (its publish) to its batch applied in Redis",
            LATENCY_BUCKETS,
        )
        self.restores = self.counter(
            "stream_restores", "Partitions restored from the ledger (Redis had lost them)"
        )
        self.conflicts = self.counter(
            "stream_conflicts", "Batches recomputed because another worker moved the watermark"
        )
        self.redis_errors = self.counter(
            "redis_errors", "Redis failures by kind: transient (retried), permanent", ["kind"]
        )
        for outcome in OUTCOMES:
            self.records.of(outcome)
        for kind in ("transient", "permanent"):
            self.redis_errors.of(kind)

    def batch(
        self,
        *,
        records: int,
        skipped: int,
        applied: int,
        outcomes: Sequence[int],
        entries: int,
        reasons: dict[str, int],
        steps: Sequence[float],
    ) -> None:
        """One partition batch: ``outcomes`` in ``OUTCOMES`` order, ``steps`` in ``STEPS``."""
        self.read.inc(records)
        self.messages.inc(applied, "applied")
        self.messages.inc(skipped, "skipped")
        for outcome, count in zip(OUTCOMES, outcomes, strict=True):
            self.records.inc(count, outcome)
        self.entries.inc(entries)
        for reason, count in reasons.items():
            self.dead_letters.inc(count, reason)
        self.batch_records.observe(records)
        self.batch_seconds.observe(sum(steps[:4]))
        for step, seconds in zip(STEPS, steps, strict=True):
            self.step_seconds.inc(seconds, step)

    def applied_at(self, timestamps: Iterable[float], now: float | None = None) -> None:
        """Publish → Redis latency of each message of an applied batch (seconds)."""
        now = time.time() if now is None else now
        for stamp in timestamps:
            if stamp:
                self.latency.observe(max(now - stamp, 0.0))


class PartitionState:
    """Lag and freshness of the partitions this worker owns, read when scraped.

    Lag: the raw topic's end offset minus the next offset past the partition's watermark in
    Redis (what ``txnpipe status`` reports). Freshness: seconds since the partition's last
    applied batch (its time in Redis' ``fresh`` hash, written by the atomic apply).
    """

    def __init__(self, settings: Settings, metrics: StageMetrics) -> None:
        self.settings = settings
        self.assigned: set[int] = set()
        self._lock = threading.Lock()
        metrics.state(
            "stream_consumer_lag",
            "Raw records not yet applied, per partition this worker owns",
            self.lag,
            ["partition"],
            STATE_EVERY,
        )
        metrics.state(
            "stream_freshness_seconds",
            "Seconds since the partition's last applied batch",
            self.freshness,
            ["partition"],
            STATE_EVERY,
        )
        metrics.state(
            "stream_partitions_assigned",
            "Raw partitions this worker owns",
            lambda: [((), float(len(self.owned())))],
        )

    def set_assigned(self, partitions: Iterable[int], assigned: bool) -> None:
        with self._lock:
            if assigned:
                self.assigned.update(partitions)
            else:
                self.assigned.difference_update(partitions)

    def owned(self) -> list[int]:
        with self._lock:
            return sorted(self.assigned)

    def _redis(self, field: str) -> dict[int, int]:
        import redis

        from stream_app.keys import RedisKeys

        keys = RedisKeys.of(self.settings)
        owned = self.owned()
        if not owned:
            return {}
        client = redis.Redis.from_url(self.settings.redis_url, socket_timeout=2)
        try:
            values = client.hmget(getattr(keys, field), [str(p) for p in owned])
        finally:
            client.close()
        return {p: int(v) for p, v in zip(owned, values, strict=True) if v is not None}

    def lag(self) -> list[tuple[tuple[str], float]]:
        from common.kafka import end_offsets

        owned = self.owned()
        if not owned:
            return []
        watermarks = self._redis("watermark")
        ends = end_offsets(self.settings.kafka_bootstrap, self.settings.topic("transactions.raw"))
        return [
            ((str(p),), float(max(ends[p] - (watermarks.get(p, -1) + 1), 0)))
            for p in owned
            if p in ends
        ]

    def freshness(self) -> list[tuple[tuple[str], float]]:
        now_ms = time.time() * 1000
        return [((str(p),), max(now_ms - ms, 0.0) / 1000) for p, ms in self._redis("fresh").items()]
