"""The Redis side of the stream app against a real Redis: the CAS Lua apply, the atomic
restore install, zero-removal, and the lookups (ties, monthly window, freshness)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import redis

from common.settings import Settings
from stream_app.fold import Fold, RawMessage, fold_batch, parse_batch, unpack_outbox
from stream_app.keys import RedisKeys
from stream_app.lookups import answer
from stream_app.store import APPLIED, CONFLICT, NO_WATERMARK, RedisStore, Restored

NOW = datetime(2026, 6, 15, 10, 30, tzinfo=UTC)


def record(
    tid: str,
    cust: str,
    cents: int,
    day: str,
    status: str = "approved",
    minute: int = 0,
    cat: str = "Books",
) -> dict[str, object]:
    return {
        "transaction_id": tid,
        "customer_id": cust,
        "product_category": cat,
        "transaction_amount": f"{cents // 100}.{cents % 100:02d}",
        "transaction_date": day,
        "status": status,
        "updated_at": f"2026-06-14T10:{minute:02d}:00Z",
    }


def fold_of(
    settings: Settings, store: RedisStore, partition: int, offset: int, *recs: object
) -> tuple[Fold, int]:  # type: ignore[no-untyped-def]
    parsed = parse_batch(partition, [RawMessage(offset, None, json.dumps(list(recs)).encode())])
    wm, current = store.read(partition, parsed.transaction_ids())
    assert wm is not None
    f = fold_batch(
        parsed, current, watermark=wm, counted=settings.counted, raw_topic="raw", accepted_at=NOW
    )
    return f, wm


def test_apply_is_refused_without_watermark_and_on_conflict(redis_ns: Settings) -> None:
    store = RedisStore(redis_ns)
    keys = RedisKeys.of(redis_ns)
    parsed = parse_batch(
        0, [RawMessage(0, None, json.dumps([record("a", "c1", 1000, "2026-06-01")]).encode())]
    )
    f = fold_batch(
        parsed, {}, watermark=-1, counted=redis_ns.counted, raw_topic="raw", accepted_at=NOW
    )
    assert store.apply(f, -1) == NO_WATERMARK
    assert store.install(Restored(0)) == 1
    assert store.install(Restored(0, watermark=99)) == 0  # already there: no double add
    assert store.watermark(0) == -1
    assert store.apply(f, 5) == CONFLICT  # computed against a watermark that moved
    assert store.client.hgetall(keys.category_count) == {}
    assert store.apply(f, -1) == APPLIED
    assert store.apply(f, -1) == CONFLICT  # a redelivered batch cannot apply twice
    assert store.client.hgetall(keys.category_count) == {b"books": b"1"}
    assert store.watermark(0) == 0
    ((offset, blob),) = store.outbox(0)
    assert offset == 0
    assert [json.loads(m.value)["kind"] for m in unpack_outbox(blob)] == ["entry", "version"]
    store.close()


def test_members_reaching_zero_disappear(redis_ns: Settings) -> None:
    store = RedisStore(redis_ns)
    keys = RedisKeys.of(redis_ns)
    store.install(Restored(1))
    f, wm = fold_of(redis_ns, store, 1, 0, record("a", "c1", 1000, "2026-06-01"))
    assert store.apply(f, wm) == APPLIED
    f, wm = fold_of(redis_ns, store, 1, 1, record("a", "c1", 1000, "2026-06-01", "declined", 5))
    assert store.apply(f, wm) == APPLIED
    c = store.client
    assert c.hgetall(keys.category_count) == {}
    assert c.hgetall(keys.category_cents) == {}
    assert c.zcard(keys.customer) == 0
    assert c.hgetall(keys.day) == {}
    assert c.hget(keys.stats, "accepted") == b"2"
    store.close()


def test_restore_install_merges_into_live_aggregates(redis_ns: Settings) -> None:
    store = RedisStore(redis_ns)
    store.install(Restored(0))
    f, wm = fold_of(redis_ns, store, 0, 0, record("a", "c1", 1000, "2026-06-01"))
    store.apply(f, wm)
    state = '["c2","books",700,"2026-06-02","approved","2026-06-14T10:00:00+00:00"]'
    restored = Restored(
        1,
        watermark=41,
        states={"b": state},
        category={"books": [1, 700]},
        customer={"c2": 700},
        day={"2026-06-02": 700},
        versions=1,
        entries=1,
    )
    assert store.install(restored) == 1
    assert store.watermark(1) == 41
    rows = answer(redis_ns, "categories", now=NOW).to_json()
    assert rows == [{"product_category": "books", "total_transactions": 2, "total_amount": "17.00"}]
    _, current = store.read(1, ["b"])
    assert current["b"] is not None and current["b"].amount_cents == 700
    store.close()


def test_top_customers_ties_by_id_and_monthly_window(redis_ns: Settings) -> None:
    store = RedisStore(redis_ns)
    store.install(Restored(0))
    recs = [
        record(f"t{i}", cust, cents, day)
        for i, (cust, cents, day) in enumerate(
            [
                ("zed", 500, "2026-06-01"),
                ("amy", 500, "2026-05-31"),
                ("bob", 500, "2025-06-16"),
                ("max", 900, "2025-06-15"),
                ("cat", 100, "2026-01-10"),
            ]
        )
    ]
    f, wm = fold_of(redis_ns, store, 0, 0, *recs)
    assert store.apply(f, wm) == APPLIED
    top = answer(redis_ns, "top-customers", 3, now=NOW)
    assert [r["customer_id"] for r in top.to_json()] == ["max", "amy", "bob"]
    assert top.offsets == {0: 0}
    assert top.as_of is not None
    monthly = answer(redis_ns, "monthly", now=NOW).to_json()
    # 2025-06-15 is exactly one year before NOW's date: excluded (NOW is not midnight)
    assert monthly == [
        {"month": "2025-06", "total_amount": "5.00"},
        {"month": "2026-01", "total_amount": "1.00"},
        {"month": "2026-05", "total_amount": "5.00"},
        {"month": "2026-06", "total_amount": "5.00"},
    ]
    store.close()


def test_empty_namespace_answers_nothing(redis_ns: Settings) -> None:
    client = redis.Redis.from_url(redis_ns.redis_url)
    assert answer(redis_ns, "categories", client=client).rows == ()
    assert answer(redis_ns, "top-customers", client=client).rows == ()
    assert answer(redis_ns, "monthly", client=client).as_of is None
    client.close()


def test_leftover_outbox_is_published_on_recovery(topics: Settings, redis_ns: Settings) -> None:
    """A crash between the apply and the publish leaves the batch in the outbox; recovering
    the partition publishes it to ledger partition p, then forgets it."""
    from confluent_kafka import Consumer, TopicPartition

    from stream_app.processor import BatchProcessor
    from stream_app.topics import ensure_topics

    settings = topics
    ensure_topics(settings)
    processor = BatchProcessor(settings)
    assert processor.recover(2) == -1  # empty ledger: restored to "nothing applied"
    f, wm = fold_of(settings, processor.store, 2, 7, record("a", "c1", 1000, "2026-06-01"))
    assert processor.store.apply(f, wm) == APPLIED  # ... and the worker dies here
    assert [o for o, _ in processor.store.outbox(2)] == [7]
    processor.recover(2)
    assert processor.store.outbox(2) == []
    processor.close()
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "t",
                         "enable.partition.eof": True, "fetch.wait.max.ms": 50})  # fmt: skip
    consumer.assign([TopicPartition(settings.topic("transactions.ledger"), 2, 0)])
    kinds = []
    while True:
        m = consumer.poll(10)
        assert m is not None, "ledger partition 2 did not reach its end"
        if m.error():
            break
        kinds.append((json.loads(m.value())["kind"], m.key()))
    consumer.close()
    assert kinds == [("entry", b"a"), ("version", b"a")]


def test_redelivered_batch_publishes_a_leftover_outbox(
    topics: Settings, redis_ns: Settings
) -> None:
    """An apply whose reply was lost (or a crash before the publish) then the same batch
    again: nothing is applied twice and the leftover is published."""
    from stream_app.processor import BatchProcessor
    from stream_app.topics import ensure_topics

    settings = topics
    ensure_topics(settings)
    processor = BatchProcessor(settings)
    processor.recover(1)
    value = json.dumps([record("a", "c1", 1000, "2026-06-01")]).encode()
    f, wm = fold_of(settings, processor.store, 1, 3, record("a", "c1", 1000, "2026-06-01"))
    assert processor.store.apply(f, wm) == APPLIED  # ... and its reply never arrives
    report = processor.process(1, [RawMessage(3, None, value)])
    assert report.skipped == 1 and report.accepted == 0
    assert processor.store.outbox(1) == []
    keys = RedisKeys.of(settings)
    assert processor.store.client.hget(keys.stats, "accepted") == b"1"
    processor.close()
