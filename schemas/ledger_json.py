"""CONTRACT §2's ledger messages of one accepted version, written straight to JSON bytes.

``apply_change`` builds pydantic models (two ``Contribution``s, the entries, the version
record, a ``Change``) that the stream then serialises; on the hot path that is most of a
record's cost. ``change_messages`` decides the same way and writes the same bytes as
``LedgerEntry``/``VersionRecord``'s own serializer (field order, ``Z`` times, compact
separators, UTF-8 unescaped) for every string that needs no JSON escape; for any other it
returns None and the caller takes the model path. ``tests/unit/schemas/test_ledger_json.py``
compares both byte for byte on generated versions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

from schemas.isotext import day_iso, utc_iso
from schemas.transaction import Transaction

_MEMO_SIZE = 4096
_QUOTED: dict[str, str] = {}  # customer/category -> its JSON text (few distinct values)


class EntryDelta(NamedTuple):
    """What one ledger entry adds to the aggregates."""

    transactions: int  # +1 or -1
    cents: int
    customer_id: str
    product_category: str
    day: str  # YYYY-MM-DD


_new_delta = tuple.__new__  # a NamedTuple's own __new__ is a Python lambda: one frame more
_blake2b = hashlib.blake2b  # schemas.ledger.entry_id_of, inline (same key, same digest)


def _plain(text: str) -> str | None:
    """``"text"`` when JSON needs no escape in it (serializers agree on nothing else)."""
    if '"' in text or "\\" in text or not text.isprintable():
        return None
    return f'"{text}"'


def quoted(text: str) -> str | None:
    """``text`` as a JSON string, memoised; None when it needs an escape."""
    known = _QUOTED.get(text)
    if known is None:
        known = _plain(text)
        if known is None:
            return None
        if len(_QUOTED) >= _MEMO_SIZE:
            _QUOTED.clear()
        _QUOTED[text] = known
    return known


def utc_text(moment: datetime) -> str | None:
    """``isoformat`` with ``Z`` as pydantic writes a UTC time; None if not UTC."""
    text = utc_iso(moment)
    if not text.endswith("+00:00") or moment.year < 1000:
        return None
    return text[:-6] + "Z"


def _entry_json(
    eid: str, entry_type: str, head: str, q_customer: str, q_category: str, day: str,
    cents: int, sign: int, tail: str,
) -> bytes:  # fmt: skip
    return (
        f'{{"kind":"entry","entry_id":"{eid}","entry_type":"{entry_type}",{head}'
        f'"customer_id":{q_customer},"product_category":{q_category},"transaction_date":"{day}",'
        f'"amount_cents":{cents},"count":{sign},{tail}}}'
    ).encode()


def change_messages(
    current: Transaction | None,
    incoming: Transaction,
    counted: Collection[str],
    accepted_at: str,
    partition: int,
    offset: int,
) -> tuple[list[EntryDelta], list[bytes]] | None:
    """The entries' deltas and the messages (entries, then the version) that accepting
    ``incoming`` over ``current`` publishes, as ``apply_change`` + the model serializers
    would; None when a string needs escaping (use the model path). ``accepted_at`` is
    ``utc_text`` of the acceptance time. The caller has ruled out duplicates and stale."""
    tid = incoming.transaction_id
    updated = incoming.updated_at
    iso = utc_iso(updated)
    if (
        '"' in tid or "\\" in tid or not tid.isprintable()
        or iso[-6:] != "+00:00" or updated.year < 1000
    ):  # fmt: skip
        return None
    customer, category = incoming.customer_id, incoming.product_category
    q_customer = _QUOTED.get(customer) or quoted(customer)
    q_category = _QUOTED.get(category) or quoted(category)
    if q_customer is None or q_category is None:
        return None
    if current is None:
        previous = "null"
        old = False
    else:
        previous_at = current.updated_at
        previous = utc_iso(previous_at)
        if previous[-6:] != "+00:00" or previous_at.year < 1000:
            return None
        previous = f'"{previous[:-6]}Z"'
        old = current.status in counted
    new = incoming.status in counted
    day = day_iso(incoming.transaction_date)
    at = iso[:-6]
    tail = f'"source_partition":{partition},"source_offset":{offset}'
    deltas: list[EntryDelta] = []
    values: list[bytes] = []
    entry_ids = ""
    if old:
        assert current is not None
        c_customer, c_category = current.customer_id, current.product_category
        c_day, c_cents = current.transaction_date, current.amount_cents
        if not new or (
            c_customer != customer or c_category != category
            or c_day != incoming.transaction_date or c_cents != incoming.amount_cents
        ):  # fmt: skip
            q_c_customer = _QUOTED.get(c_customer) or quoted(c_customer)
            q_c_category = _QUOTED.get(c_category) or quoted(c_category)
            if q_c_customer is None or q_c_category is None:
                return None
            head = f'"transaction_id":"{tid}","version_updated_at":"{at}Z",'
            c_text = day_iso(c_day)
            eid = _blake2b(f"{tid}\x1f{iso}\x1freversal".encode(), digest_size=16).hexdigest()
            deltas.append(_new_delta(EntryDelta, (-1, -c_cents, c_customer, c_category, c_text)))
            values.append(
                _entry_json(
                    eid, "reversal", head, q_c_customer, q_c_category, c_text, -c_cents, -1, tail
                )
            )
            entry_ids = f'"{eid}"'
            if new:
                eid = _blake2b(f"{tid}\x1f{iso}\x1fnew".encode(), digest_size=16).hexdigest()
                cents = incoming.amount_cents
                deltas.append(_new_delta(EntryDelta, (1, cents, customer, category, day)))
                values.append(
                    _entry_json(eid, "new", head, q_customer, q_category, day, cents, 1, tail)
                )
                entry_ids = f'{entry_ids},"{eid}"'
    elif new:
        head = f'"transaction_id":"{tid}","version_updated_at":"{at}Z",'
        eid = _blake2b(f"{tid}\x1f{iso}\x1fnew".encode(), digest_size=16).hexdigest()
        cents = incoming.amount_cents
        deltas.append(_new_delta(EntryDelta, (1, cents, customer, category, day)))
        values.append(_entry_json(eid, "new", head, q_customer, q_category, day, cents, 1, tail))
        entry_ids = f'"{eid}"'
    values.append(
        f'{{"kind":"version","transaction_id":"{tid}","updated_at":"{at}Z",'
        f'"customer_id":{q_customer},"product_category":{q_category},'
        f'"amount_cents":{incoming.amount_cents},"transaction_date":"{day}",'
        f'"status":"{incoming.status}","counted":{"true" if new else "false"},'
        f'"previous_updated_at":{previous},"entry_ids":[{entry_ids}],'
        f'"accepted_at":"{accepted_at}",{tail},"stale":false}}'.encode()
    )
    return deltas, values
