"""The stream's parse and fold as landed before the fast path (864a293), frozen for
``bench_stream.py``: its plain-loop baseline runs TODAY's fold next to the one it replaced,
so the worker's ratio says whether the fold itself got faster, not only the framework.

Verbatim but for imports: the full cleaning rules (``clean_record`` and the stdlib JSON
decoder, unchanged) and ``apply_change`` + each model's serializer per ledger message.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from datetime import datetime
from typing import cast

from schemas import Accepted, Change, Duplicate, LedgerEntry, Rejection, Transaction
from schemas import apply_change as apply_change
from schemas.cleaning import CleaningError
from schemas.ledger import VersionRecord
from schemas.rules import NO_RULES, Rules, rewrite
from schemas.transaction import _DECODER, _WS, _json_detail, clean_record, readable_id, record_texts
from stream_app.fold import DLQ_KIND, LEDGER_KIND, Fold, OutMessage, Parsed, RawMessage, dead_letter

_ENTRY_JSON = LedgerEntry.__pydantic_serializer__.to_json
_VERSION_JSON = VersionRecord.__pydantic_serializer__.to_json


def _one(
    obj: object, raw: bytes, index: int | None, rules: Rules = NO_RULES
) -> Accepted | Rejection:

    try:
        return Accepted(clean_record(obj), index)
    except CleaningError as exc:
        fixed = rewrite(obj, exc, rules) if rules else None
        if fixed is not None:
            name, patched = fixed
            result = _one(patched, raw, index, rules - {name})
            if isinstance(result, Accepted):
                return result
            return Rejection(result.reason, result.detail, raw, readable_id(obj), index)
        return Rejection(exc.reason, exc.detail, raw, readable_id(obj), index)


def parse_message(value: bytes | None, rules: Rules = NO_RULES) -> list[Accepted | Rejection]:
    if not value:
        return [Rejection("empty", "message value is empty", value or b"")]
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Rejection("not_utf8", f"not UTF-8 at byte {exc.start}", value)]
    start = len(text) - len(text.lstrip(_WS))
    if text.startswith("[", start):
        return _parse_batch(text, value, rules)
    try:
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        return [Rejection("not_json", _json_detail(exc), value)]
    return [_one(obj, value, None, rules)]


def _parse_batch(text: str, value: bytes, rules: Rules) -> list[Accepted | Rejection]:
    try:
        items = _DECODER.decode(text)
    except (ValueError, RecursionError) as exc:
        return [Rejection("not_json", _json_detail(exc), value)]
    results = [_one(obj, b"", index, rules) for index, obj in enumerate(items)]
    if all(isinstance(r, Accepted) for r in results):
        return results
    for index, (result, piece) in enumerate(zip(results, record_texts(text), strict=True)):
        if isinstance(result, Rejection):
            raw = piece.encode("utf-8")
            results[index] = Rejection(
                result.reason, result.detail, raw, result.transaction_id, index
            )
    return results


def parse_batch(partition: int, messages: Iterable[RawMessage], rules: Rules = NO_RULES) -> Parsed:
    msgs = tuple(messages)
    results: list[tuple[Accepted | Rejection, ...]] = []
    for msg in msgs:
        try:
            results.append(tuple(parse_message(msg.value, rules)))
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
            results.append((Rejection("internal_error", detail, msg.value or b""),))
    return Parsed(partition, msgs, tuple(results))


def fold_batch(
    parsed: Parsed,
    current: Mapping[str, Transaction | None],
    *,
    watermark: int,
    counted: Collection[str],
    raw_topic: str,
    accepted_at: datetime,
) -> Fold:
    fold = Fold(parsed.partition)
    versions: dict[str, Transaction | None] = dict(current)
    partition = parsed.partition
    out = fold.out.append
    states = fold.states
    category, customer, days = fold.category, fold.customer, fold.day
    accepted = duplicates = stale = invalid = entries = 0
    for msg, results in zip(parsed.messages, parsed.results, strict=True):
        offset = msg.offset
        if offset <= watermark:
            continue
        if fold.first_offset < 0:
            fold.first_offset = offset
        fold.last_offset = offset
        fold.messages += 1
        source = (partition, offset)
        for result in results:
            if type(result) is not Accepted:
                invalid += 1
                rejection = cast(Rejection, result)
                letter = dead_letter(rejection, raw_topic, partition, offset, msg.redrive_of)
                out(OutMessage(DLQ_KIND, msg.key, letter))
                continue
            txn = result.transaction
            tid = txn.transaction_id
            outcome = apply_change(
                versions.get(tid), txn, accepted_at=accepted_at, counted=counted, source=source
            )
            if type(outcome) is not Change:
                if isinstance(outcome, Duplicate):
                    duplicates += 1
                else:
                    stale += 1
                continue
            accepted += 1
            versions[tid] = txn
            states[tid] = txn
            key = tid.encode("utf-8")
            for entry in outcome.entries:
                entries += 1
                cents = entry.amount_cents
                cat = category.get(entry.product_category)
                if cat is None:
                    category[entry.product_category] = [entry.count, cents]
                else:
                    cat[0] += entry.count
                    cat[1] += cents
                customer[entry.customer_id] = customer.get(entry.customer_id, 0) + cents
                day = entry.transaction_date.isoformat()
                days[day] = days.get(day, 0) + cents
                out(OutMessage(LEDGER_KIND, key, _ENTRY_JSON(entry)))
            out(OutMessage(LEDGER_KIND, key, _VERSION_JSON(outcome.version)))
    fold.accepted, fold.duplicates, fold.stale = accepted, duplicates, stale
    fold.invalid, fold.entries = invalid, entries
    return fold
