"""Kafka plumbing shared by the stages and ``txnpipe status``: topics and true end offsets.

The bundled broker (Tansu) answers ListOffsets(latest) with the base offset of the last
record *batch* plus one, not the high watermark; a Fetch response carries the right one on
both Tansu and Apache Kafka. ``end_offsets`` therefore fetches from the last batch and reads
the watermark the fetch brought back.
"""

from __future__ import annotations

import time
from typing import Any

from common.errors import ServiceUnavailableError


def admin_client(bootstrap: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def group_settled(admin: Any, group: str, timeout: float = 5.0) -> bool:
    """True unless the coordinator reports ``group`` rebalancing (or cannot be asked).

    Members check this before they leave: the bundled broker (Tansu 0.6) wedges a group for
    good when its last member leaves while a rebalance is under way — no later member is
    ever assigned a partition. On Apache Kafka it is one DescribeGroups round trip. A group
    that does not exist (Kafka: ``DEAD``; Tansu: ``EMPTY``) has nothing to wedge: settled.
    """
    from confluent_kafka import ConsumerGroupState

    try:
        future = admin.describe_consumer_groups([group], request_timeout=timeout)[group]
        state = future.result(timeout)
    except Exception:
        return True  # cannot tell: never hold a shutdown on it
    return state.state in (
        ConsumerGroupState.STABLE,
        ConsumerGroupState.EMPTY,
        ConsumerGroupState.DEAD,
    )


def partition_counts(bootstrap: str, topics: list[str], timeout: float = 10.0) -> dict[str, int]:
    """Partition count of each existing topic among ``topics`` (missing ones are absent)."""
    try:
        metadata = admin_client(bootstrap).list_topics(timeout=timeout)
    except Exception as exc:
        raise ServiceUnavailableError(
            f"no Kafka broker answers at bootstrap={bootstrap}: {exc}"
        ) from None
    return {
        t: len(metadata.topics[t].partitions)
        for t in topics
        if t in metadata.topics and not metadata.topics[t].error
    }


def end_offsets(bootstrap: str, topic: str, timeout: float = 5.0) -> dict[int, int]:
    """Offset after the last record of each partition of ``topic`` (correct on Tansu too)."""
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

    counts = partition_counts(bootstrap, [topic])
    if topic not in counts:
        return {}
    partitions = [TopicPartition(topic, p) for p in range(counts[topic])]
    admin = admin_client(bootstrap)
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    futures = admin.list_offsets({tp: latest for tp in partitions}, request_timeout=timeout)
    listed = {tp.partition: f.result().offset for tp, f in futures.items()}
    result = {p: 0 for p in listed}
    nonempty = [TopicPartition(topic, p, max(o - 1, 0)) for p, o in listed.items() if o > 0]
    if not nonempty:
        return result
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "txnpipe-end-offsets",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
            "max.partition.fetch.bytes": 1024,
            "fetch.wait.max.ms": 10,
        }
    )
    try:
        consumer.assign(nonempty)
        pending = {tp.partition for tp in nonempty}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(100, 0.2):
                if msg.error() is None:
                    pending.discard(msg.partition())
        for tp in nonempty:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, tp.partition), cached=True
            )
            result[tp.partition] = (
                max(high, listed[tp.partition]) if high >= 0 else listed[tp.partition]
            )
    finally:
        consumer.close()
    return result


def committed_offsets(
    bootstrap: str, group: str, topic: str, timeout: float = 5.0
) -> dict[int, int]:
    """Committed offsets of consumer ``group`` on ``topic`` (partitions with none are absent)."""
    from confluent_kafka import Consumer, TopicPartition

    counts = partition_counts(bootstrap, [topic])
    if topic not in counts:
        return {}
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False}
    )
    try:
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in range(counts[topic])], timeout=timeout
        )
    finally:
        consumer.close()
    return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}


def _timestamp_at(
    consumer: Any, topic: str, partition: int, offset: int, timeout: float
) -> int | None:
    """Timestamp (ms) of the record at ``offset`` (or the first one after it), None past the end."""
    from confluent_kafka import TopicPartition

    tp = TopicPartition(topic, partition, offset)
    if consumer.assignment() == [TopicPartition(topic, partition)]:
        consumer.seek(tp)
    else:
        consumer.assign([tp])
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = consumer.poll(0.05)
        if msg is None:
            continue
        if msg.error() is None:
            ts: int = msg.timestamp()[1]
            return ts
    return None


def offsets_for_time(
    bootstrap: str, topic: str, when_ms: int, timeout: float = 10.0
) -> dict[int, int]:
    """Per partition, the first offset whose record timestamp is >= ``when_ms`` (end if none).

    Uses the broker's ListOffsets-by-time (Apache Kafka) and checks the answer with two
    fetches; where the broker does not implement it (the bundled Tansu answers 0, or an
    error), falls back to a binary search over offsets by fetching record timestamps, which
    works on any broker since timestamps of a partition's records are non-decreasing for
    producer-set (CreateTime) clocks in practice and LogAppendTime always.
    """
    from confluent_kafka import Consumer, TopicPartition

    ends = end_offsets(bootstrap, topic, timeout)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "txnpipe-offsets-for-time",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
            "max.partition.fetch.bytes": 1024,
            "fetch.wait.max.ms": 10,
        }
    )
    result: dict[int, int] = {}
    try:
        asked = [TopicPartition(topic, p, when_ms) for p in ends]
        try:
            answered = {
                tp.partition: tp.offset for tp in consumer.offsets_for_times(asked, timeout=timeout)
            }
        except Exception:
            answered = {}
        for partition, end in ends.items():
            if end == 0:
                result[partition] = 0
                continue
            guess = answered.get(partition, -2)
            if guess < 0:
                guess = end if guess == -1 else -2
            if guess >= 0 and _verified(consumer, topic, partition, guess, end, when_ms, timeout):
                result[partition] = guess
                continue
            lo, hi = 0, end  # invariant: answer in [lo, hi]
            while lo < hi:
                mid = (lo + hi) // 2
                ts = _timestamp_at(consumer, topic, partition, mid, timeout)
                if ts is None or ts >= when_ms:
                    hi = mid
                else:
                    lo = mid + 1
            result[partition] = lo
    finally:
        consumer.close()
    return result


def _verified(
    consumer: Any, topic: str, partition: int, offset: int, end: int, when_ms: int, timeout: float
) -> bool:
    if offset < end:
        ts = _timestamp_at(consumer, topic, partition, offset, timeout)
        if ts is None or ts < when_ms:
            return False
    if offset > 0:
        before = _timestamp_at(consumer, topic, partition, offset - 1, timeout)
        if before is None or before >= when_ms:
            return False
    return True
