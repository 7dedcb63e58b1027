"""Rebuild a raw partition's Redis state from its ledger partition (the changelog).

Ledger partition p holds exactly the accepted versions of raw partition p (same key, same
partition number). Read it to the end, dedup entries by ``entry_id``, keep entries whose
VersionRecord (their commit marker) is present, take the last VersionRecord per id as the
state and the largest source offset as the watermark. Duplicated ledger messages (an
outbox published twice) change nothing; stale-flagged versions (late replicas) only move
the watermark.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Iterable, Iterator
from datetime import date, datetime

from common.errors import ServiceUnavailableError
from common.settings import Settings
from stream_app.store import Restored

log = logging.getLogger(__name__)


def fold_ledger(
    partition: int, values: Iterable[bytes], counted: Collection[str] | None = None
) -> Restored:
    """Pure: ledger message values (JSON) in partition order -> the partition's restore.

    The aggregates are the sums of the entries whose version record is present; with
    ``counted``, they are the contributions of the last versions under those statuses
    instead (the same numbers unless the counted statuses changed since the ledger was
    written — and then the later entries, computed under the new rules, build on these).
    Keeps only small tuples per entry and version, not the parsed messages: a restore
    of millions of ledger messages must fit beside a running worker."""
    # entry_id -> (transaction id, version updated_at, category, customer, day, cents, count)
    entries: dict[str, tuple[str, datetime, str, str, str, int, int]] = {}
    versions: set[tuple[str, datetime]] = set()
    last: dict[str, tuple[datetime, tuple[str, str, int, str, str]]] = {}
    out = Restored(partition)
    for count, value in enumerate(values, start=1):
        try:
            msg = json.loads(value)
            kind = msg["kind"]
            if kind == "entry":
                if msg["entry_id"] not in entries:
                    entries[msg["entry_id"]] = (
                        msg["transaction_id"],
                        datetime.fromisoformat(msg["version_updated_at"]),
                        msg["product_category"],
                        msg["customer_id"],
                        date.fromisoformat(msg["transaction_date"]).isoformat(),
                        int(msg["amount_cents"]),
                        int(msg["count"]),
                    )
            elif kind == "version":
                out.watermark = max(out.watermark, int(msg.get("source_offset", -1)))
                if msg.get("stale"):
                    continue  # a late replica: in the audit trail, never the current state
                txn_id = msg["transaction_id"]
                updated = datetime.fromisoformat(msg["updated_at"])
                versions.add((txn_id, updated))
                prev = last.get(txn_id)
                if prev is None or prev[0] < updated:
                    state = (
                        msg["customer_id"],
                        msg["product_category"],
                        int(msg["amount_cents"]),
                        date.fromisoformat(msg["transaction_date"]).isoformat(),
                        msg["status"],
                    )
                    last[txn_id] = (updated, state)
        except (ValueError, TypeError, KeyError):
            log.warning("ledger partition=%d: skipping an unreadable message #%d", partition, count)
    out.versions = len(versions)
    for txn_id, version_at, category, customer, day, cents, n in entries.values():
        if (txn_id, version_at) not in versions:
            continue  # its version never made it: the batch will be redone from the raw topic
        out.entries += 1
        cat = out.category.setdefault(category, [0, 0])
        cat[0] += n
        cat[1] += cents
        out.customer[customer] = out.customer.get(customer, 0) + cents
        out.day[day] = out.day.get(day, 0) + cents
    for txn_id, (updated, (customer, category, cents, day, status)) in last.items():
        out.states[txn_id] = json.dumps(
            [customer, category, cents, day, status, updated.isoformat()],
            separators=(",", ":"),
            ensure_ascii=False,
        )
    if counted is not None:
        from_entries = (out.category, out.customer, out.day)
        out.category, out.customer, out.day = {}, {}, {}
        for _updated, (customer, category, cents, day, status) in last.values():
            if status not in counted:
                continue
            cat = out.category.setdefault(category, [0, 0])
            cat[0] += 1
            cat[1] += cents
            out.customer[customer] = out.customer.get(customer, 0) + cents
            out.day[day] = out.day.get(day, 0) + cents
        if _nonzero(from_entries) != _nonzero((out.category, out.customer, out.day)):
            log.warning(
                "ledger partition=%d: its entries do not sum to its last versions under "
                "counted=%s (were the counted statuses changed?); using the versions",
                partition, ",".join(sorted(counted)),
            )  # fmt: skip
    return out


def _nonzero(
    sums: tuple[dict[str, list[int]], dict[str, int], dict[str, int]],
) -> tuple[dict[str, list[int]], dict[str, int], dict[str, int]]:
    category, customer, day = sums
    return (
        {k: v for k, v in category.items() if v != [0, 0]},
        {k: v for k, v in customer.items() if v},
        {k: v for k, v in day.items() if v},
    )


def _is_empty(settings: Settings, topic: str, partition: int, timeout: float) -> bool:
    """True when ListOffsets(latest) says 0: nothing to read (exact on Kafka and Tansu alike;
    Tansu's non-zero answers are too low, so they are never used as the end)."""
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    try:
        futures = admin.list_offsets(
            {TopicPartition(topic, partition): latest}, request_timeout=timeout
        )
        return all(f.result(timeout).offset == 0 for f in futures.values())
    except Exception:  # unknown: read it
        return False


def iter_ledger_partition(
    settings: Settings, partition: int, timeout: float = 60.0
) -> Iterator[bytes]:
    """Every value of ledger partition ``partition``, read with assign() to its end.

    The end is the high watermark of the fetch responses (right on Tansu too, unlike
    ListOffsets): reported as a partition EOF, and also checked directly, so a missed EOF
    event cannot stall a restore."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    topic = settings.topic("transactions.ledger")
    if _is_empty(settings, topic, partition, timeout=10.0):
        return
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
    tp = TopicPartition(topic, partition)
    deadline = time.monotonic() + timeout
    position = 0  # next offset to read
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
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
                        yield value
                    position = (msg.offset() or 0) + 1
                    deadline = time.monotonic() + timeout
                elif err.code() == KafkaError._PARTITION_EOF:
                    return
                elif err.fatal() or err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise ServiceUnavailableError(
                        f"reading the ledger partition={partition}: {err}"
                    )
                else:
                    log.warning("ledger partition=%d: %s", partition, err)
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if position > 0 and high >= 0 and position >= high:
                return
    finally:
        consumer.close()


def restore_partition(
    settings: Settings, partition: int, counted: Collection[str] | None = None
) -> Restored:
    """Read ledger partition ``partition`` and fold it (blocking; run it off the event loop)."""
    started = time.monotonic()
    read = [0]

    def counting() -> Iterator[bytes]:
        for value in iter_ledger_partition(settings, partition):
            read[0] += 1
            yield value

    restored = fold_ledger(partition, counting(), counted)
    log.info(
        "restored partition=%d from %d ledger messages: %d transactions, watermark=%d in %.2fs",
        partition, read[0], len(restored.states), restored.watermark,
        time.monotonic() - started,
    )  # fmt: skip
    return restored
