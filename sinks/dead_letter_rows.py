"""DLQ messages → rows of the ``dead_letters`` index (pure: unit-tested without services).

An envelope is read leniently: ours is ``schemas.DeadLetter``, but anything can be written
to the DLQ topic, and the index must never stop on it. An envelope that cannot be read at
all is indexed as itself (reason ``unreadable_envelope``, its own bytes as the raw record),
so it is still seen. Every value is cut to what its column holds: a row the database
refuses would stop the index.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.deadletter import MAX_DLQ_RAW

COLUMNS = (
    "dlq_partition",
    "dlq_offset",
    "dead_at",
    "stage",
    "reason",
    "detail",
    "transaction_id",
    "source_topic",
    "source_partition",
    "source_offset",
    "source_index",
    "raw",
    "raw_length",
    "raw_sha256",
    "redrive_of",
)
RAW_COLUMN = COLUMNS.index("raw")
_CUT = re.compile(r"\(raw cut to \d+ of (\d+) bytes\)")
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class Envelope:
    """What the index keeps of one dead letter."""

    stage: str
    reason: str
    detail: str
    transaction_id: str | None
    source_topic: str
    source_partition: int
    source_offset: int
    source_index: int
    raw: bytes
    raw_length: int
    redrive_of: str | None


def _ascii(value: Any, limit: int, default: str) -> str:
    if not isinstance(value, str) or not value:
        return default
    return value.encode("ascii", "replace").decode("ascii")[:limit]


def _text(value: Any, limit: int) -> str:
    """Any string as valid UTF-8 (lone surrogates replaced), cut to ``limit`` characters."""
    if not isinstance(value, str):
        return ""
    return value.encode("utf-8", "replace").decode("utf-8")[:limit]


def _int(value: Any, low: int, high: int, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return default
    return value


def _raw(doc: dict[str, Any]) -> bytes | None:
    raw = doc.get("raw")
    if not isinstance(raw, str):
        return None
    if doc.get("raw_encoding") == "base64":
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            return None
    return raw.encode("utf-8", "replace")


def read_envelope(value: bytes | None, dlq_topic: str, partition: int, offset: int) -> Envelope:
    """One DLQ message value → what the index keeps of it (never raises)."""
    try:
        doc = json.loads(value or b"")
    except (ValueError, RecursionError):
        doc = None
    raw = _raw(doc) if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or raw is None or not isinstance(doc.get("reason"), str):
        body = value or b""
        return Envelope(
            "unknown", "unreadable_envelope", "the DLQ message is not a dead-letter envelope",
            None, dlq_topic, partition, offset, -1, body[:MAX_DLQ_RAW], len(body), None,
        )  # fmt: skip
    detail = _text(doc.get("detail"), 1000)
    length = _int(doc.get("raw_length"), 0, _INT32, -1)
    if length < 0:  # envelopes written before raw_length: the detail says how long it was
        cut = _CUT.search(detail)
        length = int(cut.group(1)) if cut else len(raw)
    tid = doc.get("transaction_id")
    redrive = doc.get("redrive_of")
    return Envelope(
        stage=_ascii(doc.get("stage"), 16, "stream"),
        reason=_ascii(doc["reason"], 128, "unknown"),
        detail=detail,
        transaction_id=(_text(tid, 255) or None) if isinstance(tid, str) else None,
        source_topic=_ascii(doc.get("source_topic"), 255, "?"),
        source_partition=_int(doc.get("partition"), -1, _INT32, -1),
        source_offset=_int(doc.get("offset"), -1, _INT64, -1),
        source_index=_int(doc.get("index"), 0, _INT32, -1),
        raw=raw,
        raw_length=max(length, len(raw)),
        redrive_of=_ascii(redrive, 300, "") or None,
    )


def row(
    envelope: Envelope, partition: int, offset: int, timestamp_ms: int | None, now: datetime
) -> tuple[Any, ...]:
    """The ``dead_letters`` row of the dead letter at ``partition``/``offset`` (COLUMNS order)."""
    if timestamp_ms is not None and timestamp_ms > 0:
        dead_at = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
    else:
        dead_at = now
    e = envelope
    return (
        partition,
        offset,
        dead_at.astimezone(UTC).replace(tzinfo=None),
        e.stage,
        e.reason,
        e.detail,
        e.transaction_id,
        e.source_topic,
        e.source_partition,
        e.source_offset,
        e.source_index,
        e.raw,
        e.raw_length,
        hashlib.sha256(e.raw).hexdigest(),
        e.redrive_of,
    )
