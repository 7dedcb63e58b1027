"""Page parsing keeps each record's exact served text; Retry-After in both forms."""

import email.utils
import json

import pytest

from producers.client import PageFormatError, parse_page, retry_after_seconds


def test_records_keep_their_exact_served_text() -> None:
    body = (
        b' { "next_cursor" : "abc" , "data" : [ {"transaction_amount": 1234.50, "x": "\xc3\xbc"} ,'
        b' "junk", 42 ,{"a":[1, {"b": null}]}], "extra": {"k": 1} } '
    )
    page = parse_page(body)
    assert page.next_cursor == "abc"
    texts = [text for text, _ in page.records]
    assert texts == [
        '{"transaction_amount": 1234.50, "x": "ü"}',
        '"junk"',
        "42",
        '{"a":[1, {"b": null}]}',
    ]
    assert page.records[0][1]["x"] == "ü"


def test_empty_page_and_null_cursor() -> None:
    page = parse_page(b'{"data":[],"next_cursor":null}')
    assert page.records == [] and page.next_cursor is None


@pytest.mark.parametrize(
    "body",
    [
        b'{"data":[{"a":1},{"b":',
        b'{"data":[{"a":1}],"next_cursor":"x"',
        b'{"data":[{"a":1}],"next_cursor":"x"} trailing',
        b'{"next_cursor":null}',
        b'{"data":{"a":1},"next_cursor":null}',
        b'{"data":[],"next_cursor":5}',
        b'{"data":[]}',
        b"[1,2]",
        b"",
        b"\xff\xfe",
        b"<html>502 Bad Gateway</html>",
    ],
    ids=[
        "cut-in-record",
        "cut-at-end",
        "trailing",
        "no-data",
        "data-object",
        "cursor-number",
        "no-cursor",
        "array",
        "empty",
        "not-utf8",
        "html",
    ],
)
def test_broken_pages_are_rejected(body: bytes) -> None:
    with pytest.raises(PageFormatError):
        parse_page(body)


def test_page_from_the_simulator_round_trips() -> None:
    records = [{"transaction_id": i, "amount": "1,234.50"} for i in range(5)]
    body = json.dumps({"data": records, "next_cursor": None}).encode()
    page = parse_page(body)
    assert [json.loads(t) for t, _ in page.records] == records


def test_retry_after_seconds_and_http_date() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(" 0 ") == 0.0
    now = 1_800_000_000.0
    date = email.utils.formatdate(now + 7, usegmt=True)
    assert retry_after_seconds(date, now=now) == pytest.approx(7.0)
    past = email.utils.formatdate(now - 60, usegmt=True)
    assert retry_after_seconds(past, now=now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
