"""Opt-in cleaning rules: forms CONTRACT §1 does not accept, each enabled by name.

``TXNPIPE_CLEANING_RULES`` (a comma list, empty by default) turns them on, so §1 behaviour
is unchanged unless an operator decides otherwise. A rule is consulted only for a record
§1 rejects with the reason it fixes: it rewrites that one field into an accepted form and
the record is cleaned again by the §1 rules, so every other check (ranges, the other
fields) still applies. After a rule is turned on for the stream,
``txnpipe dlq redrive --reason <its reason>`` brings in the dead letters it fixes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.errors import ConfigError
from schemas.cleaning import CleaningError

Rules = frozenset[str]
NO_RULES: Rules = frozenset()


@dataclass(frozen=True)
class Rule:
    """One accepted form beyond §1: the reason it fixes and how it rewrites the field."""

    name: str
    reason: str
    field: str
    rewrite: Callable[[Any], Any | None]  # the served value → an accepted form, or None
    doc: str


def _naive_date_time_as_utc(value: Any) -> str | None:
    """``2025-11-25T10:00:00`` (no zone) → ``2025-11-25``: the date it has in UTC."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    text = value.strip()
    if len(text) <= 10:  # a plain date is §1's business (and already accepted or not)
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        return None
    return parsed.date().isoformat()


RULES: dict[str, Rule] = {
    rule.name: rule
    for rule in (
        Rule(
            "naive-date-utc",
            "invalid_date",
            "transaction_date",
            _naive_date_time_as_utc,
            "a transaction_date given as an ISO-8601 date-time without Z or an offset "
            "is read as UTC",
        ),
    )
}


def enabled(names: str) -> Rules:
    """The rules named in a comma list (the ``cleaning_rules`` setting); ConfigError if unknown."""
    wanted = frozenset(n.strip().lower() for n in names.split(",") if n.strip())
    unknown = sorted(wanted - RULES.keys())
    if unknown:
        raise ConfigError(
            f"TXNPIPE_CLEANING_RULES: unknown rule(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(RULES))}"
        )
    return wanted


def rewrite(obj: Any, error: CleaningError, rules: Rules) -> tuple[str, dict[str, Any]] | None:
    """(rule name, the record rewritten) by the first enabled rule that fixes ``error``."""
    if not isinstance(obj, dict):
        return None
    for name in sorted(rules):
        rule = RULES[name]
        if rule.reason != error.reason or rule.field not in obj:
            continue
        value = rule.rewrite(obj[rule.field])
        if value is not None:
            return name, {**obj, rule.field: value}
    return None
