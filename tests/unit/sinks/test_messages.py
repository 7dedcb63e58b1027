"""The sink's msgspec decoder against pydantic's strict validation: same verdict, same values.

``sinks.messages.decode`` must accept exactly what ``LEDGER_ADAPTER`` accepts in strict mode
and read it the same; its dead letters must quote pydantic's words. Checked on the
stand-in stream's messages, each field swapped for awkward JSON values, and on fuzzed
text; the LOAD DATA lines of the fast renderer against the field-by-field reference.
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas import LEDGER_ADAPTER, DeadLetter, LedgerEntry, VersionRecord
from sinks import messages
from sinks.batch import Received, decode, fold, render
from sinks.tsv import current_tsv, ledger_tsv, version_tsv
from tests.unit.sinks.ledger_stream import Ledger, make_txn, random_ledger

STRICT = functools.partial(LEDGER_ADAPTER.validator.validate_json, strict=True)

# JSON values a foreign or broken producer might put in any field.
AWKWARD = [
    "null", "true", "false", "0", "1", "-1", "1.0", "-1.0", "1e2", "-0", "1.5",
    "9223372036854775807", "9223372036854775808", "18446744073709551616",
    "-9223372036854775809", "99999999999999999999999", '"1"', '"-1"', '"true"', '""',
    '"2026-01-01"', '"2026-02-30"', '"20260101"', '"2026-01-01Z"', '"0000-01-01"',
    '"2026-01-01T00:00:05Z"', '"2026-01-01T00:00:05.123456Z"', '"2026-01-01T00:00:05.1Z"',
    '"2026-01-01T00:00:05.1234567Z"', '"2026-01-01T00:00:05.000000001Z"',
    '"2026-01-01 00:00:05Z"', '"2026-01-01t00:00:05z"', '"2026-01-01T00:00:05"',
    '"2026-01-01T00:00:05+01:00"', '"2026-01-01T00:00:05-00:00"', '"2026-01-01T00:00:05+0100"',
    '"2026-01-01T24:00:00Z"', '"2026-01-01T23:59:60Z"', '"2026-01-01T00:00Z"',
    '"2026-01-01T00:00:05,5Z"', '"2026-01-01T00:00:05.Z"', '"1700000000"', "1700000000",
    '"0001-01-01T00:00:00Z"', '"9999-12-31T23:59:59.999999Z"', '"2026-01-01T00:00:05+23:59"',
    '"new"', '"reversal"', '"entry"', '"version"', '"approved"', '"Approved"', '"declined"',
    '"a\\tb"', '"a\\\\b"', '"\\u00e9"', '"\\ud800"', '"\\u0000"', '"caf\\u00e9"', '"x\\ny"',
    "[]", '["a"]', '["a","b"]', "[1]", "{}",
]  # fmt: skip


def verdict(decoder: object, raw: bytes) -> tuple[str, object]:
    try:
        value = decoder(raw)  # type: ignore[operator]
    except ValidationError as exc:
        return "refused", [(e["loc"], e["type"]) for e in exc.errors()]
    if isinstance(value, LedgerEntry | messages.Entry):
        kind, fields = "entry", messages.Entry.__struct_fields__
    else:
        kind, fields = "version", messages.Version.__struct_fields__
    return kind, {f: (type(getattr(value, f)), getattr(value, f)) for f in fields}


def assert_same(raw: bytes) -> None:
    """Both decoders agree on ``raw``: refused by both, or accepted with equal values."""
    fast, slow = verdict(messages.decode, raw), verdict(STRICT, raw)
    assert fast[0] == slow[0], raw
    if fast[0] == "refused":
        assert fast == slow, raw  # the fast path hands refusals to pydantic: same errors
        return
    for name, (kind, value) in slow[1].items():  # type: ignore[union-attr]
        fkind, fvalue = fast[1][name]  # type: ignore[index]
        # pydantic's own tzinfo class is not datetime.timezone; the instant must be equal
        assert fvalue == value and (fkind is kind or name.endswith("_at")), (name, raw)
        if isinstance(value, datetime):
            assert (value.utcoffset(), value.tzinfo is None) == (
                fvalue.utcoffset(),
                fvalue.tzinfo is None,
            ), (name, raw)


def stream_messages() -> list[LedgerEntry | VersionRecord]:
    ledger = random_ledger(40, seed=3)
    odd = Ledger()
    odd.accept(make_txn("t\\1\t", 0, customer_id="c\n1", product_category="caf\u00e9\0"))
    odd.accept(make_txn("t\\1\t", 5, amount_cents=7, customer_id="\u65e5\u672c"))
    t = make_txn("late", 1, updated_at=datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC))
    odd.accept(t)
    odd.accept(t.model_copy(update={"updated_at": t.updated_at + timedelta(microseconds=1)}))
    return ledger.messages + odd.messages


@pytest.mark.parametrize("message", stream_messages()[::7] + stream_messages()[-6:])
def test_every_field_swapped_for_an_awkward_value_gets_the_same_verdict(
    message: LedgerEntry | VersionRecord,
) -> None:
    base = json.loads(message.model_dump_json())
    assert_same(message.model_dump_json().encode())
    for name in base:
        for value in AWKWARD:
            fields = (
                f"{json.dumps(k)}:{value if k == name else json.dumps(v)}" for k, v in base.items()
            )
            assert_same(("{" + ",".join(fields) + "}").encode())
        missing = {k: v for k, v in base.items() if k != name}
        assert_same(json.dumps(missing).encode())
    assert_same(json.dumps({**base, "extra": 1}).encode())
    assert_same((json.dumps(base) + " ").encode())
    assert_same(json.dumps(base).encode() + b"x")


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_fuzzed_text_gets_the_same_verdict(data: st.DataObject) -> None:
    message = data.draw(st.sampled_from(stream_messages()))
    raw = message.model_dump_json().encode()
    cut = data.draw(st.integers(0, len(raw)))
    insert = data.draw(st.binary(max_size=4) | st.sampled_from([b".1234567", b"\\", b'"', b"Z"]))
    end = data.draw(st.integers(cut, min(len(raw), cut + 3)))
    assert_same(raw[:cut] + insert + raw[end:])


def test_a_refused_message_is_worded_by_pydantic() -> None:
    bad = b'{"kind":"entry","entry_id":"x","amount_cents":"1"}'
    letter = decode("t", 0, 1, None, bad)
    assert isinstance(letter, DeadLetter) and letter.reason == "invalid_ledger_message"
    with pytest.raises(ValidationError) as exc:
        STRICT(bad)
    assert letter.detail.startswith(".".join(map(str, exc.value.errors()[0]["loc"])))


def test_the_fast_lines_equal_the_field_by_field_reference() -> None:
    items = [
        decode("t", 0, i, None, m.model_dump_json().encode())
        for i, m in enumerate(stream_messages())
    ]
    assert all(isinstance(i, Received) for i in items)
    plan = render(fold(items, {}))
    assert plan.units
    for unit in plan.units:
        entry_lines, version_line = unit.lines()
        assert version_line == version_tsv(unit.version)
        assert unit.current() == current_tsv(unit.record)
        assert entry_lines == tuple(ledger_tsv(e) for e in unit.entries)


@pytest.mark.parametrize(
    ("struct", "model"), [(messages.Entry, LedgerEntry), (messages.Version, VersionRecord)]
)
def test_structs_name_the_models_fields(struct: type, model: type) -> None:
    """A field added to the schemas' model must reach the struct too (else every message
    quietly takes the slow pydantic path, or a default hides a value)."""
    assert set(struct.__struct_fields__) == set(model.model_fields) - {"kind"}
