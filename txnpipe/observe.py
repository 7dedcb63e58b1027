"""What ``txnpipe status`` and the live view of ``txnpipe run`` show: one snapshot of every
stage, read from the stores themselves (Kafka, Redis, MySQL), never from a process's memory.

Each section is read independently; a service that does not answer makes its section say
so (and the snapshot unhealthy) instead of failing the whole report.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from common.kafka import committed_offsets, end_offsets, offsets_for_time
from common.settings import Settings

RAW, LEDGER, DLQ = "transactions.raw", "transactions.ledger", "transactions.dlq"


@dataclass
class StageStatus:
    name: str
    lag: int | None = None  # records (or messages) not yet processed
    lag_by_partition: dict[int, int] = field(default_factory=dict)
    per_minute: int | None = None  # messages handled in the last minute
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Snapshot:
    taken_at: str
    stages: list[StageStatus]
    dead_letters: int | None = None
    dead_letter_reasons: list[tuple[str, int]] = field(default_factory=list)
    redis_as_of: str | None = None
    mysql_as_of: str | None = None
    partitions: list[dict[str, Any]] = field(default_factory=list)
    catch_all_rows: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["healthy"] = self.healthy
        data["dead_letter_reasons"] = [
            {"reason": r, "count": c} for r, c in self.dead_letter_reasons
        ]
        return data


def _iso_ms(ms: int | float | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds")


def _per_minute(settings: Settings, topic: str) -> int | None:
    """Messages appended to ``topic`` in the last minute (seek by time, works on any broker)."""
    ends = end_offsets(settings.kafka_bootstrap, topic)
    if not ends:
        return None
    since = offsets_for_time(settings.kafka_bootstrap, topic, int((time.time() - 60) * 1000))
    return sum(max(ends[p] - since.get(p, ends[p]), 0) for p in ends)


def _redis(settings: Settings) -> Any:
    import redis

    return redis.Redis.from_url(settings.redis_url, socket_timeout=5, decode_responses=True)


def _poller(settings: Settings, snap: Snapshot) -> StageStatus:
    stage = StageStatus("poller")
    try:
        from producers import checkpoint_info

        info = checkpoint_info(settings)
        stage.detail.update(info)
        stage.per_minute = _per_minute(settings, settings.topic(RAW))
    except Exception as exc:
        stage.error = f"{type(exc).__name__}: {exc}"
    return stage


def _stream(settings: Settings, snap: Snapshot) -> StageStatus:
    from stream_app.keys import RedisKeys

    stage = StageStatus("stream")
    try:
        keys = RedisKeys.of(settings)
        client = _redis(settings)
        stats = {k: int(v) for k, v in client.hgetall(keys.stats).items()}
        watermarks = {int(p): int(o) for p, o in client.hgetall(keys.watermark).items()}
        fresh = [int(v) for v in client.hvals(keys.fresh)]
        client.close()
        stage.detail.update(stats)
        raw = settings.topic(RAW)
        ends = end_offsets(settings.kafka_bootstrap, raw)
        # a position is the Faust group's committed offset, or past the last applied batch
        # (a replay rebuilds the watermark from the ledger, which skips batches of duplicates)
        committed = committed_offsets(settings.kafka_bootstrap, f"{settings.namespace}-stream", raw)
        stage.lag_by_partition = {
            p: max(end - max(watermarks.get(p, -1) + 1, committed.get(p, 0)), 0)
            for p, end in ends.items()
        }
        stage.lag = sum(stage.lag_by_partition.values())
        stage.per_minute = _per_minute(settings, settings.topic(LEDGER))
        snap.redis_as_of = _iso_ms(max(fresh) if fresh else None)
        missing = [p for p in ends if p not in watermarks and ends[p] > 0]
        if missing:
            snap.problems.append(f"stream: partitions {missing} have no state in Redis yet")
    except Exception as exc:
        stage.error = f"{type(exc).__name__}: {exc}"
    return stage


def _sink(settings: Settings, snap: Snapshot) -> StageStatus:
    stage = StageStatus("sink")
    try:
        from sinks.status import sink_status

        info = sink_status(settings)
        ends = end_offsets(settings.kafka_bootstrap, settings.topic(LEDGER))
        stored: dict[int, int] = info.pop("next_offsets", {})
        stage.lag_by_partition = {p: max(end - stored.get(p, 0), 0) for p, end in ends.items()}
        stage.lag = sum(stage.lag_by_partition.values())
        stage.per_minute = info.pop("rows_last_minute", None)
        snap.mysql_as_of = info.pop("as_of", None)
        snap.partitions = info.pop("partitions", [])
        snap.catch_all_rows = int(info.pop("catch_all_rows", 0))
        stage.detail.update(info)
        if snap.catch_all_rows:
            snap.problems.append(
                f"mysql: {snap.catch_all_rows} ledger rows in the catch-all partition"
            )
    except Exception as exc:
        stage.error = f"{type(exc).__name__}: {exc}"
    return stage


def reason_counts(index: Any) -> Counter[str]:
    """Dead letters per reason in a ``DeadLetterIndex``, redriven ones that came back included."""
    counts: Counter[str] = Counter()
    for r in index.reasons(None):
        counts[r.reason] += r.count + r.back
    return counts


def _dead_letter_reasons(settings: Settings, snap: Snapshot, sample: int = 20_000) -> None:
    """Most common reasons: from the sink's dead-letter index (``txnpipe dlq stats`` has the
    rest); without one, among the last ``sample`` dead letters of each DLQ partition."""
    try:
        from sinks.dead_letter_queries import DeadLetterIndex

        index = DeadLetterIndex(settings)
        try:
            counts = reason_counts(index)
        finally:
            index.close()
        snap.dead_letter_reasons = counts.most_common(5)
        return
    except Exception:  # no index (no sink yet, or MySQL away): sample the topic
        pass
    from confluent_kafka import Consumer, TopicPartition

    topic = settings.topic(DLQ)
    ends = end_offsets(settings.kafka_bootstrap, topic)
    if not any(ends.values()):
        return
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "txnpipe-status",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
            "fetch.wait.max.ms": 10,
        }
    )
    reasons: Counter[str] = Counter()
    try:
        consumer.assign(
            [TopicPartition(topic, p, max(end - sample, 0)) for p, end in ends.items() if end]
        )
        remaining = sum(min(end, sample) for end in ends.values())
        deadline = time.monotonic() + 10
        while remaining > 0 and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.2):
                if msg.error() is not None:
                    continue
                remaining -= 1
                with contextlib.suppress(ValueError, AttributeError):
                    reasons[json.loads(msg.value() or b"{}").get("reason", "?")] += 1
    finally:
        consumer.close()
    snap.dead_letter_reasons = reasons.most_common(5)


def snapshot(settings: Settings, *, reasons: bool = True) -> Snapshot:
    """Read every stage's position and health once."""
    snap = Snapshot(taken_at=datetime.now(UTC).isoformat(timespec="seconds"), stages=[])
    for reader in (_poller, _stream, _sink):
        stage = reader(settings, snap)
        snap.stages.append(stage)
        if stage.error:
            snap.problems.append(f"{stage.name}: {stage.error}")
    try:
        snap.dead_letters = sum(end_offsets(settings.kafka_bootstrap, settings.topic(DLQ)).values())
    except Exception as exc:
        snap.problems.append(f"dead letters: {type(exc).__name__}: {exc}")
    if reasons:
        with contextlib.suppress(Exception):
            _dead_letter_reasons(settings, snap)
    return snap
