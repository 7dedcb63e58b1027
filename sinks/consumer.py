"""The sink's Kafka side: its consumer group, consumer settings and topics.

Offsets live in MySQL; Kafka's group offsets are committed only for the lag figures of
``txnpipe status`` and never read back. Kept apart from the runner so that ``replay`` and
``status`` can name the group and topics without pulling in the consume loop.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from common.errors import ServiceUnavailableError
from common.kafka import admin_client, group_settled
from common.settings import Settings
from schemas import DLQ, LEDGER

log = logging.getLogger(__name__)


def group_id(settings: Settings) -> str:
    """The sink's consumer group (also the key of its rows in ``sink_offsets``)."""
    return f"{settings.namespace}.sink"


def consumer_config(settings: Settings) -> dict[str, Any]:
    """librdkafka settings: no auto commit or store (MySQL holds the offsets), fast fetches."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "group.id": group_id(settings),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        # The bundled broker answers ~5 MB per fetch: don't stall between fetches.
        "fetch.queue.backoff.ms": 10,
        "queued.min.messages": 200000,
        # A group joins after session.timeout.ms / 2 here: keep it short.
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 1000,
        "max.poll.interval.ms": 600000,
        "partition.assignment.strategy": "range",
    }


def leave_when_settled(
    consumer: Any, settings: Settings, revoked: Callable[[], bool], limit: float = 15.0
) -> None:
    """Close ``consumer`` once its group is not rebalancing (at most ``limit`` seconds).

    The last member leaving mid-rebalance wedges the group on the bundled broker (see
    ``common.kafka.group_settled``): e.g. a replay's drain leaves, and the pipeline's sink,
    revoked for the rebalance that follows, is stopped before it rejoined. Meanwhile the
    consumer keeps polling so that it can rejoin; what it fetches is dropped, never written:
    offsets live in MySQL, so the partitions' next owner reads it again.
    """
    group = group_id(settings)
    deadline = time.monotonic() + limit
    try:
        admin = admin_client(settings.kafka_bootstrap)
        while revoked() or not group_settled(admin, group, timeout=2.0):
            if time.monotonic() > deadline:
                log.warning("sink: leaving group=%s while it still rebalances", group)
                break
            consumer.consume(num_messages=1000, timeout=0.2)
    except KafkaException:
        log.debug("sink: waiting for the group to settle failed", exc_info=True)
    finally:
        consumer.close()


def ensure_topics(settings: Settings) -> None:
    """Create the ledger and DLQ topics if missing (``settings.partitions`` partitions)."""
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    names = [settings.topic(LEDGER.suffix), settings.topic(DLQ.suffix)]
    try:
        existing = admin.list_topics(timeout=10).topics
    except KafkaException as exc:
        raise ServiceUnavailableError(f"Kafka at {settings.kafka_bootstrap}: {exc}") from None
    missing = [n for n in names if n not in existing]
    if not missing:
        return
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=settings.partitions, replication_factor=1) for n in missing]
    )
    for name, future in futures.items():
        try:
            future.result(15)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ServiceUnavailableError(f"cannot create topic={name}: {exc}") from None
