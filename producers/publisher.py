"""Publishing API pages to the raw topic (CONTRACT §3), and knowing what the broker acked.

Each page becomes one JSON-array message per partition, produced to an explicit
partition chosen with Kafka's murmur2 of the record's ``transaction_id`` (read the way
``schemas.readable_id`` reads it: integers as their digits, strings trimmed), so a
batch lands exactly where a keyed single-record producer would put each of its records.
A record with no readable id is routed by murmur2 of its own served bytes (any
partition is fine for it: nothing else of its transaction can be found). Batches carry
no key. The producer is idempotent, so retries inside librdkafka never duplicate.

``RawPublisher`` counts outstanding messages per page; ``acked()`` returns the
checkpoint value of the newest page whose messages, and every earlier page's, the broker
acknowledged: the only value the poller may persist.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from common.errors import ServiceUnavailableError, TxnpipeError
from common.kafka import partition_counts
from common.settings import Settings
from producers.client import Page
from producers.murmur2 import partitions_many
from schemas import readable_id
from schemas.cleaning import MAX_ID_LENGTH
from schemas.topics import DLQ, LEDGER, RAW

log = logging.getLogger(__name__)

MAX_BATCH_BYTES = 900_000  # under the broker's default 1 MB message limit
FUTURE_SLACK = timedelta(days=1)  # an updated_at further ahead than this never moves the checkpoint


def ensure_topics(settings: Settings, timeout: float = 15.0) -> int:
    """Create raw, ledger and dlq (``settings.partitions`` each) if missing; raw's partition count.

    All three get the same count whoever creates them first, so raw and ledger stay
    co-partitioned. An existing raw topic keeps its count (we route by what it has).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    bootstrap = settings.kafka_bootstrap
    names = [spec.name(settings.namespace) for spec in (RAW, LEDGER, DLQ)]
    existing = partition_counts(bootstrap, names, timeout)
    missing = [n for n in names if n not in existing]
    if missing:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        new = [
            NewTopic(n, num_partitions=settings.partitions, replication_factor=1) for n in missing
        ]
        for name, future in admin.create_topics(new, operation_timeout=timeout).items():
            try:
                future.result(timeout)
                log.info("created topic %s with %d partitions", name, settings.partitions)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise ServiceUnavailableError(f"cannot create topic={name}: {exc}") from None
    raw = names[0]
    deadline = time.monotonic() + timeout
    while True:
        counts = partition_counts(bootstrap, names, timeout)
        if raw in counts and counts[raw] > 0:
            break
        if time.monotonic() > deadline:
            raise ServiceUnavailableError(f"topic={raw} did not appear in the broker's metadata")
        time.sleep(0.1)
    ledger = names[1]
    if ledger in counts and counts[ledger] != counts[raw]:
        log.warning(
            "topics %s (%d partitions) and %s (%d) are not co-partitioned",
            raw,
            counts[raw],
            ledger,
            counts[ledger],
        )
    return counts[raw]


def parse_updated_at(value: Any) -> datetime | None:
    """A record's ``updated_at`` as aware UTC, or None when absent or unreadable."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    try:
        return moment.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def format_since(moment: datetime) -> str:
    """The ``updated_since`` we send: ISO-8601 UTC with ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass
class RoutedPage:
    """One page split by partition (record indices, in page order), with the largest
    readable ``updated_at`` in it."""

    page: Page
    batches: dict[int, list[int]]
    max_updated_at: datetime | None
    records: int
    ignored_future: int = 0

    def texts(self, partition: int) -> list[str]:
        """The served texts of one partition's records (tests, logs)."""
        return [self.page.record(i).decode("utf-8") for i in self.batches.get(partition, [])]


class Router:
    """Partition of each record (murmur2 of its readable id; of its bytes if none)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._cache: dict[Any, int] = {}  # keyed by the id as served (str or int)

    def partitions_of(self, page: Page) -> list[int]:
        """Partition of each record; murmur2 of the cache misses is computed in one go.

        Written as comprehensions over the page: this runs for every record polled.
        """
        cache = self._cache
        values = page.values
        # the cache is keyed by the id as served (str or int; bool is not an int here)
        raws = [v.get("transaction_id") if type(v) is dict else None for v in values]
        found = [cache.get(r) if type(r) is str or type(r) is int else None for r in raws]
        misses = [i for i, p in enumerate(found) if p is None]
        if not misses:
            return found  # type: ignore[return-value]  # no None left
        miss_raws = [raws[i] for i in misses]
        # readable_id's rules, inlined for the usual cases: a string trimmed, an int's digits
        keys: list[bytes | None] = [
            r.strip().encode() if type(r) is str else str(r).encode() if type(r) is int else None
            for r in miss_raws
        ]
        remember = [r if type(r) is str or type(r) is int else None for r in miss_raws]
        odd = [j for j, k in enumerate(keys) if not k or len(k) > MAX_ID_LENGTH]
        for j in odd:  # blank, too long (or non-ASCII), or not a str/int: the exact rule
            tid = readable_id(values[misses[j]])
            if tid is None:  # no readable id: route by the record's own bytes
                keys[j] = page.record(misses[j])
                remember[j] = None
            else:
                keys[j] = tid.encode("utf-8")
        if len(cache) > 1_000_000:
            cache.clear()
        partitions = partitions_many(keys, self.partitions)  # type: ignore[arg-type]
        for i, partition in zip(misses, partitions, strict=True):
            found[i] = partition
        cache.update((r, p) for r, p in zip(remember, partitions, strict=True) if r is not None)
        return found  # type: ignore[return-value]

    def route(self, page: Page, now: datetime | None = None) -> RoutedPage:
        latest_allowed = (now or datetime.now(UTC)) + FUTURE_SLACK
        lists: list[list[int]] = [[] for _ in range(self.partitions)]
        for index, partition in enumerate(self.partitions_of(page)):
            lists[partition].append(index)
        batches = {p: indices for p, indices in enumerate(lists) if indices}
        stamps = [v.get("updated_at") for v in page.values if type(v) is dict]
        # "YYYY-MM-DDTHH:MM:SS.mmmZ" (the usual form): string order is time order
        canonical = [
            s for s in stamps if type(s) is str and len(s) == 24 and s[23] == "Z" and s[10] == "T"
        ]
        others: list[Any] = []
        if len(canonical) < len(stamps):
            others = [
                s
                for s in stamps
                if s is not None
                and not (type(s) is str and len(s) == 24 and s[23] == "Z" and s[10] == "T")
            ]
        count = len(page)
        newest: datetime | None = None
        ignored = 0
        if canonical:  # parse only the largest; fall back in order if it is unreadable
            top = max(canonical)
            candidates = [top] if parse_updated_at(top) is not None else sorted(canonical)[::-1]
            for stamp in candidates:
                moment = parse_updated_at(stamp)
                if moment is None:
                    continue
                if moment > latest_allowed:
                    ignored += 1
                    continue
                newest = moment
                break
        for stamp in others:
            moment = parse_updated_at(stamp)
            if moment is None or (newest is not None and moment <= newest):
                continue
            if moment > latest_allowed:
                ignored += 1
            else:
                newest = moment
        return RoutedPage(page, batches, newest, count, ignored)


def batch_values(page: Page, indices: list[int]) -> list[bytes]:
    """JSON array messages of the records' served texts, each under ``MAX_BATCH_BYTES``."""
    starts, ends = page.starts, page.ends
    total = sum(ends[i] - starts[i] + 1 for i in indices) + 1
    if total <= MAX_BATCH_BYTES or len(indices) == 1:
        return [page.join(indices)]
    values: list[bytes] = []
    chunk: list[int] = []
    size = 2
    for i in indices:
        length = ends[i] - starts[i] + 1
        if chunk and size + length > MAX_BATCH_BYTES:
            values.append(page.join(chunk))
            chunk, size = [], 2
        chunk.append(i)
        size += length
    if chunk:
        values.append(page.join(chunk))
    return values


@dataclass
class PreparedPage:
    """A page ready to produce: (partition, JSON-array value) messages and what the poller
    needs to know about it."""

    messages: list[tuple[int, bytes]]
    max_updated_at: datetime | None
    records: int
    ignored_future: int
    next_cursor: str | None


def prepare(router: Router, page: Page) -> PreparedPage:
    """Route a parsed page and build its messages."""
    routed = router.route(page)
    messages = [
        (partition, value)
        for partition, indices in sorted(routed.batches.items())
        for value in batch_values(page, indices)
    ]
    return PreparedPage(
        messages, routed.max_updated_at, routed.records, routed.ignored_future, page.next_cursor
    )


class _PageAcks:
    __slots__ = ("checkpoint", "messages", "pending", "records")

    def __init__(self, checkpoint: str | None, pending: int, records: int = 0) -> None:
        self.checkpoint = checkpoint
        self.pending = pending
        self.messages = pending
        self.records = records


def producer_config(settings: Settings) -> dict[str, Any]:
    """Idempotent, 20 ms linger, 1 MB batches (DESIGN.md's measured sweet spot)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "queue.buffering.max.kbytes": 262_144,
        "message.timeout.ms": 300_000,
        "client.id": f"{settings.namespace}-poller",
    }


class RawPublisher:
    """Produces routed pages to the raw topic and tracks which pages are fully acked."""

    def __init__(
        self,
        settings: Settings,
        partitions: int,
        producer: Any = None,
        on_acked: Callable[[int, int], None] | None = None,
    ) -> None:
        """``producer``: a confluent-kafka ``Producer`` (default: one with ``producer_config``);
        ``on_acked(records, messages)``: called for each page the broker fully acknowledged."""
        if producer is None:
            from confluent_kafka import Producer

            producer = Producer(producer_config(settings))
        self.topic = RAW.name(settings.namespace)
        self.partitions = partitions
        self._producer = producer
        self._pages: deque[_PageAcks] = deque()
        self._acked: str | None = None
        self._error: str | None = None
        self.messages = 0
        self._on_acked = on_acked

    def publish(self, page: PreparedPage, checkpoint: str | None) -> int:
        """Produce one page; ``checkpoint`` becomes safe once it and all before are acked."""
        values = page.messages
        acks = _PageAcks(checkpoint, len(values), page.records)
        self._pages.append(acks)

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                self._error = f"{err} (partition {msg.partition()})"
            else:
                acks.pending -= 1

        for partition, value in values:
            while True:
                try:
                    self._producer.produce(
                        self.topic, value=value, partition=partition, on_delivery=delivered
                    )
                    break
                except BufferError:  # local queue full: let deliveries drain it
                    self._producer.poll(0.05)
        self.messages += len(values)
        self._producer.poll(0)
        self._raise_if_failed()
        return len(values)

    def acked(self) -> str | None:
        """Checkpoint of the newest fully acknowledged prefix of pages."""
        self._producer.poll(0)
        self._raise_if_failed()
        while self._pages and self._pages[0].pending <= 0:
            page = self._pages.popleft()
            if self._on_acked is not None:
                self._on_acked(page.records, page.messages)
            if page.checkpoint is not None:
                self._acked = page.checkpoint
        return self._acked

    def flush(self, timeout: float = 60.0) -> str | None:
        """Wait for every outstanding message; returns the checkpoint that is now safe."""
        left = self._producer.flush(timeout)
        self._raise_if_failed()
        if left:
            raise ServiceUnavailableError(
                f"the broker did not acknowledge {left} messages to topic={self.topic} "
                f"within {timeout:.0f}s"
            )
        return self.acked()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise TxnpipeError(f"publishing to topic={self.topic} failed: {self._error}")
