"""Redriven records are routed as CONTRACT §3 says, exactly where the poller put them."""

from __future__ import annotations

from producers.client import parse_page
from producers.murmur2 import partition_for
from producers.publisher import Router
from producers.redrive import route
from schemas import parse_message

NAME = "ns.transactions.dlq:0:1"


def _poller_partition(text: str, partitions: int) -> int:
    page = parse_page(('{"data":[' + text + '],"next_cursor":null}').encode())
    [partition] = Router(partitions).route(page).batches
    return partition


def test_a_record_with_a_readable_id_goes_keyed_to_the_pollers_partition() -> None:
    for text in (
        '{"transaction_id":"  42 ","x":1}',
        '{"transaction_id":42}',
        '{"transaction_id":"ü"}',
    ):
        [out] = route(text.encode(), NAME, 6, element=True)
        tid = "ü" if "ü" in text else "42"
        assert out.key == tid.encode()
        assert out.partition == partition_for(tid.encode(), 6) == _poller_partition(text, 6)
        assert (out.value, out.record, out.letter) == (text.encode(), text.encode(), NAME)


def test_a_record_without_a_readable_id_goes_unkeyed_by_its_bytes() -> None:
    for raw in (b'{"transaction_id":""}', b'"oops"', b"\xff\xfe", b"[" * 5000, b"", b"null"):
        [out] = route(raw, NAME, 6, element=False)
        assert out.key is None and out.value == raw
        assert out.partition == partition_for(raw, 6)


def test_an_array_that_was_one_record_goes_as_a_batch_of_one() -> None:
    [out] = route(b"[1,2,3]", NAME, 6, element=True)
    assert out.value == b"[[1,2,3]]" and out.record == b"[1,2,3]" and out.key is None
    [result] = parse_message(out.value)
    assert result.reason == "not_an_object" and result.raw == b"[1,2,3]"  # type: ignore[union-attr]


def test_a_corrected_whole_batch_is_split_into_its_records() -> None:
    raw = b' [{"transaction_id":"a"} , {"transaction_id":"b"},[7]]'
    outs = route(raw, NAME, 6, element=False)
    assert [o.value for o in outs] == [
        b'{"transaction_id":"a"}',
        b'{"transaction_id":"b"}',
        b"[[7]]",
    ]
    assert [o.partition for o in outs[:2]] == [partition_for(b"a", 6), partition_for(b"b", 6)]
    assert route(b"[]", NAME, 6, element=False) == []
    [broken] = route(b'[{"transaction_id":"a"}', NAME, 6, element=False)
    assert broken.value == b'[{"transaction_id":"a"}' and broken.key is None
