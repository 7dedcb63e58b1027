"""The fast path of CONTRACT §1 cleaning: a value already in canonical form costs a check.

Each function here returns exactly what its full rule in ``schemas.cleaning`` returns, for
EVERY input: it handles the canonical form (trimmed strings, ``1234.50``, an ISO date, a
``Z``/``+00:00`` time) or a value seen before (a bounded memo of a pure function), and hands
anything else to the full rule, which returns the same value or raises the same error.
``tests/unit/schemas`` runs the cleaning tests against both paths and compares them on
generated values.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from schemas.cleaning import (
    MAX_CATEGORY_LENGTH,
    MAX_CENTS,
    MAX_ID_LENGTH,
    MIN_DATE,
    STATUSES,
    UNCATEGORIZED,
    clean_amount,
    clean_category,
    clean_date,
    clean_id,
    clean_status,
    clean_updated_at,
    parse_date,
)
from schemas.isotext import remember

MEMO_SIZE = 4096  # entries per memo; a full memo starts again (memory stays bounded)
_ONE_DAY = timedelta(days=1)
# the full rule's reading (white space stripped, ``$``, thousands commas, `` USD``) of an
# amount with exactly two decimals; ASCII white space only: str.strip's other kinds go
# to the full rule
_TWO_PLACES = re.compile(
    r"\s*\$?([0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)\.([0-9]{2})(?:\s*USD)?\s*", re.ASCII
)

_STATUS: dict[str, str] = {s: s for s in STATUSES}
_CATEGORY: dict[str, str] = {}
_DATE: dict[str | int, date] = {}


def _remember(memo: dict[Any, Any], key: Any, value: Any) -> None:
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[key] = value


def ident(value: Any, field: str) -> str:
    """``clean_id``: a trimmed non-empty string or an int costs a strip or a ``str``."""
    kind = type(value)
    if kind is str:
        text: str = value.strip()
        if text and len(text) <= MAX_ID_LENGTH:
            return text
    elif kind is int:
        return str(value)
    return clean_id(value, field)


def category(value: Any) -> str:
    """``clean_category``, memoised (a feed has few categories)."""
    if type(value) is str:
        known = _CATEGORY.get(value)
        if known is not None:
            return known
        text = clean_category(value)
        if len(value) <= 4 * MAX_CATEGORY_LENGTH:
            _remember(_CATEGORY, value, text)
        return text
    if value is None:
        return UNCATEGORIZED
    return clean_category(value)


def status(value: Any) -> str:
    """``clean_status``, memoised (four statuses in a few spellings)."""
    if type(value) is str:
        known = _STATUS.get(value)
        if known is not None:
            return known
        text = clean_status(value)
        if len(value) <= 64:
            _remember(_STATUS, value, text)
        return text
    return clean_status(value)


def cents(value: Any) -> int:
    """``clean_amount``: a two-place amount (``1234.50``, ``$1,234.50``, `` 12.30 USD ``, the
    JSON number 1234.50) read as integer cents without a Decimal quantize."""
    kind = type(value)
    if kind is str:
        match = _TWO_PLACES.fullmatch(value) if len(value) <= 64 else None
        if match is not None:
            whole, fraction = match.groups()
            result = int(whole.replace(",", "")) * 100 + int(fraction)
            if 0 < result <= MAX_CENTS:
                return result
    elif kind is Decimal:
        number: Decimal = value
        if number.is_finite() and 0 < number <= 1_000_000:
            scaled = number.scaleb(2)
            if scaled == scaled.to_integral_value():
                return int(scaled)
    return clean_amount(value)


def day(value: Any, updated_at: datetime) -> date:
    """``clean_date``: the parse (pure) is memoised by the served value; the range is checked
    against this record's ``updated_at`` every time."""
    kind = type(value)
    if kind is str or kind is int:
        parsed = _DATE.get(value)
        if parsed is None:
            parsed = parse_date(value)  # raises exactly what clean_date raises first
            if kind is int or len(value) <= 64:
                _remember(_DATE, value, parsed)
        if updated_at.tzinfo is UTC and MIN_DATE <= parsed <= updated_at.date() + _ONE_DAY:
            return parsed
    return clean_date(value, updated_at)


def moment(value: Any) -> datetime:
    """``clean_updated_at``: an untrimmed-free ISO time in UTC needs no ``astimezone``."""
    if type(value) is str and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value)  # no white space accepted: strip is a no-op
        except ValueError:
            pass
        else:
            if parsed.tzinfo is UTC:
                remember(parsed, value)  # its isoformat, for the ledger JSON and the state
                return parsed
    return clean_updated_at(value)
