"""The checkpoint only ever advances over a prefix of pages the broker fully acknowledged."""

from __future__ import annotations

from typing import Any

import pytest

from common.errors import TxnpipeError
from common.settings import load_settings
from producers.client import parse_page
from producers.publisher import RawPublisher, Router, prepare


class FakeProducer:
    """Holds delivery callbacks until the test acknowledges them, in any order."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, Any]] = []

    def produce(self, topic: str, value: bytes, partition: int, on_delivery: Any) -> None:
        self.sent.append((partition, value, on_delivery))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return len(self.sent)


class Msg:
    def __init__(self, partition: int) -> None:
        self._p = partition

    def partition(self) -> int:
        return self._p


def _page(router: Router, n: int, start: int) -> Any:
    texts = [f'{{"transaction_id":"{start + i}","updated_at":"2026-01-01T00:00:0{i}.000Z"}}'
             for i in range(n)]  # fmt: skip
    body = ('{"data":[' + ",".join(texts) + '],"next_cursor":null}').encode()
    return prepare(router, parse_page(body))


def test_acked_advances_only_over_a_fully_acknowledged_prefix() -> None:
    fake = FakeProducer()
    publisher = RawPublisher(load_settings({"namespace": "unit"}), 6, producer=fake)
    router = Router(6)
    first = publisher.publish(_page(router, 5, 100), "c1")
    second = publisher.publish(_page(router, 5, 200), "c2")
    assert publisher.acked() is None
    sent = list(fake.sent)
    for partition, _, callback in sent[first:]:  # page 2 acked first: not enough
        callback(None, Msg(partition))
    assert publisher.acked() is None
    for partition, _, callback in sent[: first - 1]:
        callback(None, Msg(partition))
    assert publisher.acked() is None  # one message of page 1 still outstanding
    partition, _, callback = sent[first - 1]
    callback(None, Msg(partition))
    assert publisher.acked() == "c2"
    assert second > 0


def test_a_failed_delivery_stops_everything() -> None:
    fake = FakeProducer()
    publisher = RawPublisher(load_settings({"namespace": "unit"}), 6, producer=fake)
    publisher.publish(_page(Router(6), 3, 1), "c1")
    partition, _, callback = fake.sent[0]
    callback("Broker: Message timed out", Msg(partition))
    with pytest.raises(TxnpipeError, match="timed out"):
        publisher.acked()


def test_every_message_is_a_json_array_of_one_partition() -> None:
    import json

    from producers.murmur2 import partition_for

    fake = FakeProducer()
    publisher = RawPublisher(load_settings({"namespace": "unit"}), 6, producer=fake)
    publisher.publish(_page(Router(6), 9, 1000), "c")
    seen = 0
    for partition, value, _ in fake.sent:
        records = json.loads(value)
        assert isinstance(records, list)
        for rec in records:
            assert partition_for(rec["transaction_id"].encode(), 6) == partition
            seen += 1
    assert seen == 9
