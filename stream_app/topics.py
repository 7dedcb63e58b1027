"""Create the stream app's topics when they are missing (raw, ledger, dlq: co-partitioned)."""

from __future__ import annotations

import logging

from common.errors import ServiceUnavailableError
from common.settings import Settings
from schemas.topics import ALL_TOPICS

log = logging.getLogger(__name__)


def ensure_topics(settings: Settings, timeout: float = 15.0) -> dict[str, int]:
    """Create missing raw/ledger/dlq topics with ``settings.partitions``; name -> partitions."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    names = [spec.name(settings.namespace) for spec in ALL_TOPICS]
    try:
        existing = admin.list_topics(timeout=timeout).topics
    except KafkaException as exc:
        raise ServiceUnavailableError(
            f"no broker answers at {settings.kafka_bootstrap}: {exc}"
        ) from None
    missing = [n for n in names if n not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(n, settings.partitions, 1) for n in missing], operation_timeout=timeout
        )
        for name, future in futures.items():
            try:
                future.result(timeout)
                log.info("created topic %s with %d partitions", name, settings.partitions)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another worker won the race
                    raise ServiceUnavailableError(f"cannot create topic {name}: {exc}") from None
    metadata = admin.list_topics(timeout=timeout).topics
    counts = {n: len(metadata[n].partitions) for n in names if n in metadata}
    raw, ledger = names[0], names[1]
    if counts.get(raw) != counts.get(ledger):
        log.warning(
            "topics %s (%s partitions) and %s (%s) are not co-partitioned: restores need that",
            raw, counts.get(raw), ledger, counts.get(ledger),
        )  # fmt: skip
    return counts
