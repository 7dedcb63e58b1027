"""``isoformat`` of UTC times and of dates, memoised: the hot path's priciest formatting.

An aware ``datetime.isoformat()`` costs ~1.2 µs (it asks the tzinfo for its offset), a
``date.isoformat()`` ~0.5 µs, and the stream wrote each version's ``updated_at`` three
times (entry ids, ledger JSON, Redis state) and its date as often. The text of a UTC time
is noted once, when it is parsed from a served text in the extended layout
(``2026-11-20T10:11:12.123Z``: re-spelt, never re-formatted), and read back by value;
any other time is formatted as before. ``tests/unit/schemas/test_isotext.py`` compares
both on generated times and spellings.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

# Entries per generation: a full memo becomes the old one and a new one starts, so the
# last MEMO_SIZE times noted are always there (a batch's parse, state read and apply
# spell the same ones) and memory stays bounded (~10 MB at most).
MEMO_SIZE = 1 << 14

# what ``datetime.fromisoformat`` reads as a UTC time whose ``isoformat`` is this text,
# re-spelt: the fraction padded to 6 digits (absent when zero), ``Z`` as ``+00:00``
_EXTENDED_UTC = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?(?:Z|\+00:00)",
    re.ASCII,
)
_UTC: dict[datetime, str] = {}
_UTC_OLD: dict[datetime, str] = {}
_DAY: dict[date, str] = {}


def remember(moment: datetime, served: str) -> None:
    """Note ``moment.isoformat()``, ``moment`` being ``datetime.fromisoformat(served)``
    (a served text in another layout notes nothing)."""
    if moment.tzinfo is UTC and _EXTENDED_UTC.fullmatch(served) is not None:
        body = served[:-1] if served[-1] == "Z" else served[:-6]
        if not moment.microsecond:
            body = body[:19]  # isoformat writes no fraction then
        elif len(body) < 26:
            body = body.ljust(26, "0")
        _note(moment, body + "+00:00")


def _note(moment: datetime, text: str) -> None:
    global _UTC, _UTC_OLD
    if len(_UTC) >= MEMO_SIZE:
        _UTC_OLD, _UTC = _UTC, {}
    _UTC[moment] = text


def utc_iso(moment: datetime) -> str:
    """``moment.isoformat()`` (from the memo for a UTC time noted by ``remember``)."""
    if moment.tzinfo is UTC:  # an equal time in another zone is spelt differently
        text = _UTC.get(moment) or _UTC_OLD.get(moment)
        if text is not None:
            return text
    return moment.isoformat()


def day_iso(day: date) -> str:
    """``day.isoformat()``, memoised (a feed spans few distinct dates)."""
    text = _DAY.get(day) if type(day) is date else None  # a datetime is a date too
    if text is None:
        text = day.isoformat()
        if type(day) is date:
            if len(_DAY) >= MEMO_SIZE:
                _DAY.clear()
            _DAY[day] = text
    return text
