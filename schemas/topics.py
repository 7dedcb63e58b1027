"""Kafka topics (CONTRACT §3), declared once with their key and value models."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from schemas.deadletter import DeadLetter
from schemas.ledger import LedgerEntry, VersionRecord


@dataclass(frozen=True)
class TopicSpec:
    """A topic under the namespace: suffix, what its key is, what its value is."""

    suffix: str
    key: str
    value: tuple[type[BaseModel], ...] | None  # None: raw API bytes, validated downstream

    def name(self, namespace: str) -> str:
        return f"{namespace}.{self.suffix}"


RAW = TopicSpec("transactions.raw", "transaction_id when readable, else none", None)
LEDGER = TopicSpec("transactions.ledger", "transaction_id", (LedgerEntry, VersionRecord))
DLQ = TopicSpec("transactions.dlq", "as received", (DeadLetter,))
ALL_TOPICS = (RAW, LEDGER, DLQ)
# Raw and ledger must be co-partitioned: a ledger partition is the changelog of a raw one.
PARTITIONED_TOPICS = (RAW, LEDGER)
