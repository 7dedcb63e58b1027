"""The contract every stage imports: cleaning rules, change rules, events, topics."""

from schemas.cleaning import CleaningError
from schemas.deadletter import DeadLetter
from schemas.ledger import (
    DEFAULT_COUNTED,
    DUPLICATE,
    LEDGER_ADAPTER,
    STALE,
    Change,
    Contribution,
    Duplicate,
    LedgerEntry,
    Outcome,
    Stale,
    VersionRecord,
    apply_change,
    contribution,
    entry_id,
    stale_version,
)
from schemas.topics import ALL_TOPICS, DLQ, LEDGER, RAW, TopicSpec
from schemas.transaction import (
    Accepted,
    Rejection,
    Transaction,
    clean_record,
    parse_message,
    readable_id,
)

__all__ = [
    "ALL_TOPICS",
    "DEFAULT_COUNTED",
    "DLQ",
    "DUPLICATE",
    "LEDGER",
    "LEDGER_ADAPTER",
    "RAW",
    "STALE",
    "Accepted",
    "Change",
    "CleaningError",
    "Contribution",
    "DeadLetter",
    "Duplicate",
    "LedgerEntry",
    "Outcome",
    "Rejection",
    "Stale",
    "TopicSpec",
    "Transaction",
    "VersionRecord",
    "apply_change",
    "clean_record",
    "contribution",
    "entry_id",
    "parse_message",
    "readable_id",
    "stale_version",
]
