"""Dead letters of the sink, published to the DLQ topic before the batch's COMMIT.

They must be durable first: a crash between the two repeats them, never loses them. So a
batch's dead letters are produced and flushed synchronously, and any that the broker did
not acknowledge fail the batch (which is then retried).
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError, Producer

from common.errors import ServiceUnavailableError
from common.settings import Settings
from schemas import DeadLetter


class DeadLetterPublisher:
    """An idempotent producer for one DLQ topic, made on first use."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self._producer: Producer | None = None
        self._errors: list[str] = []

    def send(self, letters: list[DeadLetter]) -> None:
        """Publish and flush dead letters (called before the batch's COMMIT)."""
        if self._producer is None:
            self._producer = Producer(
                {
                    "bootstrap.servers": self.settings.kafka_bootstrap,
                    "enable.idempotence": True,
                    "linger.ms": 5,
                }
            )
        self._errors = []

        def delivered(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                self._errors.append(err.str())

        for letter in letters:
            self._producer.produce(
                self.topic,
                key=letter.transaction_id.encode() if letter.transaction_id else None,
                value=letter.model_dump_json().encode(),
                on_delivery=delivered,
            )
        remaining = self._producer.flush(30)
        if remaining or self._errors:
            raise ServiceUnavailableError(
                f"dead letters not acknowledged by topic={self.topic}: "
                f"{remaining} pending, errors={self._errors[:3]}"
            )

    def close(self) -> None:
        """Deliver what is still queued (up to 10 s)."""
        if self._producer is not None:
            self._producer.flush(10)
