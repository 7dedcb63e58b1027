"""common.kafka.end_offsets gives the true end of each partition (the bundled broker's
ListOffsets answer is the last batch's base offset + 1, not the high watermark)."""

from __future__ import annotations

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from common.kafka import end_offsets
from common.settings import Settings


def test_end_offsets_count_every_record_of_batched_partitions(topics: Settings) -> None:
    name = topics.topic("offsets")
    admin = AdminClient({"bootstrap.servers": topics.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(name, 3, 1)]).values():
        future.result(10)
    producer = Producer(
        {"bootstrap.servers": topics.kafka_bootstrap, "enable.idempotence": True, "linger.ms": 20}
    )
    for i in range(300):
        producer.produce(name, partition=i % 2, value=b"x")
    assert producer.flush(10) == 0
    assert end_offsets(topics.kafka_bootstrap, name) == {0: 150, 1: 150, 2: 0}
    for _ in range(7):
        producer.produce(name, partition=1, value=b"y")
    assert producer.flush(10) == 0
    assert end_offsets(topics.kafka_bootstrap, name) == {0: 150, 1: 157, 2: 0}


def test_offsets_for_time_works_with_or_without_broker_support(topics: Settings) -> None:
    """Seek by time: real Kafka answers ListOffsets-by-time, the bundled broker does not; the
    fallback (binary search over record timestamps) must give the same answer on both."""
    from common.kafka import offsets_for_time

    name = topics.topic("bytime")
    admin = AdminClient({"bootstrap.servers": topics.kafka_bootstrap})
    for future in admin.create_topics([NewTopic(name, 2, 1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": topics.kafka_bootstrap, "linger.ms": 0})
    base = 1_700_000_000_000
    for i in range(100):  # explicit CreateTime timestamps, one second apart
        producer.produce(name, partition=i % 2, value=b"x", timestamp=base + i * 1000)
    assert producer.flush(10) == 0
    # partition 0 holds i = 0, 2, 4, ...: timestamp base + 50 s is record i=50 at offset 25
    assert offsets_for_time(topics.kafka_bootstrap, name, base + 50_000) == {0: 25, 1: 25}
    assert offsets_for_time(topics.kafka_bootstrap, name, base + 50_500) == {0: 26, 1: 25}
    assert offsets_for_time(topics.kafka_bootstrap, name, base - 1) == {0: 0, 1: 0}
    assert offsets_for_time(topics.kafka_bootstrap, name, base + 10**9) == {0: 50, 1: 50}
