"""Clean versions → the bytes the API serves: every dirty form CONTRACT §1 accepts, and junk.

``record`` renders a clean version, choosing for each field either the canonical form or
one of the accepted dirty forms; whatever it picks, the contract's cleaning rules lead
back to the clean version. ``invalid`` renders a record the contract rejects, one kind at
a time. Both draw only from the RNG they are given, so the bytes are deterministic.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from producers.simulator.model import Version

_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DUMPS = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def iso_ms(ms: int, offset_minutes: int = 0) -> str:
    """``ms`` since the epoch as ISO-8601 with milliseconds, ``Z`` or a ``+hh:mm`` offset."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    moment = moment.replace(microsecond=(ms % 1000) * 1000)
    if offset_minutes == 0:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"
    local = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    return local.isoformat(timespec="milliseconds")


def _plain(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _commas(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


def amount_forms(rng: random.Random, cents: int) -> Any:
    """One accepted rendering of ``cents`` (JSON number or string)."""
    pick = rng.randrange(9)
    if pick == 0:
        return cents // 100 if cents % 100 == 0 else cents / 100  # shortest repr is exact here
    if pick == 1:
        return _plain(cents)
    if pick == 2:
        return _commas(cents)
    if pick == 3:
        return "$" + _commas(cents)
    if pick == 4:
        return _plain(cents) + " USD"
    if pick == 5:  # " 12.3 ": trailing zero dropped, spaces around
        text = _plain(cents).rstrip("0").rstrip(".")
        return f" {text} "
    if pick == 6:  # 12.345 rounds half up to 12.35
        return (cents * 10 - 5) / 1000
    if pick == 7:
        return "$" + _plain(cents)
    return _commas(cents) + " USD"


def date_forms(rng: random.Random, day: date) -> Any:
    """One accepted rendering of a calendar date (UTC)."""
    pick = rng.randrange(6)
    if pick == 0:
        return day.isoformat()
    if pick == 1:
        return day.strftime("%Y/%m/%d")
    day_ms = (day.toordinal() - _EPOCH_ORDINAL) * 86_400_000
    moment = day_ms + rng.randrange(86_400) * 1000
    if pick == 2:
        return iso_ms(moment).replace(".000Z", "Z")
    if pick == 3:  # an offset: the local date may differ, the UTC date does not
        return iso_ms(moment, rng.randrange(-24, 29) * 30)
    if pick == 4:
        return moment // 1000
    return moment + rng.randrange(1000)


def _id_forms(rng: random.Random, value: str) -> Any:
    pick = rng.randrange(4)
    if pick == 0 and value.isdigit() and not value.startswith("0"):
        return int(value)
    if pick == 1:
        return rng.choice((" ", "  ", "\t")) + value + rng.choice(("", " ", "\n"))
    return value


def _category_forms(rng: random.Random, category: str) -> tuple[bool, Any]:
    """(present, value): uncategorized may be missing, null, empty or blank."""
    if category == "uncategorized":
        pick = rng.randrange(5)
        return [(False, None), (True, None), (True, ""), (True, "   "), (True, "Uncategorized")][
            pick
        ]
    pick = rng.randrange(4)
    if pick == 0:
        return True, category.title()
    if pick == 1:
        return True, "  " + category.upper().replace(" ", "  ") + " "
    if pick == 2:
        return True, category.replace(" ", " \t ").capitalize()
    return True, category


def _status_forms(rng: random.Random, status: str) -> str:
    pick = rng.randrange(4)
    if pick == 0:
        return status.upper()
    if pick == 1:
        return f" {status.capitalize()} "
    if pick == 2:
        return status + "\t"
    return status


def _updated_forms(rng: random.Random, ms: int) -> str:
    pick = rng.randrange(4)
    if pick == 0:
        return iso_ms(ms).replace("Z", "+00:00")
    if pick == 1:
        return iso_ms(ms, rng.choice((-480, -300, 60, 120, 330, 540, 600)))
    return iso_ms(ms)


def canonical(version: Version) -> dict[str, Any]:
    """The clean form of a version, as a well-behaved API would serve it."""
    return {
        "transaction_id": version.transaction_id,
        "customer_id": version.customer_id,
        "product_category": version.category,
        "transaction_amount": _plain(version.amount_cents),
        "transaction_date": version.transaction_date.isoformat(),
        "status": version.status,
        "updated_at": iso_ms(version.updated_ms),
    }


def record(rng: random.Random, version: Version, dirty_rate: float) -> bytes:
    """Render one version; with probability ``dirty_rate`` some fields take dirty forms."""
    rec = canonical(version)
    if version.category == "uncategorized":
        present, value = _category_forms(rng, version.category)
        if present:
            rec["product_category"] = value
        else:
            del rec["product_category"]
    if rng.random() < dirty_rate:
        rec["transaction_id"] = _id_forms(rng, version.transaction_id)
        rec["customer_id"] = _id_forms(rng, version.customer_id)
        if version.category != "uncategorized":
            rec["product_category"] = _category_forms(rng, version.category)[1]
        rec["transaction_amount"] = amount_forms(rng, version.amount_cents)
        rec["transaction_date"] = date_forms(rng, version.transaction_date)
        rec["status"] = _status_forms(rng, version.status)
        rec["updated_at"] = _updated_forms(rng, version.updated_ms)
    elif rng.random() < 0.5:
        rec["transaction_amount"] = version.amount_cents / 100  # a plain JSON number
    return _DUMPS(rec).encode("utf-8")


# --- invalid records: (kind, mutate) where mutate edits a canonical dict in place -----------

Mutation = Callable[[random.Random, dict[str, Any], "Version"], Any]


def _set(field: str, *values: Any) -> Mutation:
    def mutate(rng: random.Random, rec: dict[str, Any], version: Version) -> None:
        rec[field] = rng.choice(values)

    return mutate


def _drop(field: str) -> Mutation:
    def mutate(rng: random.Random, rec: dict[str, Any], version: Version) -> None:
        del rec[field]

    return mutate


def _future_date(rng: random.Random, rec: dict[str, Any], version: Version) -> None:
    updated = datetime.fromisoformat(rec["updated_at"]).astimezone(UTC).date()
    rec["transaction_date"] = (updated + timedelta(days=rng.randrange(2, 30))).isoformat()


INVALID_KINDS: tuple[tuple[str, Mutation], ...] = (
    ("missing_transaction_id", _drop("transaction_id")),
    ("missing_customer_id", _drop("customer_id")),
    ("missing_transaction_amount", _drop("transaction_amount")),
    ("missing_transaction_date", _drop("transaction_date")),
    ("missing_status", _drop("status")),
    ("missing_updated_at", _drop("updated_at")),
    ("null_transaction_id", _set("transaction_id", None)),
    ("blank_transaction_id", _set("transaction_id", "", "   ")),
    ("non_text_transaction_id", _set("transaction_id", True, 12.5, [1], {"id": 1})),
    ("bad_customer_id", _set("customer_id", "", " ", False, None, {"id": 7}, 3.25)),
    ("amount_not_positive", _set("transaction_amount", 0, "0.00", -12.5, "-12.50", "0.004")),
    ("amount_too_large", _set("transaction_amount", 1_000_000.01, "1,000,000.01", "$2,500,000.00")),
    (
        "amount_unreadable",
        _set("transaction_amount", "twelve", "12,34.50", "1.2.3", "€12.00", "", "12.50 EUR", True),
    ),
    ("date_impossible", _set("transaction_date", "2025-02-30", "2024-13-01", "2025/04/31")),
    ("date_too_old", _set("transaction_date", "1999-12-31", "1970-01-01", 946_684_799)),
    ("date_future", _future_date),
    (
        "date_unreadable",
        _set(
            "transaction_date",
            "25/11/2025",
            "yesterday",
            "2025/11-25",
            "2025-11-25T10:00:00",
            False,
        ),
    ),
    ("status_unknown", _set("status", "cancelled", "", "approve", 1, "pending approval")),
    ("category_not_text", _set("product_category", 42, ["books"], {"name": "books"}, True)),
    ("updated_at_unreadable", _set("updated_at", "not a time", "2025-11-25", 1_732_000_000)),
    ("updated_at_naive", _set("updated_at", "2025-11-25T10:00:00", "2025-11-25 10:00:00.123")),
)
_NOT_OBJECTS: tuple[str, ...] = (
    '"oops"',
    "42",
    "null",
    "[1,2,3]",
    "true",
    '"{\\"transaction_id\\": 1}"',
)


def invalid(rng: random.Random, version: Version, feed_ms: int) -> tuple[str, bytes, str]:
    """An invalid record near ``version`` (often an invalid *update* of it).

    Returns (kind, bytes, the transaction id it sorts under: "" when unreadable).
    """
    if rng.random() < 0.08:
        return "not_an_object", rng.choice(_NOT_OBJECTS).encode(), ""
    rec = canonical(version)
    rec["updated_at"] = iso_ms(feed_ms)
    kind, mutate = INVALID_KINDS[rng.randrange(len(INVALID_KINDS))]
    mutate(rng, rec, version)
    tid = rec.get("transaction_id")
    key_id = tid if isinstance(tid, str) and tid.strip() else ""
    return kind, _DUMPS(rec).encode("utf-8"), key_id.strip()
