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
from typing import NamedTuple, cast

from schemas import (
    Accepted,
    Change,
    DeadLetter,
    LedgerEntry,
    Rejection,
    Transaction,
    VersionRecord,
    apply_change,
    parse_message,
    stale_version,
)
from schemas.deadletter import MAX_DLQ_RAW as MAX_DLQ_RAW  # re-exported (tests)
from schemas.isotext import day_iso, remember, utc_iso
from schemas.ledger_json import EntryDelta, change_messages, quoted, utc_text
from schemas.rules import NO_RULES, Rules
from schemas.transaction import construct_from

# Outbox message kinds (one byte in the packed outbox blob).
LEDGER_KIND = 0
DLQ_KIND = 1
_HEADER = struct.Struct(">BiI")  # kind, key length (-1 = no key), value length
_ENTRY_JSON = LedgerEntry.__pydantic_serializer__.to_json
_VERSION_JSON = VersionRecord.__pydantic_serializer__.to_json


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One raw-topic message as the worker saw it (``redrive_of``: its redrive header)."""

    offset: int
    key: bytes | None
    value: bytes | None
    redrive_of: str | None = None


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
    reasons: dict[str, int] = field(default_factory=dict)  # dead letters by reason (metrics)
    out: list[OutMessage] = field(default_factory=list)

    @property
    def ledger_count(self) -> int:
        return sum(1 for m in self.out if m.kind == LEDGER_KIND)

    @property
    def dlq_count(self) -> int:
        return sum(1 for m in self.out if m.kind == DLQ_KIND)


_new_out = tuple.__new__  # OutMessage(...) without its Python-level __new__ (hot loop)
_STRING = json.JSONEncoder(ensure_ascii=False).encode


def encode_state(txn: Transaction) -> str:
    """A current version as compact JSON for the ``{ns}:state:{p}`` hash."""
    customer, category = txn.customer_id, txn.product_category
    return (
        f"[{quoted(customer) or _STRING(customer)},{quoted(category) or _STRING(category)},"
        f'{txn.amount_cents},"{day_iso(txn.transaction_date)}","{txn.status}",'
        f'"{utc_iso(txn.updated_at)}"]'
    )


def decode_state(transaction_id: str, raw: str | bytes) -> Transaction:
    """Inverse of ``encode_state`` (trusted data we wrote ourselves: no re-validation)."""
    customer, category, cents, day, status, updated = json.loads(raw)
    updated_at = datetime.fromisoformat(updated)
    remember(updated_at, updated)  # the ledger JSON of its successor spells it again
    return construct_from(
        Transaction,
        {
            "transaction_id": transaction_id,
            "customer_id": customer,
            "product_category": category,
            "amount_cents": cents,
            "transaction_date": date.fromisoformat(day),
            "status": status,
            "updated_at": updated_at,
        },
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
        return list(
            dict.fromkeys(
                result.transaction.transaction_id
                for results in self.results
                for result in results
                if type(result) is Accepted
            )
        )


def parse_batch(partition: int, messages: Iterable[RawMessage], rules: Rules = NO_RULES) -> Parsed:
    """Clean every record of every message (CONTRACT §1, plus the opt-in ``rules``); never
    raises for bad input."""
    msgs = tuple(messages)
    results: list[tuple[Accepted | Rejection, ...]] = []
    for msg in msgs:
        try:
            results.append(tuple(parse_message(msg.value, rules)))
        except Exception as exc:  # a cleaning bug must not kill the worker: DLQ the message
            detail = f"{type(exc).__name__}: {exc}"[:200]
            results.append((Rejection("internal_error", detail, msg.value or b""),))
    return Parsed(partition, msgs, tuple(results))


def dead_letter(
    rejection: Rejection, raw_topic: str, partition: int, offset: int, redrive_of: str | None = None
) -> bytes:
    """The DLQ envelope of a rejected record, raw bytes capped at MAX_DLQ_RAW."""
    letter = DeadLetter.from_rejection(
        rejection, topic=raw_topic, partition=partition, offset=offset, redrive_of=redrive_of
    )
    return letter.model_dump_json().encode()


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
    out = fold.out.append
    states = fold.states
    category, customer, days = fold.category, fold.customer, fold.day
    reasons = fold.reasons
    accepted = duplicates = stale = invalid = entries = 0
    accepted_text = utc_text(accepted_at)
    # hot loop: locals, exact type checks, the ledger JSON written directly
    # (schemas.ledger_json; the models and their serializers only for strings to escape)
    for msg, results in zip(parsed.messages, parsed.results, strict=True):
        offset = msg.offset
        if offset <= watermark:
            continue
        if fold.first_offset < 0:
            fold.first_offset = offset
        fold.last_offset = offset
        fold.messages += 1
        for result in results:
            if type(result) is not Accepted:
                invalid += 1
                rejection = cast(Rejection, result)
                reasons[rejection.reason] = reasons.get(rejection.reason, 0) + 1
                letter = dead_letter(rejection, raw_topic, partition, offset, msg.redrive_of)
                out(OutMessage(DLQ_KIND, msg.key, letter))
                continue
            txn = result.transaction
            tid = txn.transaction_id
            previous = versions.get(tid)
            if previous is not None:
                if txn.updated_at == previous.updated_at:
                    duplicates += 1
                    continue
                if txn.updated_at < previous.updated_at:
                    # stale: no entries, no state; its version record goes to the audit
                    # trail flagged, for as-of answers (it was known at its updated_at)
                    stale += 1
                    record = stale_version(
                        txn, accepted_at=accepted_at, counted=counted, source=(partition, offset)
                    )
                    out(OutMessage(LEDGER_KIND, tid.encode("utf-8"), _VERSION_JSON(record)))
                    continue
            made = None
            if accepted_text is not None:
                made = change_messages(previous, txn, counted, accepted_text, partition, offset)
            if made is None:
                made = _model_messages(previous, txn, counted, accepted_at, (partition, offset))
            deltas, values = made
            accepted += 1
            versions[tid] = txn
            states[tid] = txn
            key = tid.encode("utf-8")
            for count, cents, cust, cat_name, day in deltas:
                entries += 1
                cat = category.get(cat_name)
                if cat is None:
                    category[cat_name] = [count, cents]
                else:
                    cat[0] += count
                    cat[1] += cents
                customer[cust] = customer.get(cust, 0) + cents
                days[day] = days.get(day, 0) + cents
            for value in values:  # entries, then the version that marks them complete
                out(_new_out(OutMessage, (LEDGER_KIND, key, value)))
    fold.accepted, fold.duplicates, fold.stale = accepted, duplicates, stale
    fold.invalid, fold.entries = invalid, entries
    return fold


def _model_messages(
    current: Transaction | None,
    incoming: Transaction,
    counted: Collection[str],
    accepted_at: datetime,
    source: tuple[int, int],
) -> tuple[list[EntryDelta], list[bytes]]:
    """``change_messages`` by the models and their serializers (strings that need escaping)."""
    outcome = apply_change(
        current, incoming, accepted_at=accepted_at, counted=counted, source=source
    )
    assert type(outcome) is Change  # duplicates and stale were ruled out by the caller
    deltas = [
        EntryDelta(
            e.count, e.amount_cents, e.customer_id, e.product_category,
            e.transaction_date.isoformat(),
        )
        for e in outcome.entries
    ]  # fmt: skip
    values = [_ENTRY_JSON(e) for e in outcome.entries]
    values.append(_VERSION_JSON(outcome.version))
    return deltas, values


def pack_outbox(messages: Iterable[OutMessage]) -> bytes:
    """Length-prefixed frames: the outbox blob kept in Redis until the messages are published."""
    parts: list[bytes] = []
    add = parts.extend
    pack = _HEADER.pack
    for kind, key, value in messages:
        if key is None:
            add((pack(kind, -1, len(value)), value))
        else:
            add((pack(kind, len(key), len(value)), key, value))
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
