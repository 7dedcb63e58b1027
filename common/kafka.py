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
