"""Ledger messages → what one sink batch writes (pure: no I/O, unit-tested without services).

The stream app publishes a version's 0-2 entries first and then its ``VersionRecord``
(the commit marker naming ``entry_ids``), all in one partition. A *unit* is a version with
its entries: it is written whole or not at all. Entries whose version is not in the batch
are *orphans*: they wait in ``sink_pending_entries`` (written in the same DB transaction
as the offsets) until their version arrives. Exact duplicates (redelivery) are dropped
here within a batch and by unique keys across batches.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from schemas import LEDGER_ADAPTER, DeadLetter, LedgerEntry, VersionRecord
from schemas.answers import cents_to_str


@dataclass(slots=True)  # not frozen: its __init__ is on the hot path (one per message)
class Received:
    """One ledger message as read: where it came from, its bytes and its decoded value."""

    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    message: LedgerEntry | VersionRecord


@dataclass(slots=True)
class Unit:
    """A version and the entries it commits; ``missing`` entry ids were not in this batch."""

    version: Received
    entries: tuple[Received, ...]
    missing: tuple[str, ...] = ()
    # LOAD DATA lines, rendered ahead by ``render`` (in the consumer thread, off the
    # writer's critical path); None = render when writing.
    ledger_lines: tuple[str, ...] | None = None
    version_line: str | None = None
    current_line: str | None = None

    def render(self) -> None:
        """Format every line of this unit, each shared field once (the hot path)."""
        v = self.record
        tid, customer, category = (
            tsv_text(v.transaction_id),
            tsv_text(v.customer_id),
            tsv_text(v.product_category),
        )
        amount, day = cents_to_str(v.amount_cents), v.transaction_date.isoformat()
        updated, accepted = tsv_time(v.updated_at), tsv_time(v.accepted_at)
        previous = tsv_time(v.previous_updated_at) if v.previous_updated_at else "\\N"
        self.version_line = (
            f"{tid}\t{updated}\t{customer}\t{category}\t{amount}\t{day}\t{v.status}\t"
            f"{int(v.counted)}\t{previous}\t{tsv_text(','.join(v.entry_ids))}\t{accepted}\t"
            f"{v.source_partition}\t{v.source_offset}\t{self.version.partition}\t"
            f"{self.version.offset}\t{int(v.stale)}\n"
        )
        self.current_line = (
            f"{tid}\t{customer}\t{category}\t{amount}\t{day}\t{v.status}\t{updated}\t{accepted}\n"
        )
        # entries carry their version's time: reuse its text
        self.ledger_lines = tuple(ledger_tsv(e, v.updated_at, updated) for e in self.entries)

    def lines(self) -> tuple[tuple[str, ...], str]:
        """This unit's ledger lines and version line for ``LOAD DATA``."""
        if (
            self.version_line is None
            or self.ledger_lines is None
            or len(self.ledger_lines) != len(self.entries)
        ):
            self.render()
        assert self.ledger_lines is not None and self.version_line is not None
        return self.ledger_lines, self.version_line

    def current(self) -> str:
        """This version as a ``transactions`` line for ``LOAD DATA``."""
        if self.current_line is None:
            self.render()
        assert self.current_line is not None
        return self.current_line

    @property
    def record(self) -> VersionRecord:
        assert isinstance(self.version.message, VersionRecord)
        return self.version.message

    def messages(self) -> tuple[Received, ...]:
        return (*self.entries, self.version)


@dataclass
class BatchPlan:
    """Everything one DB transaction writes, plus the offsets it covers."""

    units: list[Unit] = field(default_factory=list)
    orphans: list[Received] = field(default_factory=list)
    invalid: list[DeadLetter] = field(default_factory=list)
    next_offsets: dict[int, int] = field(default_factory=dict)  # partition -> last offset + 1
    messages: int = 0


# The validator itself (skips TypeAdapter's per-call wrapper), in strict mode: the ledger is
# our own event format, written by ``model_dump_json``; strict is 20 % faster and turns a
# stringly-typed number from a foreign producer into a dead letter instead of a guess.
_VALIDATE = functools.partial(LEDGER_ADAPTER.validator.validate_json, strict=True)


def decode(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
) -> Received | DeadLetter:
    """Validate one ledger message; a message that is not a ledger event becomes a dead letter."""
    raw = value or b""
    try:
        message = _VALIDATE(raw)
    except ValidationError as exc:
        rejection_detail = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3]
        )
        return _dead(
            topic, partition, offset, raw, "invalid_ledger_message", rejection_detail[:500]
        )
    return Received(partition, offset, key, raw, message)


def _dead(
    topic: str, partition: int, offset: int, raw: bytes, reason: str, detail: str
) -> DeadLetter:
    from schemas import Rejection

    return DeadLetter.from_rejection(
        Rejection(reason, detail, raw),
        topic=topic,
        partition=partition,
        offset=offset,
        stage="sink",
    )


def dead_letter(topic: str, item: Received, reason: str, detail: str) -> DeadLetter:
    """A sink-stage dead letter for a message the database refused (or that lost its entries)."""
    letter = _dead(topic, item.partition, item.offset, item.raw, reason, detail)
    return letter.model_copy(update={"transaction_id": item.message.transaction_id})


def fold(items: list[Received | DeadLetter], next_offsets: dict[int, int]) -> BatchPlan:
    """Group a batch's messages (in partition order) into units, orphans and dead letters."""
    plan = BatchPlan(next_offsets=dict(next_offsets), messages=len(items))
    waiting: dict[str, Received] = {}  # entry_id -> first copy seen, not yet claimed
    claimed: set[str] = set()
    versions: set[tuple[str, datetime]] = set()
    for item in items:
        if isinstance(item, DeadLetter):
            plan.invalid.append(item)
            continue
        message = item.message
        if isinstance(message, LedgerEntry):
            if message.entry_id not in claimed and message.entry_id not in waiting:
                waiting[message.entry_id] = item
            continue
        key = (message.transaction_id, message.updated_at)
        ids = message.entry_ids
        found = tuple(waiting.pop(i) for i in ids if i in waiting)
        if key in versions:
            claimed.update(ids)  # a redelivered copy: its entries are duplicates too
            continue
        versions.add(key)
        missing: tuple[str, ...] = ()
        if len(found) != len(ids):
            have = {f.message.entry_id for f in found if isinstance(f.message, LedgerEntry)}
            missing = tuple(i for i in ids if i not in have and i not in claimed)
        if ids:
            claimed.update(ids)
        plan.units.append(Unit(item, found, missing))
    plan.orphans = list(waiting.values())
    return plan


def render(plan: BatchPlan) -> BatchPlan:
    """Render every unit's ``LOAD DATA`` lines now (see ``Unit.lines``)."""
    for unit in plan.units:
        unit.render()
    return plan


def fold_offsets(items: list[tuple[int, int]]) -> dict[int, int]:
    """Partition → next offset to read after these ``(partition, offset)`` pairs."""
    out: dict[int, int] = {}
    for partition, offset in items:
        if offset + 1 > out.get(partition, -1):
            out[partition] = offset + 1
    return out


def naive_utc(moment: datetime) -> datetime:
    """DATETIME(6) columns hold UTC without a zone (sessions run at ``+00:00``)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(UTC).replace(tzinfo=None)


LEDGER_COLUMNS = (
    "entry_id",
    "transaction_id",
    "version_updated_at",
    "entry_type",
    "customer_id",
    "product_category",
    "transaction_date",
    "amount",
    "`count`",
    "source_partition",
    "source_offset",
    "ledger_partition",
    "ledger_offset",
)


def ledger_row(item: Received) -> tuple[Any, ...]:
    e = item.message
    assert isinstance(e, LedgerEntry)
    return (
        e.entry_id,
        e.transaction_id,
        naive_utc(e.version_updated_at),
        e.entry_type,
        e.customer_id,
        e.product_category,
        e.transaction_date,
        cents_to_str(e.amount_cents),
        e.count,
        e.source_partition,
        e.source_offset,
        item.partition,
        item.offset,
    )


VERSION_COLUMNS = (
    "transaction_id",
    "updated_at",
    "customer_id",
    "product_category",
    "transaction_amount",
    "transaction_date",
    "status",
    "counted",
    "previous_updated_at",
    "entry_ids",
    "accepted_at",
    "source_partition",
    "source_offset",
    "ledger_partition",
    "ledger_offset",
    "stale",
)


def version_row(item: Received) -> tuple[Any, ...]:
    v = item.message
    assert isinstance(v, VersionRecord)
    return (
        v.transaction_id,
        naive_utc(v.updated_at),
        v.customer_id,
        v.product_category,
        cents_to_str(v.amount_cents),
        v.transaction_date,
        v.status,
        int(v.counted),
        naive_utc(v.previous_updated_at) if v.previous_updated_at else None,
        ",".join(v.entry_ids),
        naive_utc(v.accepted_at),
        v.source_partition,
        v.source_offset,
        item.partition,
        item.offset,
        int(v.stale),
    )


CURRENT_COLUMNS = (
    "transaction_id",
    "customer_id",
    "product_category",
    "transaction_amount",
    "transaction_date",
    "status",
    "updated_at",
    "accepted_at",
)


def current_row(v: VersionRecord) -> tuple[Any, ...]:
    return (
        v.transaction_id,
        v.customer_id,
        v.product_category,
        cents_to_str(v.amount_cents),
        v.transaction_date,
        v.status,
        naive_utc(v.updated_at),
        naive_utc(v.accepted_at),
    )


def latest_units(units: list[Unit]) -> dict[str, Unit]:
    """Per transaction, the unit of its newest version among ``units`` (stale-flagged
    versions never: they are older than the current version when they arrived)."""
    latest: dict[str, Unit] = {}
    for unit in units:
        v = unit.record
        if v.stale:
            continue
        known = latest.get(v.transaction_id)
        if known is None or v.updated_at > known.record.updated_at:
            latest[v.transaction_id] = unit
    return latest


def latest_versions(units: list[Unit]) -> dict[str, VersionRecord]:
    """Per transaction, the newest version among ``units`` (the one ``transactions`` shows)."""
    latest: dict[str, VersionRecord] = {}
    for unit in units:
        v = unit.record
        if v.stale:
            continue
        known = latest.get(v.transaction_id)
        if known is None or v.updated_at > known.updated_at:
            latest[v.transaction_id] = v
    return latest


def raw_positions(units: list[Unit]) -> dict[int, int]:
    """Raw-topic partition → greatest source offset among the versions written."""
    out: dict[int, int] = {}
    for unit in units:
        v = unit.record
        if v.source_partition >= 0 and v.source_offset > out.get(v.source_partition, -1):
            out[v.source_partition] = v.source_offset
    return out


# -- LOAD DATA rows: tab-separated, ``\N`` for NULL, backslash escapes (MySQL defaults) ------


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


def ledger_tsv(item: Received, at: datetime | None = None, at_text: str = "") -> str:
    """One ledger line; ``at_text`` is ``at`` already formatted (reused when it matches)."""
    e = item.message
    assert isinstance(e, LedgerEntry)
    when = (
        at_text if at is not None and e.version_updated_at == at else tsv_time(e.version_updated_at)
    )
    return (
        f"{tsv_text(e.entry_id)}\t{tsv_text(e.transaction_id)}\t{when}\t"
        f"{e.entry_type}\t{tsv_text(e.customer_id)}\t{tsv_text(e.product_category)}\t"
        f"{e.transaction_date.isoformat()}\t{cents_to_str(e.amount_cents)}\t{e.count}\t"
        f"{e.source_partition}\t{e.source_offset}\t{item.partition}\t{item.offset}\n"
    )


def version_tsv(item: Received) -> str:
    v = item.message
    assert isinstance(v, VersionRecord)
    previous = tsv_time(v.previous_updated_at) if v.previous_updated_at else "\\N"
    return (
        f"{tsv_text(v.transaction_id)}\t{tsv_time(v.updated_at)}\t{tsv_text(v.customer_id)}\t"
        f"{tsv_text(v.product_category)}\t{cents_to_str(v.amount_cents)}\t"
        f"{v.transaction_date.isoformat()}\t{v.status}\t{int(v.counted)}\t{previous}\t"
        f"{tsv_text(','.join(v.entry_ids))}\t{tsv_time(v.accepted_at)}\t{v.source_partition}\t"
        f"{v.source_offset}\t{item.partition}\t{item.offset}\t{int(v.stale)}\n"
    )


def current_tsv(v: VersionRecord) -> str:
    return (
        f"{tsv_text(v.transaction_id)}\t{tsv_text(v.customer_id)}\t{tsv_text(v.product_category)}\t"
        f"{cents_to_str(v.amount_cents)}\t{v.transaction_date.isoformat()}\t{v.status}\t"
        f"{tsv_time(v.updated_at)}\t{tsv_time(v.accepted_at)}\n"
    )
