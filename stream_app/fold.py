"""The pure middle of the stream app: one raw partition's batch folded into one Redis update.

``fold_batch`` takes the raw messages of ONE partition (in offset order), the current
versions of the transactions they touch, and returns everything the batch changes: new
states, aggregate deltas, counters, and the ledger and dead-letter messages to publish.
No I/O here; ``store.py`` applies a ``Fold`` atomically and ``publisher.py`` publishes it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import NamedTuple

from schemas import (
    Accepted,
    Change,
    DeadLetter,
    Duplicate,
    Rejection,
    Stale,
    Transaction,
    apply_change,
    parse_message,
)
from schemas.transaction import construct

# Outbox message kinds (one byte in the packed outbox blob).
LEDGER_KIND = 0
DLQ_KIND = 1
_HEADER = struct.Struct(">BiI")  # kind, key length (-1 = no key), value length
# A dead letter carries the raw bytes, cut to this size: a 1 MB poison message must not
# make an envelope the broker refuses (message.max.bytes is 1 MB by default).
MAX_DLQ_RAW = 256 * 1024


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One raw-topic message as the worker saw it."""

    offset: int
    key: bytes | None
    value: bytes | None


class OutMessage(NamedTuple):
    """A message to publish: ledger (key = transaction id) or DLQ (key as received).

    A NamedTuple: ~2.6 are built per record, and a frozen dataclass costs 3x more."""

    kind: int
    key: bytes | None
    value: bytes


@dataclass
class Fold:
    """What one batch of one raw partition changes (the argument of the atomic apply)."""

    partition: int
    first_offset: int = -1
    last_offset: int = -1
    messages: int = 0
    states: dict[str, Transaction] = field(default_factory=dict)  # txn id -> new current version
    category: dict[str, list[int]] = field(default_factory=dict)  # category -> [count, cents]
    customer: dict[str, int] = field(default_factory=dict)  # customer -> cents
    day: dict[str, int] = field(default_factory=dict)  # YYYY-MM-DD -> cents
    accepted: int = 0
    duplicates: int = 0
    stale: int = 0
    invalid: int = 0
    entries: int = 0
    out: list[OutMessage] = field(default_factory=list)

    @property
    def ledger_count(self) -> int:
        return sum(1 for m in self.out if m.kind == LEDGER_KIND)

    @property
    def dlq_count(self) -> int:
        return sum(1 for m in self.out if m.kind == DLQ_KIND)


_STRING = json.JSONEncoder(ensure_ascii=False).encode


def encode_state(txn: Transaction) -> str:
    """A current version as compact JSON for the ``{ns}:state:{p}`` hash."""
    return (
        f"[{_STRING(txn.customer_id)},{_STRING(txn.product_category)},{txn.amount_cents},"
        f'"{txn.transaction_date.isoformat()}","{txn.status}","{txn.updated_at.isoformat()}"]'
    )


def decode_state(transaction_id: str, raw: str | bytes) -> Transaction:
    """Inverse of ``encode_state`` (trusted data we wrote ourselves: no re-validation)."""
    customer, category, cents, day, status, updated = json.loads(raw)
    return construct(
        Transaction,
        transaction_id=transaction_id,
        customer_id=customer,
        product_category=category,
        amount_cents=cents,
        transaction_date=date.fromisoformat(day),
        status=status,
        updated_at=datetime.fromisoformat(updated),
    )


@dataclass(frozen=True, slots=True)
class Parsed:
    """A batch's messages parsed once (cleaning is independent of state, so it is reused
    when an optimistic apply has to be recomputed)."""

    partition: int
    messages: tuple[RawMessage, ...]
    results: tuple[tuple[Accepted | Rejection, ...], ...]

    def transaction_ids(self) -> list[str]:
        """The distinct ids whose current versions the fold needs, in first-seen order."""
        seen: dict[str, None] = {}
        for results in self.results:
            for result in results:
                if isinstance(result, Accepted):
                    seen[result.transaction.transaction_id] = None
        return list(seen)


def parse_batch(partition: int, messages: Iterable[RawMessage]) -> Parsed:
    """Clean every record of every message (CONTRACT §1); never raises for bad input."""
    msgs = tuple(messages)
    results: list[tuple[Accepted | Rejection, ...]] = []
    for msg in msgs:
        try:
            results.append(tuple(parse_message(msg.value)))
        except Exception as exc:  # a cleaning bug must not kill the worker: DLQ the message
            detail = f"{type(exc).__name__}: {exc}"[:200]
            results.append((Rejection("internal_error", detail, msg.value or b""),))
    return Parsed(partition, msgs, tuple(results))


def dead_letter(rejection: Rejection, raw_topic: str, partition: int, offset: int) -> bytes:
    """The DLQ envelope of a rejected record, raw bytes capped at MAX_DLQ_RAW."""
    if len(rejection.raw) > MAX_DLQ_RAW:
        detail = f"{rejection.detail} (raw cut to {MAX_DLQ_RAW} of {len(rejection.raw)} bytes)"
        rejection = Rejection(
            rejection.reason, detail, rejection.raw[:MAX_DLQ_RAW],
            rejection.transaction_id, rejection.index,
        )  # fmt: skip
    letter = DeadLetter.from_rejection(
        rejection, topic=raw_topic, partition=partition, offset=offset
    )
    return letter.model_dump_json().encode()


def _add_contribution(fold: Fold, change: Change) -> None:
    for entry in change.entries:
        cat = fold.category.get(entry.product_category)
        if cat is None:
            fold.category[entry.product_category] = [entry.count, entry.amount_cents]
        else:
            cat[0] += entry.count
            cat[1] += entry.amount_cents
        fold.customer[entry.customer_id] = (
            fold.customer.get(entry.customer_id, 0) + entry.amount_cents
        )
        day = entry.transaction_date.isoformat()
        fold.day[day] = fold.day.get(day, 0) + entry.amount_cents
        fold.entries += 1


def fold_batch(
    parsed: Parsed,
    current: Mapping[str, Transaction | None],
    *,
    watermark: int,
    counted: Collection[str],
    raw_topic: str,
    accepted_at: datetime,
) -> Fold:
    """Decide every record of the batch against ``current`` (CONTRACT §2), chaining within it.

    Messages at or below ``watermark`` were applied before (redelivery) and are skipped.
    """
    fold = Fold(parsed.partition)
    versions: dict[str, Transaction | None] = dict(current)
    partition = parsed.partition
    for msg, results in zip(parsed.messages, parsed.results, strict=True):
        if msg.offset <= watermark:
            continue
        if fold.first_offset < 0:
            fold.first_offset = msg.offset
        fold.last_offset = msg.offset
        fold.messages += 1
        for result in results:
            if isinstance(result, Rejection):
                fold.invalid += 1
                letter = dead_letter(result, raw_topic, partition, msg.offset)
                fold.out.append(OutMessage(DLQ_KIND, msg.key, letter))
                continue
            txn = result.transaction
            outcome = apply_change(
                versions.get(txn.transaction_id),
                txn,
                accepted_at=accepted_at,
                counted=counted,
                source=(partition, msg.offset),
            )
            if isinstance(outcome, Duplicate):
                fold.duplicates += 1
            elif isinstance(outcome, Stale):
                fold.stale += 1
            else:
                fold.accepted += 1
                versions[txn.transaction_id] = txn
                fold.states[txn.transaction_id] = txn
                _add_contribution(fold, outcome)
                key = txn.transaction_id.encode("utf-8")
                for message in outcome.messages:
                    # the model's own serializer, minus model_dump_json's Python wrapper
                    value = message.__pydantic_serializer__.to_json(message)
                    fold.out.append(OutMessage(LEDGER_KIND, key, value))
    return fold


def pack_outbox(messages: Iterable[OutMessage]) -> bytes:
    """Length-prefixed frames: the outbox blob kept in Redis until the messages are published."""
    parts: list[bytes] = []
    for m in messages:
        key_len = -1 if m.key is None else len(m.key)
        parts.append(_HEADER.pack(m.kind, key_len, len(m.value)))
        if m.key is not None:
            parts.append(m.key)
        parts.append(m.value)
    return b"".join(parts)


def unpack_outbox(blob: bytes) -> list[OutMessage]:
    """Inverse of ``pack_outbox``."""
    out: list[OutMessage] = []
    pos = 0
    size = _HEADER.size
    while pos < len(blob):
        kind, key_len, value_len = _HEADER.unpack_from(blob, pos)
        pos += size
        key: bytes | None = None
        if key_len >= 0:
            key = blob[pos : pos + key_len]
            pos += key_len
        out.append(OutMessage(kind, key, blob[pos : pos + value_len]))
        pos += value_len
    return out
