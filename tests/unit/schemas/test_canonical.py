"""The fast path equals the full rules: same value or same error, field by field and whole.

(The conftest beside this file runs it, like every cleaning test, under both paths; the
comparisons here call both explicitly, so either run checks the same thing.)
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from schemas import canonical, cleaning
from schemas.transaction import (
    REQUIRED_FIELDS,
    clean_record,
    clean_record_fast,
    fast_path,
    parse_message,
    use_fast_path,
)
from tests.unit.stream_app.history import batches, generate

UPDATED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def outcome(fn: Callable[..., Any], *args: Any) -> tuple[str, Any]:
    try:
        return "ok", fn(*args)
    except cleaning.CleaningError as exc:
        return "error", (exc.reason, exc.detail)


def same(fast: Callable[..., Any], full: Callable[..., Any], *args: Any) -> None:
    assert outcome(fast, *args) == outcome(full, *args), args


# canonical forms, their near misses, and anything JSON can carry
texts = st.text(max_size=12) | st.sampled_from(["", " ", "\t", "\u00a0", "\u2028", "x" * 129])
scalars = st.none() | st.booleans() | st.integers() | st.decimals(allow_nan=True) | texts
plain_amounts = st.integers(min_value=0, max_value=10**9).map(lambda c: f"{c // 100}.{c % 100:02d}")
amount_forms = st.sampled_from(
    ["{}", " {} ", "${}", "{} USD", "${} USD", "{}USD", "0{}", "{}0", "\t${}  USD\n", " {}USD ",
     "$ {}", "{} usd", "{}\u00a0", "\x1c{}", "\u2003${} USD", "{} USD\x0b", "{}\x85", "-{}",
     "$${}", "{} USD USD", "0000{}"]
)  # fmt: skip


@given(scalars | texts.map(lambda t: f" {t} "))
def test_ids(value: Any) -> None:
    same(canonical.ident, cleaning.clean_id, value, "transaction_id")


@given(scalars | st.sampled_from(["Books", "books", " home  goods ", "ÉLAN", "İ", "ß"]))
def test_category(value: Any) -> None:
    same(canonical.category, cleaning.clean_category, value)
    same(canonical.category, cleaning.clean_category, value)  # the memo's answer too


@given(scalars | st.sampled_from(["approved", " PENDING ", "Declined", "reversed\n", "ok"]))
def test_status(value: Any) -> None:
    same(canonical.status, cleaning.clean_status, value)
    same(canonical.status, cleaning.clean_status, value)


@given(
    plain_amounts.flatmap(lambda a: amount_forms.map(lambda f: f.format(a)))
    | st.integers(min_value=0, max_value=10**9).map(lambda c: f"{c // 100:,}.{c % 100:02d}")
    | st.decimals(min_value=Decimal("-1"), max_value=Decimal("1000001"), places=2)
    | st.decimals(min_value=Decimal("0"), max_value=Decimal("2000000"))
    | st.decimals(allow_nan=True, allow_infinity=True)
    | plain_amounts.map(Decimal)
    | scalars
)
def test_amount(value: Any) -> None:
    same(canonical.cents, cleaning.clean_amount, value)


@given(
    st.dates().map(lambda d: d.isoformat())
    | st.dates().map(lambda d: d.strftime("%Y/%m/%d"))
    | st.datetimes(timezones=st.just(UTC) | st.none()).map(lambda m: m.isoformat())
    | st.integers(min_value=-(10**13), max_value=10**13)
    | scalars,
    st.datetimes(min_value=datetime(1999, 1, 1), max_value=datetime(2100, 1, 1)),
    st.sampled_from([UTC, timezone(timedelta(hours=5))]),
)
def test_date(value: Any, updated: datetime, tz: timezone) -> None:
    same(canonical.day, cleaning.clean_date, value, updated.replace(tzinfo=tz))
    same(canonical.day, cleaning.clean_date, value, updated.replace(tzinfo=tz))


@given(
    st.datetimes(
        timezones=st.just(UTC)
        | st.none()
        | st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
    ).map(lambda m: m.isoformat())
    | st.datetimes(timezones=st.just(UTC)).map(lambda m: m.isoformat().replace("+00:00", "Z"))
    | st.datetimes(timezones=st.just(UTC)).map(lambda m: f" {m.isoformat()}")
    | scalars
)
def test_updated_at(value: Any) -> None:
    same(canonical.moment, cleaning.clean_updated_at, value)


def test_whole_records_of_a_dirty_feed() -> None:
    """Every record the test feed serves (dirty forms, poison) cleans the same both ways."""
    hist = generate(7, 3000, now=datetime(2026, 6, 1, tzinfo=UTC), invalid_rate=0.2)
    for record in hist.served:
        obj = json.loads(json.dumps(record, default=str)) if isinstance(record, dict) else record
        same(clean_record_fast, clean_record, obj)


@given(st.dictionaries(st.sampled_from([*REQUIRED_FIELDS, "product_category"]), scalars))
def test_whole_records_of_any_field_values(obj: dict[str, Any]) -> None:
    same(clean_record_fast, clean_record, obj)


def parsed(value: bytes) -> object:
    """``parse_message``'s results, or what it raised (the stream DLQs those whole)."""
    try:
        return parse_message(value)
    except Exception as exc:
        return type(exc), str(exc)


def test_parse_message_same_results_both_ways() -> None:
    """The batches of a dirty feed (and broken copies of them) parse to equal results,
    rejections' reasons, details and raw bytes included."""
    hist = generate(8, 2000, now=datetime(2026, 6, 1, tzinfo=UTC))
    rng = random.Random(8)
    values = [v for _, _, v in batches(hist.served, 6, page=200)]
    values += [v[: rng.randrange(len(v))] for v in values[:20]]  # truncated
    values += [v.replace(b'"', b"'", 1) for v in values[:5]]  # not JSON
    values += [b'[{"transaction_id": "\\ud800"}]', b"[" * 5000, b"[123456789012345678901234567890]"]
    values += [b'[{"transaction_amount": 1e99999999999999999999}]', b"[1e-99999999999999999999]"]
    # rejections' raw slices: odd white space, nesting, escapes, UTF-8, a record msgspec
    # refuses (the stdlib reads the message, and walks it for the slices)
    values += [
        b'[ {"transaction_id": "a"} ,\n\t{"x": [1, {"y": "\\u00e9]"}]} , 3 , "caf\xc3\xa9" ]',
        b'\r\n[{"status": "x\\"y"},{},[],null,true,-0.0,"]" ]\n',
        b'[{"transaction_amount": 1e99999999999999999999}, {"a": 1}, 7, {"b": "\xe2\x82\xac"}]',
        values[0][:-1] + b', {"customer_id": "\xe2\x82\xac"}, 12 ]',
    ]
    was = fast_path()
    try:
        use_fast_path(True)
        fast = [parsed(v) for v in values]
        use_fast_path(False)
        full = [parsed(v) for v in values]
    finally:
        use_fast_path(was)
    assert fast == full
