"""Routing by the readable transaction id, batching, and the checkpoint candidate."""

from datetime import UTC, datetime

from producers.client import parse_page
from producers.murmur2 import partition_for
from producers.publisher import MAX_BATCH_BYTES, Router, batch_values, format_since


def _records(*texts: str) -> list[tuple[str, object]]:
    return parse_page(('{"data":[' + ",".join(texts) + '],"next_cursor":null}').encode()).records


def test_all_forms_of_one_id_land_on_one_partition() -> None:
    router = Router(6)
    expected = partition_for(b"1000000000042", 6)
    forms = [
        '{"transaction_id":1000000000042}',
        '{"transaction_id":"  1000000000042\\n"}',
        '{"transaction_id":"1000000000042"}',
    ]
    routed = router.route(_records(*forms))
    assert list(routed.batches) == [expected]
    assert routed.batches[expected] == forms


def test_records_without_a_readable_id_route_by_their_bytes() -> None:
    router = Router(6)
    junk = ['"oops"', "42", '{"transaction_id":true}', '{"transaction_id":"  "}']
    routed = router.route(_records(*junk))
    for text in junk:
        assert text in routed.batches[partition_for(text.encode(), 6)]
    assert routed.records == 4 and routed.max_updated_at is None


def test_max_updated_at_reads_offsets_and_skips_unreadable_and_far_future() -> None:
    router = Router(3)
    routed = router.route(
        _records(
            '{"transaction_id":"1","updated_at":"2026-01-01T10:00:00.500+02:00"}',
            '{"transaction_id":"2","updated_at":"2026-01-01T07:59:00Z"}',
            '{"transaction_id":"3","updated_at":"2026-01-01T09:00:00"}',
            '{"transaction_id":"4","updated_at":12345}',
            '{"transaction_id":"5","updated_at":"2099-01-01T00:00:00Z"}',
        ),
        now=datetime(2026, 1, 2, tzinfo=UTC),
    )
    assert routed.max_updated_at == datetime(2026, 1, 1, 8, 0, 0, 500_000, tzinfo=UTC)
    assert routed.ignored_future == 1
    assert format_since(routed.max_updated_at) == "2026-01-01T08:00:00.500000Z"


def test_batches_stay_under_the_message_limit_and_keep_order() -> None:
    texts = ['{"pad":"' + "x" * 100_000 + f'","n":{i}}}' for i in range(25)]
    values = batch_values(texts)
    assert len(values) > 1
    assert all(len(v) <= MAX_BATCH_BYTES for v in values)
    joined = b",".join(v[1:-1] for v in values)
    assert joined == ",".join(texts).encode()
