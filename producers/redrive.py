"""Redriven records → the raw topic, routed per CONTRACT §3, each naming its dead letter.

A record goes back exactly as it was received, as a message of its own: keyed by its
normalised ``transaction_id`` and sent to ``murmur2(key) % partitions`` (where the poller
and any keyed producer put it), or, with no readable id, unkeyed and routed by murmur2 of
its own bytes, as the poller does. Two shapes need care: a record that is itself a JSON
array would read as a batch on its own, so it goes as a batch of one (``[record]``); a
whole batch message that failed (not JSON) goes as it was, and a corrected one is split
into its records, each routed by its own id. Every message carries ``REDRIVE_HEADER``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from common.errors import ServiceUnavailableError, TxnpipeError
from common.kafka import partition_counts
from common.settings import Settings
from producers.murmur2 import partition_for
from producers.publisher import producer_config
from schemas import readable_id
from schemas.deadletter import REDRIVE_HEADER
from schemas.topics import RAW
from schemas.transaction import split_batch

_WS = b" \t\n\r"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One message to publish: the dead letter it comes from, key, value, partition, and
    the record it carries (``value`` itself, or inside a batch of one)."""

    letter: str
    key: bytes | None
    value: bytes
    partition: int
    record: bytes


def _decoded(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, RecursionError):
        return None


def route(raw: bytes, letter: str, partitions: int, *, element: bool) -> list[Outgoing]:
    """The message(s) putting ``raw`` back on the raw topic; ``element``: it was one record
    of a batch (not a whole message)."""
    if raw.lstrip(_WS).startswith(b"["):
        if element:  # an array as a record: alone it would be read as a batch
            batch = b"[" + raw + b"]"
            return [Outgoing(letter, None, batch, partition_for(raw, partitions), raw)]
        records = split_batch(raw)
        if records is None:  # not JSON: it goes back as it came (and fails as it did)
            return [Outgoing(letter, None, raw, partition_for(raw, partitions), raw)]
        return [o for r in records for o in route(r, letter, partitions, element=True)]
    tid = readable_id(_decoded(raw))
    if tid is None:
        return [Outgoing(letter, None, raw, partition_for(raw, partitions), raw)]
    key = tid.encode("utf-8")
    return [Outgoing(letter, key, raw, partition_for(key, partitions), raw)]


class RedrivePublisher:
    """An idempotent producer to the raw topic; ``publish`` returns once all are acked."""

    def __init__(self, settings: Settings, producer: Any = None) -> None:
        self.topic = RAW.name(settings.namespace)
        counts = partition_counts(settings.kafka_bootstrap, [self.topic])
        if not counts.get(self.topic):
            raise TxnpipeError(f"topic={self.topic} does not exist: nothing to redrive into")
        self.partitions = counts[self.topic]
        if producer is None:
            from confluent_kafka import Producer

            config = producer_config(settings)
            config.update({"linger.ms": 5, "client.id": f"{settings.namespace}-redrive"})
            producer = Producer(config)
        self._producer = producer

    def publish(self, messages: list[Outgoing], timeout: float = 60.0) -> list[tuple[int, int]]:
        """Produce ``messages`` and wait for the broker; their (partition, offset), in order."""
        placed: list[tuple[int, int] | None] = [None] * len(messages)
        errors: list[str] = []

        def delivered(index: int) -> Any:
            def callback(err: Any, msg: Any) -> None:
                if err is not None:
                    errors.append(str(err))
                else:
                    placed[index] = (msg.partition(), msg.offset())

            return callback

        for i, m in enumerate(messages):
            while True:
                try:
                    self._producer.produce(
                        self.topic,
                        value=m.value,
                        key=m.key,
                        partition=m.partition,
                        headers=[(REDRIVE_HEADER, m.letter.encode("utf-8"))],
                        on_delivery=delivered(i),
                    )
                    break
                except BufferError:
                    self._producer.poll(0.05)
        left = self._producer.flush(timeout)
        if left or errors or any(p is None for p in placed):
            raise ServiceUnavailableError(
                f"the broker did not acknowledge {left or len(errors)} redriven records to "
                f"topic={self.topic}: {errors[:3]}; nothing of this chunk was recorded, "
                "run the redrive again"
            )
        return [p for p in placed if p is not None]

    def close(self) -> None:
        self._producer.flush(10)
