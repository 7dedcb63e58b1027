"""The dead-letter envelope: cut raw with its full length, names, the redrive header."""

from __future__ import annotations

from schemas import DeadLetter, Rejection
from schemas.deadletter import (
    MAX_DLQ_RAW,
    REDRIVE_HEADER,
    letter_name,
    parse_letter_name,
    redrive_of,
)


def test_a_huge_record_is_cut_and_keeps_its_full_length() -> None:
    raw = b'{"x": "' + b"a" * (MAX_DLQ_RAW * 2) + b'"}'
    letter = DeadLetter.from_rejection(
        Rejection("not_json", "bad", raw), topic="ns.transactions.raw", partition=1, offset=2
    )
    assert len(letter.raw_bytes()) == MAX_DLQ_RAW
    assert letter.raw_length == len(raw)
    assert f"raw cut to {MAX_DLQ_RAW} of {len(raw)} bytes" in letter.detail
    small = DeadLetter.from_rejection(
        Rejection("x", "y", b"\xff"), topic="t", partition=0, offset=0
    )
    assert small.raw_length is None and small.raw_encoding == "base64"
    assert small.raw_bytes() == b"\xff"


def test_names_round_trip_and_garbage_is_not_a_name() -> None:
    name = letter_name("ns-1.transactions.dlq", 3, 17)
    assert parse_letter_name(name) == ("ns-1.transactions.dlq", 3, 17)
    for bad in ("", "x", "t:1", "t:a:1", ":1:2", "t:1:-2"):
        assert parse_letter_name(bad) is None


def test_the_redrive_header_is_read_from_either_header_shape() -> None:
    value = b"ns.transactions.dlq:0:5"
    assert redrive_of([("other", b"x"), (REDRIVE_HEADER, value)]) == value.decode()
    assert redrive_of({REDRIVE_HEADER: value}) == value.decode()
    assert redrive_of(None) is None
    assert redrive_of([]) is None
    assert redrive_of([(REDRIVE_HEADER, b"")]) is None
