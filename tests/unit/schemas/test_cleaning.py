"""CONTRACT §1: every accepted form and every rejection, property-based where it pays."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from schemas import Accepted, Rejection, parse_message
from schemas.cleaning import (
    CleaningError,
    clean_amount,
    clean_category,
    clean_date,
    clean_id,
    clean_status,
    clean_updated_at,
)

UPDATED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def record(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "transaction_id": "t1",
        "customer_id": "c1",
        "product_category": "Books",
        "transaction_amount": "10.00",
        "transaction_date": "2024-05-31",
        "status": "approved",
        "updated_at": "2024-06-01T12:00:00Z",
    }
    base.update(over)
    return base


def reason_of(obj: Any) -> str:
    [result] = parse_message(json.dumps(obj).encode())
    assert isinstance(result, Rejection), result
    return result.reason


# --- transaction_id / customer_id ---------------------------------------------------------


@given(st.text(min_size=1, max_size=100).filter(lambda s: s.strip() != ""))
def test_ids_accept_non_empty_strings_trimmed(text: str) -> None:
    assert clean_id(f"  {text}\t", "transaction_id") == text.strip()


@given(st.integers())
def test_ids_accept_integers_as_text(number: int) -> None:
    assert clean_id(number, "customer_id") == str(number)


@pytest.mark.parametrize("value", ["", "   ", None, True, 1.5, [], {}, "x" * 129], ids=repr)
@pytest.mark.parametrize("field", ["transaction_id", "customer_id"])
def test_ids_reject(field: str, value: Any) -> None:
    assert reason_of(record(**{field: value})) in (f"invalid_{field}", f"missing_{field}")


# --- product_category -----------------------------------------------------------------------


@given(st.lists(st.text(alphabet="aBcDé ÜxYz", min_size=1, max_size=8), min_size=1, max_size=4))
def test_category_lowercased_trimmed_and_folded(words: list[str]) -> None:
    raw = " \t ".join(words)
    cleaned = clean_category(f"  {raw}  ")
    assert cleaned == (" ".join(raw.split()).lower() or "uncategorized")
    assert "  " not in cleaned and cleaned == cleaned.strip()


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"], ids=repr)
def test_category_null_or_empty_is_uncategorized(value: Any) -> None:
    assert clean_category(value) == "uncategorized"


def test_category_missing_is_uncategorized() -> None:
    obj = record()
    del obj["product_category"]
    [result] = parse_message(json.dumps(obj).encode())
    assert isinstance(result, Accepted)
    assert result.transaction.product_category == "uncategorized"


@pytest.mark.parametrize("value", [1, 2.5, True, ["a"], {"a": 1}], ids=repr)
def test_category_rejects_non_strings(value: Any) -> None:
    assert reason_of(record(product_category=value)) == "invalid_product_category"


def test_category_keeps_accents_distinct() -> None:
    assert clean_category("Café") != clean_category("Cafe")


# --- transaction_amount ---------------------------------------------------------------------

cents_st = st.integers(min_value=1, max_value=100_000_000)


def fmt(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def commas(cents: int) -> str:
    return f"{cents // 100:,}.{cents % 100:02d}"


@given(cents_st)
def test_amount_plain_string(cents: int) -> None:
    assert clean_amount(fmt(cents)) == cents


@given(cents_st, st.sampled_from(["{}", "${}", "{} USD", " {} ", "${} USD", "{}USD"]))
def test_amount_dirty_string_forms(cents: int, form: str) -> None:
    assert clean_amount(form.format(commas(cents))) == cents
    assert clean_amount(form.format(fmt(cents))) == cents


@given(cents_st)
def test_amount_json_number_is_decimal_not_float(cents: int) -> None:
    text = json.dumps(record(transaction_amount=0)).replace(
        '"transaction_amount": 0', f'"transaction_amount": {fmt(cents)}'
    )
    [result] = parse_message(text.encode())
    assert isinstance(result, Accepted)
    assert result.transaction.amount_cents == cents


@given(st.decimals(min_value=Decimal("0.005"), max_value=Decimal("999999.99"), places=3))
def test_amount_rounds_half_up_to_cents(value: Decimal) -> None:
    expected = int(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP) * 100)
    assert clean_amount(str(value)) == expected
    assert clean_amount(value) == expected


def test_amount_half_up_examples() -> None:
    assert clean_amount("0.005") == 1
    assert clean_amount("2.675") == 268  # a float would give 2.67
    assert clean_amount("1,234.50") == 123450
    assert clean_amount("1000000") == 100_000_000
    assert clean_amount(12) == 1200


@pytest.mark.parametrize(
    "value",
    [
        "1.234,50",
        "1,23.00",
        "12,34",
        "abc",
        "",
        "  ",
        "--1",
        "1.2.3",
        "$",
        "USD",
        "€5",
        "1e3",
        "0x10",
        "１２",
        True,
        None,
        [],
        {"v": 1},
        "12 EUR",
    ],
    ids=repr,
)
def test_amount_rejects_unreadable(value: Any) -> None:
    with pytest.raises(CleaningError) as err:
        clean_amount(value)
    assert err.value.reason == "invalid_amount"


@pytest.mark.parametrize(
    "value",
    ["0", "0.00", "0.004", "-5", "1000000.01", "1,000,000.01", 0, -1, Decimal("1e400")],
    ids=repr,
)
def test_amount_rejects_out_of_range(value: Any) -> None:
    with pytest.raises(CleaningError) as err:
        clean_amount(value)
    assert err.value.reason in ("amount_out_of_range", "invalid_amount")


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"-0"])
def test_amount_json_constants_and_huge_numbers_do_not_crash(raw: bytes) -> None:
    text = json.dumps(record(transaction_amount=0)).replace(
        '"transaction_amount": 0', '"transaction_amount": ' + raw.decode()
    )
    [result] = parse_message(text.encode())
    assert isinstance(result, Rejection)


@given(cents_st.filter(lambda c: c > 100_000))
def test_amount_european_format_is_invalid(cents: int) -> None:
    european = commas(cents).replace(",", "#").replace(".", ",").replace("#", ".")
    assume(european != commas(cents))
    with pytest.raises(CleaningError):
        clean_amount(european)


# --- transaction_date -----------------------------------------------------------------------

dates_st = st.dates(min_value=date(2000, 1, 1), max_value=date(2024, 6, 2))


@given(dates_st)
def test_date_iso_and_slashes(day: date) -> None:
    assert clean_date(day.isoformat(), UPDATED) == day
    assert clean_date(day.strftime("%Y/%m/%d"), UPDATED) == day


@given(
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2024, 6, 1)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_date_time_with_offset_is_converted_to_utc_date(moment: datetime, offset_min: int) -> None:
    tz = timezone(timedelta(minutes=offset_min))
    aware = moment.replace(tzinfo=tz)
    expected = aware.astimezone(UTC).date()
    assume(date(2000, 1, 1) <= expected <= date(2024, 6, 2))
    assert clean_date(aware.isoformat(), UPDATED) == expected


def test_date_offset_crosses_midnight() -> None:
    assert clean_date("2024-05-31T23:30:00-02:00", UPDATED) == date(2024, 6, 1)
    assert clean_date("2024-06-01T01:00:00+05:00", UPDATED) == date(2024, 5, 31)
    assert clean_date("2024-05-31T10:00:00Z", UPDATED) == date(2024, 5, 31)


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2024, 6, 2, 23, 59)))
def test_date_epoch_seconds_and_milliseconds(moment: datetime) -> None:
    aware = moment.replace(tzinfo=UTC, microsecond=0)
    seconds = int(aware.timestamp())
    assert clean_date(seconds, UPDATED) == aware.date()
    assert clean_date(seconds * 1000 + 999, UPDATED) == aware.date()


def test_date_limits() -> None:
    assert clean_date("2000-01-01", UPDATED) == date(2000, 1, 1)
    assert clean_date("2024-06-02", UPDATED) == date(2024, 6, 2)  # updated_at date + 1
    for bad in ("1999-12-31", "2024-06-03", 946684799, -1):
        with pytest.raises(CleaningError) as err:
            clean_date(bad, UPDATED)
        assert err.value.reason == "date_out_of_range"


@pytest.mark.parametrize(
    "value",
    [
        "2024-13-01",
        "2024-02-30",
        "2024-06-01T10:00:00",
        "31/05/2024",
        "2024-05/31",
        "May 31 2024",
        "",
        1.5e9,
        True,
        [],
        {"d": 1},
        "2024-5-31",
    ],
    ids=repr,
)
def test_date_rejects_unreadable(value: Any) -> None:
    with pytest.raises(CleaningError) as err:
        clean_date(value, UPDATED)
    assert err.value.reason in ("invalid_date", "date_out_of_range")


# --- status ---------------------------------------------------------------------------------


@given(
    st.sampled_from(["pending", "approved", "declined", "reversed"]),
    st.text(alphabet=" \t", max_size=3),
    st.booleans(),
)
def test_status_any_case_and_spacing(status: str, pad: str, upper: bool) -> None:
    text = status.upper() if upper else status.capitalize()
    assert clean_status(f"{pad}{text}{pad}") == status


@pytest.mark.parametrize(
    "value", ["", "done", "approve", "pend ing", 1, None, True, ["pending"]], ids=repr
)
def test_status_rejects(value: Any) -> None:
    with pytest.raises(CleaningError):
        clean_status(value)


# --- updated_at -----------------------------------------------------------------------------


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)
def test_updated_at_offsets_normalised_to_utc(moment: datetime, offset_min: int) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    assert clean_updated_at(aware.isoformat()) == aware.astimezone(UTC)
    assert clean_updated_at(aware.astimezone(UTC).isoformat().replace("+00:00", "Z")) == aware


@pytest.mark.parametrize(
    "value",
    ["2024-06-01T12:00:00", "2024-06-01", "yesterday", "", 1717243200, None, True],
    ids=repr,
)
def test_updated_at_rejects(value: Any) -> None:
    obj = record(updated_at=value)
    assert reason_of(obj) in ("invalid_updated_at", "missing_updated_at")


# --- whole records and messages -------------------------------------------------------------


def test_missing_required_fields_each_have_a_reason() -> None:
    for field in (
        "transaction_id",
        "customer_id",
        "transaction_amount",
        "transaction_date",
        "status",
        "updated_at",
    ):
        obj = record()
        del obj[field]
        assert reason_of(obj) == f"missing_{field}"


def test_extra_fields_are_ignored() -> None:
    [result] = parse_message(json.dumps(record(note="x", nested={"a": [1]})).encode())
    assert isinstance(result, Accepted)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\xff\xfe{}", "not_utf8"),
        (b"not json", "not_json"),
        (b"[1, 2", "not_json"),
        (b"42", "not_an_object"),
        (b'"a string"', "not_an_object"),
        (b"null", "not_an_object"),
        (b"[" * 100_000 + b"]" * 100_000, "not_json"),
        (json.dumps(record(transaction_id="x" * 1_000_000)).encode(), "invalid_transaction_id"),
    ],
    ids=["empty", "non-utf8", "not-json", "truncated", "number", "string", "null", "deep", "huge"],
)
def test_poison_messages_are_rejections_not_crashes(raw: bytes, reason: str) -> None:
    results = parse_message(raw)
    assert all(isinstance(r, Rejection) for r in results)
    assert results[0].reason == reason


def test_batch_keeps_order_and_exact_raw_of_rejections() -> None:
    good = record()
    text = '[ {"a": 1} ,' + json.dumps(good) + ', 7, "x"]'
    results = parse_message(text.encode())
    assert [type(r).__name__ for r in results] == [
        "Rejection",
        "Accepted",
        "Rejection",
        "Rejection",
    ]
    assert isinstance(results[0], Rejection) and results[0].raw == b'{"a": 1}'
    assert isinstance(results[2], Rejection) and results[2].raw == b"7"
    assert [r.index for r in results] == [0, 1, 2, 3]


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=20)
        | st.floats(allow_nan=False),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=30,
    )
)
def test_any_json_value_never_crashes(value: Any) -> None:
    results = parse_message(json.dumps(value).encode())
    assert results or value == []  # an empty batch holds no record
    assert all(isinstance(r, Accepted | Rejection) for r in results)


@given(st.binary(max_size=200))
def test_any_bytes_never_crash(raw: bytes) -> None:
    assert parse_message(raw)


@given(
    st.dictionaries(
        st.sampled_from(
            [
                "transaction_id",
                "customer_id",
                "product_category",
                "transaction_amount",
                "transaction_date",
                "status",
                "updated_at",
            ]
        ),
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=30)
        | st.lists(st.integers(), max_size=2),
    )
)
def test_any_field_values_never_crash(obj: dict[str, Any]) -> None:
    [result] = parse_message(json.dumps(obj).encode())
    assert isinstance(result, Accepted | Rejection)
