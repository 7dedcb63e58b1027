"""Routing by the readable transaction id, batching, and the checkpoint candidate."""

from datetime import UTC, datetime

from producers.client import Page, parse_page
from producers.murmur2 import partition_for
from producers.publisher import MAX_BATCH_BYTES, Router, batch_values, format_since


def _page(*texts: str) -> Page:
    return parse_page(('{"data":[' + ",".join(texts) + '],"next_cursor":null}').encode())


def test_all_forms_of_one_id_land_on_one_partition() -> None:
    router = Router(6)
    expected = partition_for(b"1000000000042", 6)
    forms = [
        '{"transaction_id":1000000000042}',
        '{"transaction_id":"  1000000000042\\n"}',
        '{"transaction_id":"1000000000042"}',
    ]
    routed = router.route(_page(*forms))
    assert list(routed.batches) == [expected]
    assert routed.texts(expected) == forms
    again = router.route(_page(*forms))  # from the cache this time
    assert again.texts(expected) == forms


def test_many_ids_route_like_single_keyed_records() -> None:
    ids = [str(1_000_000_000_000 + i * 7) for i in range(300)] + ["ü-id", "x" * 40]
    texts = [f'{{"transaction_id":"{i}"}}' for i in ids]
    routed = Router(6).route(_page(*texts))
    for partition in routed.batches:
        for text in routed.texts(partition):
            tid = text.split('"')[3]
            assert partition_for(tid.encode(), 6) == partition


def test_records_without_a_readable_id_route_by_their_bytes() -> None:
    router = Router(6)
    junk = ['"oops"', "42", '{"transaction_id":true}', '{"transaction_id":"  "}']
    routed = router.route(_page(*junk))
    for text in junk:
        assert text in routed.texts(partition_for(text.encode(), 6))
    assert routed.records == 4 and routed.max_updated_at is None


def test_max_updated_at_reads_offsets_and_skips_unreadable_and_far_future() -> None:
    router = Router(3)
    routed = router.route(
        _page(
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


def test_canonical_stamps_take_the_fast_path_and_unreadable_ones_are_skipped() -> None:
    routed = Router(3).route(
        _page(
            '{"updated_at":"2026-01-01T10:00:00.500Z"}',
            '{"updated_at":"2026-13-45T99:00:00.000Z"}',  # same shape, not a time
            '{"updated_at":"2026-01-01T09:00:00.000Z"}',
        ),
        now=datetime(2026, 1, 2, tzinfo=UTC),
    )
    assert routed.max_updated_at == datetime(2026, 1, 1, 10, 0, 0, 500_000, tzinfo=UTC)


def test_batches_stay_under_the_message_limit_and_keep_order() -> None:
    texts = ['{"pad":"' + "x" * 100_000 + f'","n":{i}}}' for i in range(25)]
    page = _page(*texts)
    values = batch_values(page, list(range(25)))
    assert len(values) > 1
    assert all(len(v) <= MAX_BATCH_BYTES for v in values)
    joined = b",".join(v[1:-1] for v in values)
    assert joined == ",".join(texts).encode()


def test_non_ascii_pages_keep_exact_bytes() -> None:
    texts = ['{"transaction_id":"ü1","c":"naïve"}', '{"transaction_id":"2"}']
    page = _page(*texts)
    assert not isinstance(page.source, bytes)
    assert page.join([0, 1]) == ("[" + ",".join(texts) + "]").encode()
    assert page.record(0) == texts[0].encode()
