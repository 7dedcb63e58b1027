"""``LOAD DATA`` lines: tab-separated, ``\\N`` for NULL, backslash escapes (MySQL defaults).

``unit_lines`` is the sink's hot path after decoding (one call per version): it formats
each field shared by a version and its entries once, and skips escaping when the message
bytes hold no backslash — JSON cannot carry a tab, newline, NUL or backslash in a string
without one (both decoders refuse raw control characters), so such a message has nothing
to escape. The one-line helpers (``ledger_tsv``, ``version_tsv``, ``current_tsv``) are the
plain reference the tests compare it with.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from schemas.answers import cents_to_str
from sinks.messages import Entry, Version

if TYPE_CHECKING:
    from sinks.batch import Received, Unit


def naive_utc(moment: datetime) -> datetime:
    """DATETIME(6) columns hold UTC without a zone (sessions run at ``+00:00``)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


def tsv_text(value: str) -> str:
    """Escape a string field for ``LOAD DATA`` (fast path: nothing to escape)."""
    if "\\" in value or "\t" in value or "\n" in value or "\0" in value:
        return (
            value.replace("\\", "\\\\")
            .replace("\t", "\\t")
            .replace("\n", "\\n")
            .replace("\0", "\\0")
        )
    return value


def tsv_time(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS[.ffffff]`` in UTC."""
    text = str(moment)
    if text.endswith("+00:00"):  # the usual case: already UTC
        return text[:-6]
    return str(naive_utc(moment))


# Texts of recent times: a stream batch stamps one ``accepted_at`` on all its versions, and
# an update's ``previous_updated_at`` is a version just written (cleared when large).
_TIMES: dict[datetime, str] = {}
_TIMES_MAX = 65536


def _cached_time(moment: datetime) -> str:
    text = _TIMES.get(moment)
    if text is None:
        if len(_TIMES) >= _TIMES_MAX:
            _TIMES.clear()
        text = _TIMES[moment] = tsv_time(moment)
    return text


def unit_lines(unit: Unit) -> tuple[tuple[str, ...], str, str]:
    """A unit's ledger lines, version line and ``transactions`` line (the hot path)."""
    item = unit.version
    v = item.message
    assert isinstance(v, Version)
    if b"\\" in item.raw:
        tid, customer, category = (
            tsv_text(v.transaction_id),
            tsv_text(v.customer_id),
            tsv_text(v.product_category),
        )
        ids = tsv_text(",".join(v.entry_ids))
    else:
        tid, customer, category = v.transaction_id, v.customer_id, v.product_category
        ids = ",".join(v.entry_ids)
    cents, day_value, updated_at = v.amount_cents, v.transaction_date, v.updated_at
    amount, day = cents_to_str(cents), day_value.isoformat()
    updated = tsv_time(updated_at)
    if len(_TIMES) >= _TIMES_MAX:
        _TIMES.clear()
    _TIMES[updated_at] = updated
    accepted = updated if v.accepted_at == updated_at else _cached_time(v.accepted_at)
    previous = _cached_time(v.previous_updated_at) if v.previous_updated_at else "\\N"
    version_line = (
        f"{tid}\t{updated}\t{customer}\t{category}\t{amount}\t{day}\t{v.status}\t"
        f"{int(v.counted)}\t{previous}\t{ids}\t{accepted}\t"
        f"{v.source_partition}\t{v.source_offset}\t{item.partition}\t"
        f"{item.offset}\t{int(v.stale)}\n"
    )
    current_line = (
        f"{tid}\t{customer}\t{category}\t{amount}\t{day}\t{v.status}\t{updated}\t{accepted}\n"
    )
    ledger: list[str] = []
    for entry in unit.entries:
        e = entry.message
        assert isinstance(e, Entry)
        # An entry shares most fields with its version (a new entry: all of them; a
        # reversal: the id and time): reuse the version's text where the value is equal.
        plain = b"\\" not in entry.raw
        eid = e.entry_id if plain else tsv_text(e.entry_id)
        etid = tid if e.transaction_id == v.transaction_id else tsv_text(e.transaction_id)
        when = updated if e.version_updated_at == updated_at else tsv_time(e.version_updated_at)
        ecustomer = customer if e.customer_id == v.customer_id else tsv_text(e.customer_id)
        ecategory = (
            category if e.product_category == v.product_category else tsv_text(e.product_category)
        )
        eday = day if e.transaction_date == day_value else e.transaction_date.isoformat()
        eamount = amount if e.amount_cents == cents else cents_to_str(e.amount_cents)
        ledger.append(
            f"{eid}\t{etid}\t{when}\t{e.entry_type}\t{ecustomer}\t{ecategory}\t{eday}\t"
            f"{eamount}\t{e.count}\t{e.source_partition}\t{e.source_offset}\t"
            f"{entry.partition}\t{entry.offset}\n"
        )
    return tuple(ledger), version_line, current_line


def ledger_tsv(item: Received) -> str:
    """One ledger line, every field formatted on its own (the reference for ``unit_lines``)."""
    e = item.message
    assert isinstance(e, Entry)
    return (
        f"{tsv_text(e.entry_id)}\t{tsv_text(e.transaction_id)}\t{tsv_time(e.version_updated_at)}\t"
        f"{e.entry_type}\t{tsv_text(e.customer_id)}\t{tsv_text(e.product_category)}\t"
        f"{e.transaction_date.isoformat()}\t{cents_to_str(e.amount_cents)}\t{e.count}\t"
        f"{e.source_partition}\t{e.source_offset}\t{item.partition}\t{item.offset}\n"
    )


def version_tsv(item: Received) -> str:
    v = item.message
    assert isinstance(v, Version)
    previous = tsv_time(v.previous_updated_at) if v.previous_updated_at else "\\N"
    return (
        f"{tsv_text(v.transaction_id)}\t{tsv_time(v.updated_at)}\t{tsv_text(v.customer_id)}\t"
        f"{tsv_text(v.product_category)}\t{cents_to_str(v.amount_cents)}\t"
        f"{v.transaction_date.isoformat()}\t{v.status}\t{int(v.counted)}\t{previous}\t"
        f"{tsv_text(','.join(v.entry_ids))}\t{tsv_time(v.accepted_at)}\t{v.source_partition}\t"
        f"{v.source_offset}\t{item.partition}\t{item.offset}\t{int(v.stale)}\n"
    )


def current_tsv(v: Version) -> str:
    return (
        f"{tsv_text(v.transaction_id)}\t{tsv_text(v.customer_id)}\t{tsv_text(v.product_category)}\t"
        f"{cents_to_str(v.amount_cents)}\t{v.transaction_date.isoformat()}\t{v.status}\t"
        f"{tsv_time(v.updated_at)}\t{tsv_time(v.accepted_at)}\n"
    )
