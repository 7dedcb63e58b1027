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

from collections.abc import Collection
from datetime import datetime
from typing import NamedTuple

from schemas.ledger import entry_id_of
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


def _plain(text: str) -> str | None:
    """``"text"`` when JSON needs no escape in it (serializers agree on nothing else)."""
    if '"' in text or "\\" in text or not text.isprintable():
        return None
    return f'"{text}"'


def _quoted(text: str) -> str | None:
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
    text = moment.isoformat()
    if not text.endswith("+00:00") or moment.year < 1000:
        return None
    return text[:-6] + "Z"


def change_messages(
    current: Transaction | None,
    incoming: Transaction,
    *,
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
    q_tid = _plain(tid)
    iso = incoming.updated_at.isoformat()
    if q_tid is None or not iso.endswith("+00:00") or incoming.updated_at.year < 1000:
        return None
    at = iso[:-6] + "Z"
    old = current is not None and current.status in counted
    new = incoming.status in counted
    sides: list[tuple[str, int, Transaction]] = []
    if old and new:
        assert current is not None
        if (
            current.customer_id != incoming.customer_id
            or current.product_category != incoming.product_category
            or current.transaction_date != incoming.transaction_date
            or current.amount_cents != incoming.amount_cents
        ):
            sides = [("reversal", -1, current), ("new", 1, incoming)]
    elif old:
        assert current is not None
        sides = [("reversal", -1, current)]
    elif new:
        sides = [("new", 1, incoming)]
    deltas: list[EntryDelta] = []
    values: list[bytes] = []
    ids: list[str] = []
    for entry_type, sign, c in sides:
        q_customer, q_category = _quoted(c.customer_id), _quoted(c.product_category)
        if q_customer is None or q_category is None:
            return None
        eid = entry_id_of(tid, iso, entry_type)
        ids.append(eid)
        day = c.transaction_date.isoformat()
        cents = sign * c.amount_cents
        deltas.append(_new_delta(EntryDelta, (sign, cents, c.customer_id, c.product_category, day)))
        values.append(
            f'{{"kind":"entry","entry_id":"{eid}","entry_type":"{entry_type}",'
            f'"transaction_id":{q_tid},"version_updated_at":"{at}","customer_id":{q_customer},'
            f'"product_category":{q_category},"transaction_date":"{day}","amount_cents":{cents},'
            f'"count":{sign},"source_partition":{partition},"source_offset":{offset}}}'.encode()
        )
    q_customer, q_category = _quoted(incoming.customer_id), _quoted(incoming.product_category)
    if q_customer is None or q_category is None:
        return None
    if current is None:
        previous = "null"
    else:
        previous_text = utc_text(current.updated_at)
        if previous_text is None:
            return None
        previous = f'"{previous_text}"'
    entry_ids = f'"{ids[0]}","{ids[1]}"' if len(ids) == 2 else f'"{ids[0]}"' if ids else ""
    values.append(
        f'{{"kind":"version","transaction_id":{q_tid},"updated_at":"{at}",'
        f'"customer_id":{q_customer},"product_category":{q_category},'
        f'"amount_cents":{incoming.amount_cents},'
        f'"transaction_date":"{incoming.transaction_date.isoformat()}",'
        f'"status":"{incoming.status}","counted":{"true" if new else "false"},'
        f'"previous_updated_at":{previous},"entry_ids":[{entry_ids}],'
        f'"accepted_at":"{accepted_at}","source_partition":{partition},'
        f'"source_offset":{offset},"stale":false}}'.encode()
    )
    return deltas, values
