"""Ledger messages as the sink reads them: msgspec structs, validated as strictly as pydantic.

The sink's hot path is decoding (issue 14): pydantic's strict ``validate_json`` into
``LedgerEntry``/``VersionRecord`` models cost ~7 µs a message here, msgspec into these
structs ~1 µs, and the structs' times format faster too (``datetime.timezone.utc`` rather
than pydantic's ``TzInfo``). The structs have the models' field names, so the writer reads
either the same way.

msgspec must never accept what pydantic's strict mode refuses, nor read a value
differently: whatever msgspec refuses goes to pydantic, whose answer (a model, or the
``ValidationError`` the dead letter quotes) is the one that counts; and one difference is
known and routed there too: a fraction of a second longer than 6 digits (msgspec rounds,
pydantic truncates). ``tests/unit/sinks/test_messages.py`` checks both decoders agree on
generated and mutated messages.
"""

from __future__ import annotations

import functools
import re
from datetime import date, datetime
from typing import Literal

import msgspec

from schemas import LEDGER_ADAPTER, LedgerEntry, VersionRecord
from schemas.transaction import Status


class Entry(msgspec.Struct, tag_field="kind", tag="entry", forbid_unknown_fields=True, gc=False):
    """``schemas.LedgerEntry``, field for field."""

    entry_id: str
    entry_type: Literal["reversal", "new"]
    transaction_id: str
    version_updated_at: datetime
    customer_id: str
    product_category: str
    transaction_date: date
    amount_cents: int
    count: Literal[-1, 1]
    source_partition: int = -1
    source_offset: int = -1


class Version(
    msgspec.Struct, tag_field="kind", tag="version", forbid_unknown_fields=True, gc=False
):
    """``schemas.VersionRecord``, field for field."""

    transaction_id: str
    updated_at: datetime
    customer_id: str
    product_category: str
    amount_cents: int
    transaction_date: date
    status: Status
    counted: bool
    previous_updated_at: datetime | None
    entry_ids: tuple[str, ...]
    accepted_at: datetime
    source_partition: int = -1
    source_offset: int = -1
    stale: bool = False


Message = Entry | Version

_FAST = msgspec.json.Decoder(Message).decode
# A fraction of a second of 7+ digits anywhere (a string field may match too: then the
# message merely takes the slow path).
_LONG_FRACTION = re.compile(rb"\.\d{7}").search
_STRICT = functools.partial(LEDGER_ADAPTER.validator.validate_json, strict=True)


def decode(raw: bytes) -> Message:
    """Validate one ledger message; raises pydantic's ``ValidationError`` when it is not one."""
    if _LONG_FRACTION(raw) is None:
        try:
            return _FAST(raw)
        except msgspec.DecodeError:  # ValidationError is one too
            pass  # pydantic decides, and words the dead letter
    return from_model(_STRICT(raw))


def from_model(model: LedgerEntry | VersionRecord) -> Message:
    """The struct of a validated pydantic model (the slow path's answer)."""
    if isinstance(model, LedgerEntry):
        return Entry(**{f: getattr(model, f) for f in Entry.__struct_fields__})
    return Version(**{f: getattr(model, f) for f in Version.__struct_fields__})
