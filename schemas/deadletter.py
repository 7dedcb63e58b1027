"""The dead-letter envelope (CONTRACT §3): bad records are data, with where they came from.

A dead letter is named by its place in the DLQ topic, ``{dlq_topic}:{partition}:{offset}``
(topic names cannot hold ``:``). A record put back on the raw topic by ``txnpipe dlq
redrive`` carries that name in the ``REDRIVE_HEADER`` header; if it is still invalid, its
new dead letter says so in ``redrive_of``, which is how it is never redriven in a loop.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from schemas.transaction import Rejection

REDRIVE_HEADER = "txnpipe-redrive-of"
# A dead letter carries the raw bytes, cut to this size: a 1 MB poison message must not
# make an envelope the broker refuses (message.max.bytes is 1 MB by default).
MAX_DLQ_RAW = 256 * 1024


class DeadLetter(BaseModel):
    """One invalid record: reason code, detail, the raw bytes and source coordinates."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: str
    detail: str
    raw: str  # the record's bytes as UTF-8 text, or base64 when raw_encoding says so
    raw_encoding: Literal["utf-8", "base64"] = "utf-8"
    source_topic: str
    partition: int
    offset: int
    index: int | None = None  # position within a batch message
    stage: str = "stream"
    transaction_id: str | None = None
    raw_length: int | None = None  # the record's full length when ``raw`` was cut
    redrive_of: str | None = None  # the dead letter this record was redriven from

    @classmethod
    def from_rejection(
        cls,
        rejection: Rejection,
        *,
        topic: str,
        partition: int,
        offset: int,
        stage: str = "stream",
        redrive_of: str | None = None,
    ) -> DeadLetter:
        raw_bytes, length = rejection.raw, None
        if len(raw_bytes) > MAX_DLQ_RAW:
            raw_bytes, length = raw_bytes[:MAX_DLQ_RAW], len(raw_bytes)
        try:
            raw, encoding = raw_bytes.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            raw, encoding = base64.b64encode(raw_bytes).decode("ascii"), "base64"
        detail = rejection.detail
        if length is not None:
            detail = f"{detail} (raw cut to {MAX_DLQ_RAW} of {length} bytes)"
        return cls(
            reason=rejection.reason,
            detail=detail,
            raw=raw,
            raw_encoding=encoding,
            source_topic=topic,
            partition=partition,
            offset=offset,
            index=rejection.index,
            stage=stage,
            transaction_id=rejection.transaction_id,
            raw_length=length,
            redrive_of=redrive_of,
        )

    def raw_bytes(self) -> bytes:
        if self.raw_encoding == "base64":
            return base64.b64decode(self.raw)
        return self.raw.encode("utf-8")


def letter_name(topic: str, partition: int, offset: int) -> str:
    """The name of the dead letter at ``offset`` of ``partition`` of the DLQ ``topic``."""
    return f"{topic}:{partition}:{offset}"


def parse_letter_name(name: str) -> tuple[str, int, int] | None:
    """``letter_name``'s inverse; None when ``name`` is not one."""
    topic, _, rest = name.partition(":")
    partition, _, offset = rest.partition(":")
    if not topic or not partition.isdigit() or not offset.isdigit():
        return None
    return topic, int(partition), int(offset)


def redrive_of(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str | None:
    """The dead letter a redriven record comes from: its ``REDRIVE_HEADER``, if any."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for name, value in pairs:
        if name == REDRIVE_HEADER and value:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            return text[:300]
    return None
