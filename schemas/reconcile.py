"""What ``txnpipe reconcile`` found: one section per comparison, plain data (no I/O).

Shared by the stages that read their own layer (``sinks``, ``stream_app``, ``producers``)
and by the composition root that compares them, so it lives with the contract.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

EXAMPLES = 20  # example ids kept per kind of difference


@dataclass(frozen=True, slots=True)
class ApiVersion:
    """The newest valid version the API serves of one transaction (cents, UTC)."""

    transaction_id: str
    customer_id: str
    product_category: str
    amount_cents: int
    transaction_date: date
    status: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class CurrentRow:
    """One row of MySQL ``transactions`` (or of what it must be)."""

    customer_id: str
    product_category: str
    amount_cents: int
    transaction_date: date
    status: str
    updated_at: datetime


@dataclass
class Section:
    """One comparison: counts per kind of difference, by month, example ids, work in flight."""

    name: str
    counts: dict[str, int] = field(default_factory=dict)
    by_month: dict[str, dict[str, int]] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)
    checked: int = 0  # how many things were compared
    in_flight: int = 0  # records between two stages: not a difference
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, key: str, month: str | None = None) -> None:
        """Count one difference of ``kind`` about ``key`` (a transaction id, a category …)."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if month is not None:
            months = self.by_month.setdefault(month, {})
            months[kind] = months.get(kind, 0) + 1
        kept = self.examples.setdefault(kind, [])
        if len(kept) < EXAMPLES:
            kept.append(key)

    @property
    def differences(self) -> int:
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "agree": self.differences == 0,
            "checked": self.checked,
            "differences": dict(sorted(self.counts.items())),
            "in_flight": self.in_flight,
        }
        if self.by_month:
            out["by_month"] = {m: dict(sorted(k.items())) for m, k in sorted(self.by_month.items())}
        if self.examples:
            out["examples"] = {k: sorted(v) for k, v in sorted(self.examples.items())}
        if self.notes:
            out["notes"] = list(self.notes)
        return out


@dataclass
class Report:
    """Every comparison of one run, and what ``--repair`` did."""

    namespace: str
    sections: list[Section]
    repairs: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds

    @property
    def agree(self) -> bool:
        return all(s.differences == 0 for s in self.sections)

    def section(self, name: str) -> Section:
        return next(s for s in self.sections if s.name == name)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "namespace": self.namespace,
            "agree": self.agree,
            "seconds": round(self.seconds, 2),
        }
        if self.timings:
            out["timings"] = {k: round(v, 2) for k, v in self.timings.items()}
        out.update({s.name: s.to_json() for s in self.sections})
        if self.repairs:
            out["repair"] = self.repairs
        return out
