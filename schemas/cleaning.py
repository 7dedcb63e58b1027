"""CONTRACT §1 cleaning rules as pure functions: one dirty API value in, one clean value out.

Each function raises ``CleaningError(reason, detail)`` for a value the contract rejects.
Money never passes through a float: JSON numbers arrive as ``int`` or ``Decimal``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

MIN_DATE = date(2000, 1, 1)
MAX_CENTS = 100_000_000  # 1,000,000.00
MAX_ID_LENGTH = 128  # the contract is silent; MySQL needs a bound (VARCHAR(128))
MAX_CATEGORY_LENGTH = 128
MAX_TEXT_INPUT = 1024  # longer amount/date/status strings are rejected before any parsing
UNCATEGORIZED = "uncategorized"
STATUSES = frozenset({"pending", "approved", "declined", "reversed"})
EPOCH_MS_THRESHOLD = 100_000_000_000  # >= this is milliseconds (1e11 s is the year 5138)

_CENT = Decimal("0.01")
# digits with optional well-placed thousands commas, optional fraction
_AMOUNT_RE = re.compile(
    r"^\$?(?P<num>(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?)(?:\s*USD)?$", re.ASCII
)
_DATE_RE = re.compile(r"^([0-9]{4})[-/]([0-9]{2})[-/]([0-9]{2})$", re.ASCII)


class CleaningError(ValueError):
    """A field value the contract rejects; ``reason`` is the machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def clean_id(value: Any, field: str) -> str:
    """Non-empty string (trimmed) or integer → string."""
    if isinstance(value, bool):
        raise CleaningError(f"invalid_{field}", f"{field} must be a string or integer, got bool")
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise CleaningError(f"invalid_{field}", f"{field} is empty")
        if len(text) > MAX_ID_LENGTH:
            raise CleaningError(f"invalid_{field}", f"{field} longer than {MAX_ID_LENGTH}")
        return text
    raise CleaningError(
        f"invalid_{field}", f"{field} must be a string or integer, got {type(value).__name__}"
    )


def clean_category(value: Any) -> str:
    """Lower case, trimmed, inner white space folded; null/empty → ``uncategorized``."""
    if value is None:
        return UNCATEGORIZED
    if not isinstance(value, str):
        raise CleaningError(
            "invalid_product_category",
            f"product_category must be a string, got {type(value).__name__}",
        )
    text = " ".join(value.split()).lower()
    if not text:
        return UNCATEGORIZED
    if len(text) > MAX_CATEGORY_LENGTH:
        raise CleaningError(
            "invalid_product_category", f"product_category longer than {MAX_CATEGORY_LENGTH}"
        )
    return text


def clean_amount(value: Any) -> int:
    """Amount → integer cents (round half up); must be > 0 and ≤ 1,000,000.00."""
    if isinstance(value, bool):
        raise CleaningError("invalid_amount", "transaction_amount must be a number, got bool")
    if isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, Decimal):
        number = value
    elif isinstance(value, str):
        if len(value) > MAX_TEXT_INPUT:
            raise CleaningError("invalid_amount", "transaction_amount string too long")
        match = _AMOUNT_RE.match(value.strip())
        if match is None:
            raise CleaningError("invalid_amount", f"unreadable transaction_amount {_short(value)}")
        number = Decimal(match["num"].replace(",", ""))
    else:
        raise CleaningError(
            "invalid_amount", f"transaction_amount must be a number, got {type(value).__name__}"
        )
    if not number.is_finite():
        raise CleaningError("invalid_amount", f"transaction_amount is {number}")
    if number <= 0 or number > 1_000_000:
        raise CleaningError("amount_out_of_range", f"transaction_amount {number} not in (0, 1e6]")
    try:
        cents = int(number.quantize(_CENT, rounding=ROUND_HALF_UP) * 100)
    except InvalidOperation:  # pragma: no cover - bounded above, kept as a guard
        raise CleaningError("invalid_amount", "transaction_amount not representable") from None
    if cents <= 0:
        raise CleaningError("amount_out_of_range", f"transaction_amount {number} rounds to 0.00")
    return cents


def clean_updated_at(value: Any) -> datetime:
    """ISO-8601 date-time with ``Z`` or an offset → aware UTC datetime."""
    if not isinstance(value, str) or len(value) > 64:
        raise CleaningError(
            "invalid_updated_at", f"updated_at must be an ISO-8601 string, got {_short(value)}"
        )
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise CleaningError(
            "invalid_updated_at", f"unreadable updated_at {_short(value)}"
        ) from None
    if parsed.tzinfo is None:
        raise CleaningError(
            "invalid_updated_at", f"updated_at needs a time and Z or an offset: {_short(value)}"
        )
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise CleaningError(
            "invalid_updated_at", f"updated_at out of range {_short(value)}"
        ) from None


def _date_from_epoch(value: int) -> date:
    seconds = value / 1000 if value >= EPOCH_MS_THRESHOLD else value
    if seconds < 0:
        raise CleaningError("date_out_of_range", f"transaction_date epoch {value} is negative")
    try:
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=int(seconds))).date()
    except OverflowError:
        raise CleaningError(
            "date_out_of_range", f"transaction_date epoch {value} too large"
        ) from None


def parse_date(value: Any) -> date:
    """One of the accepted date forms → calendar date in UTC (range not checked)."""
    if isinstance(value, bool):
        raise CleaningError("invalid_date", "transaction_date must be a date, got bool")
    if isinstance(value, int):
        return _date_from_epoch(value)
    if not isinstance(value, str) or len(value) > 64:
        raise CleaningError("invalid_date", f"transaction_date unreadable: {_short(value)}")
    text = value.strip()
    match = _DATE_RE.match(text)
    if match is not None:
        if text[4] != text[7]:
            raise CleaningError(
                "invalid_date", f"transaction_date mixes separators: {_short(value)}"
            )
        try:
            return date(int(match[1]), int(match[2]), int(match[3]))
        except ValueError:
            raise CleaningError("invalid_date", f"no such date {_short(value)}") from None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise CleaningError(
            "invalid_date", f"transaction_date unreadable: {_short(value)}"
        ) from None
    if parsed.tzinfo is None:
        raise CleaningError(
            "invalid_date", f"transaction_date date-time needs Z or an offset: {_short(value)}"
        )
    try:
        return parsed.astimezone(UTC).date()
    except (OverflowError, ValueError):
        raise CleaningError(
            "date_out_of_range", f"transaction_date out of range {_short(value)}"
        ) from None


def clean_date(value: Any, updated_at: datetime) -> date:
    """Accepted date form → UTC date within [2000-01-01, updated_at's date + 1 day]."""
    day = parse_date(value)
    latest = updated_at.astimezone(UTC).date() + timedelta(days=1)
    if day < MIN_DATE or day > latest:
        raise CleaningError(
            "date_out_of_range", f"transaction_date {day} not in [{MIN_DATE}, {latest}]"
        )
    return day


def clean_status(value: Any) -> str:
    """One of the four statuses, any case, surrounding white space → lower case."""
    if isinstance(value, str) and len(value) <= MAX_TEXT_INPUT:
        status = value.strip().lower()
        if status in STATUSES:
            return status
    raise CleaningError("invalid_status", f"unknown status {_short(value)}")
