"""CONTRACT §2 change rules: dedup, stale detection, and the ledger entries of a change.

A transaction contributes ``(customer, category, date, cents)`` while its status is
counted. An accepted version whose contribution differs from the previous one yields a
reversal of the old contribution (negative, count −1) and an entry for the new one
(positive, count +1). Ids are deterministic, so a replay writes the same entries again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from schemas.transaction import Status, Transaction, construct

DEFAULT_COUNTED = frozenset({"pending", "approved"})


@dataclass(frozen=True, slots=True)
class Contribution:
    """What one counted version adds to the aggregates."""

    customer_id: str
    product_category: str
    transaction_date: date
    amount_cents: int


def contribution(txn: Transaction | None, counted: Collection[str]) -> Contribution | None:
    """The version's contribution, or None when it has none (absent, declined, reversed)."""
    if txn is None or txn.status not in counted:
        return None
    return Contribution(
        txn.customer_id, txn.product_category, txn.transaction_date, txn.amount_cents
    )


def entry_id(transaction_id: str, updated_at: datetime, entry_type: str) -> str:
    """Deterministic id of a ledger entry: same version, same entry, same id, on any replay."""
    return entry_id_of(transaction_id, updated_at.isoformat(), entry_type)


def entry_id_of(transaction_id: str, updated_at_iso: str, entry_type: str) -> str:
    """``entry_id`` with the version's ``updated_at.isoformat()`` already at hand."""
    key = f"{transaction_id}\x1f{updated_at_iso}\x1f{entry_type}"
    return hashlib.blake2b(key.encode("utf-8"), digest_size=16).hexdigest()


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LedgerEntry(_Event):
    """One ledger entry: a reversal of an old contribution (negative) or a new one."""

    kind: Literal["entry"] = "entry"
    entry_id: str
    entry_type: Literal["reversal", "new"]
    transaction_id: str
    version_updated_at: datetime  # the version whose acceptance made this entry
    customer_id: str
    product_category: str
    transaction_date: date
    amount_cents: int  # negative for reversals
    count: Literal[-1, 1]
    source_partition: int = -1
    source_offset: int = -1


class VersionRecord(_Event):
    """An accepted version (the audit trail); follows its entries as their commit marker."""

    kind: Literal["version"] = "version"
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
    # Older than the current version when it arrived (a late replica): kept for the audit
    # trail and for as-of answers (it was known at its updated_at), never for current state.
    stale: bool = False

    def transaction(self) -> Transaction:
        return Transaction.model_construct(
            transaction_id=self.transaction_id,
            customer_id=self.customer_id,
            product_category=self.product_category,
            amount_cents=self.amount_cents,
            transaction_date=self.transaction_date,
            status=self.status,
            updated_at=self.updated_at,
        )


LedgerMessage = Annotated[LedgerEntry | VersionRecord, Field(discriminator="kind")]
LEDGER_ADAPTER: TypeAdapter[LedgerEntry | VersionRecord] = TypeAdapter(LedgerMessage)


@dataclass(frozen=True, slots=True)
class Duplicate:
    """Same transaction and ``updated_at`` as the current version: dropped, counted."""


@dataclass(frozen=True, slots=True)
class Stale:
    """Older than the current version: no entries, no state change, counted; published as a
    stale-flagged version (``stale_version``) so the audit trail knows it."""


@dataclass(frozen=True, slots=True)
class Change:
    """An accepted version: its entries (0, 1 or 2) and its version record, in publish order."""

    entries: tuple[LedgerEntry, ...]
    version: VersionRecord

    @property
    def messages(self) -> tuple[LedgerEntry | VersionRecord, ...]:
        """Entries first, then the version record that marks them complete."""
        return (*self.entries, self.version)


Outcome = Duplicate | Stale | Change
DUPLICATE = Duplicate()
STALE = Stale()


def _entry(
    txn: Transaction,
    version_at: datetime,
    c: Contribution,
    entry_type: Literal["reversal", "new"],
    source: tuple[int, int],
) -> LedgerEntry:
    sign = -1 if entry_type == "reversal" else 1
    return construct(
        LedgerEntry,
        kind="entry",
        entry_id=entry_id(txn.transaction_id, version_at, entry_type),
        entry_type=entry_type,
        transaction_id=txn.transaction_id,
        version_updated_at=version_at,
        customer_id=c.customer_id,
        product_category=c.product_category,
        transaction_date=c.transaction_date,
        amount_cents=sign * c.amount_cents,
        count=cast(Literal[-1, 1], sign),
        source_partition=source[0],
        source_offset=source[1],
    )


def apply_change(
    current: Transaction | None,
    incoming: Transaction,
    *,
    accepted_at: datetime,
    counted: Collection[str] = DEFAULT_COUNTED,
    source: tuple[int, int] = (-1, -1),
) -> Outcome:
    """Decide what ``incoming`` does given the ``current`` version (CONTRACT §2)."""
    if current is not None:
        if incoming.updated_at == current.updated_at:
            return DUPLICATE
        if incoming.updated_at < current.updated_at:
            return STALE
    old = contribution(current, counted)
    new = contribution(incoming, counted)
    entries: list[LedgerEntry] = []
    if old != new:
        if old is not None and current is not None:
            entries.append(_entry(incoming, incoming.updated_at, old, "reversal", source))
        if new is not None:
            entries.append(_entry(incoming, incoming.updated_at, new, "new", source))
    version = _version(
        incoming,
        counted=new is not None,
        previous_updated_at=current.updated_at if current is not None else None,
        entry_ids=tuple(e.entry_id for e in entries),
        accepted_at=accepted_at,
        source=source,
        stale=False,
    )
    return Change(tuple(entries), version)


def stale_version(
    incoming: Transaction,
    *,
    accepted_at: datetime,
    counted: Collection[str] = DEFAULT_COUNTED,
    source: tuple[int, int] = (-1, -1),
) -> VersionRecord:
    """The version record of a stale arrival: no entries, ``stale=True``.

    As-of answers take, per transaction, the version with the greatest ``updated_at <= T``
    among every valid version received, whatever the order of arrival; a late replica that
    was never seen before is such a version for the instants before its successor."""
    return _version(
        incoming,
        counted=incoming.status in counted,
        previous_updated_at=None,
        entry_ids=(),
        accepted_at=accepted_at,
        source=source,
        stale=True,
    )


def _version(
    incoming: Transaction,
    *,
    counted: bool,
    previous_updated_at: datetime | None,
    entry_ids: tuple[str, ...],
    accepted_at: datetime,
    source: tuple[int, int],
    stale: bool,
) -> VersionRecord:
    """The version record of ``incoming``: one builder for accepted and stale arrivals."""
    return construct(
        VersionRecord,
        kind="version",
        transaction_id=incoming.transaction_id,
        updated_at=incoming.updated_at,
        customer_id=incoming.customer_id,
        product_category=incoming.product_category,
        amount_cents=incoming.amount_cents,
        transaction_date=incoming.transaction_date,
        status=incoming.status,
        counted=counted,
        previous_updated_at=previous_updated_at,
        entry_ids=entry_ids,
        accepted_at=accepted_at,
        source_partition=source[0],
        source_offset=source[1],
        stale=stale,
    )
