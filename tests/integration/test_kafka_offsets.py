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
