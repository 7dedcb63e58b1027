"""The dead-letter envelope (CONTRACT §3): bad records are data, with where they came from."""

from __future__ import annotations

import base64
from typing import Literal

from pydantic import BaseModel, ConfigDict

from schemas.transaction import Rejection


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

    @classmethod
    def from_rejection(
        cls, rejection: Rejection, *, topic: str, partition: int, offset: int, stage: str = "stream"
    ) -> DeadLetter:
        try:
            raw, encoding = rejection.raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            raw, encoding = base64.b64encode(rejection.raw).decode("ascii"), "base64"
        return cls(
            reason=rejection.reason,
            detail=rejection.detail,
            raw=raw,
            raw_encoding=encoding,
            source_topic=topic,
            partition=partition,
            offset=offset,
            index=rejection.index,
            stage=stage,
            transaction_id=rejection.transaction_id,
        )

    def raw_bytes(self) -> bytes:
        if self.raw_encoding == "base64":
            return base64.b64decode(self.raw)
        return self.raw.encode("utf-8")
