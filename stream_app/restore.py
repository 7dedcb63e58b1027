"""Rebuild a raw partition's Redis state from its ledger partition (the changelog).

Ledger partition p holds exactly the accepted versions of raw partition p (same key, same
partition number). Read it to the end, dedup entries by ``entry_id``, keep entries whose
VersionRecord (their commit marker) is present, take the last VersionRecord per id as the
state and the largest source offset as the watermark. Duplicated ledger messages (an
outbox published twice) change nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from common.errors import ServiceUnavailableError
from common.settings import Settings
from stream_app.store import Restored

log = logging.getLogger(__name__)


def fold_ledger(partition: int, values: Iterable[bytes]) -> Restored:
    """Pure: ledger message values (JSON) in partition order -> the partition's restore."""
    entries: dict[str, dict[str, Any]] = {}
    versions: dict[tuple[str, datetime], dict[str, Any]] = {}
    last: dict[str, tuple[datetime, dict[str, Any]]] = {}
    out = Restored(partition)
    for value in values:
        try:
            msg = json.loads(value)
            kind = msg["kind"]
        except (ValueError, TypeError, KeyError):
            log.warning("ledger partition=%d: skipping an unreadable message", partition)
            continue
        if kind == "entry":
            entries.setdefault(msg["entry_id"], msg)
        elif kind == "version":
            updated = datetime.fromisoformat(msg["updated_at"])
            versions[(msg["transaction_id"], updated)] = msg
            prev = last.get(msg["transaction_id"])
            if prev is None or prev[0] < updated:
                last[msg["transaction_id"]] = (updated, msg)
            out.watermark = max(out.watermark, int(msg.get("source_offset", -1)))
    out.versions = len(versions)
    for entry in entries.values():
        key = (entry["transaction_id"], datetime.fromisoformat(entry["version_updated_at"]))
        if key not in versions:
            continue  # its version never made it: the batch will be redone from the raw topic
        out.entries += 1
        cents = int(entry["amount_cents"])
        cat = out.category.setdefault(entry["product_category"], [0, 0])
        cat[0] += int(entry["count"])
        cat[1] += cents
        out.customer[entry["customer_id"]] = out.customer.get(entry["customer_id"], 0) + cents
        day = date.fromisoformat(entry["transaction_date"]).isoformat()
        out.day[day] = out.day.get(day, 0) + cents
    for txn_id, (updated, v) in last.items():
        out.states[txn_id] = json.dumps(
            [
                v["customer_id"],
                v["product_category"],
                int(v["amount_cents"]),
                date.fromisoformat(v["transaction_date"]).isoformat(),
                v["status"],
                updated.isoformat(),
            ],
            separators=(",", ":"),
            ensure_ascii=False,
        )
    return out


def read_ledger_partition(settings: Settings, partition: int, timeout: float = 60.0) -> list[bytes]:
    """Every value of ledger partition ``partition``, read with assign() to the end (EOF)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.namespace}-stream-restore",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.queue.backoff.ms": 10,
            "fetch.wait.max.ms": 50,
            "queued.min.messages": 1_000_000,
            "auto.offset.reset": "earliest",
        }
    )
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        consumer.assign(
            [TopicPartition(settings.topic("transactions.ledger"), partition, OFFSET_BEGINNING)]
        )
        while True:
            if time.monotonic() > deadline:
                raise ServiceUnavailableError(
                    f"restore of partition={partition}: ledger end not reached in {timeout:.0f}s"
                )
            for msg in consumer.consume(num_messages=5000, timeout=0.5):
                err = msg.error()
                if err is None:
                    value = msg.value()
                    if value:
                        values.append(value)
                    deadline = time.monotonic() + timeout
                elif err.code() == KafkaError._PARTITION_EOF:
                    return values
                elif err.fatal() or err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise ServiceUnavailableError(
                        f"reading the ledger partition={partition}: {err}"
                    )
                else:
                    log.warning("ledger partition=%d: %s", partition, err)
    finally:
        consumer.close()


def restore_partition(settings: Settings, partition: int) -> Restored:
    """Read ledger partition ``partition`` and fold it (blocking; run it off the event loop)."""
    started = time.monotonic()
    values = read_ledger_partition(settings, partition)
    restored = fold_ledger(partition, values)
    log.info(
        "restored partition=%d from %d ledger messages: %d transactions, watermark=%d in %.2fs",
        partition, len(values), len(restored.states), restored.watermark,
        time.monotonic() - started,
    )  # fmt: skip
    return restored
