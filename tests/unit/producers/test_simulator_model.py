"""The simulator's history: deterministic, a pure function of time, and agreeing with §1.

The cross-checks here run the contract's cleaning code (``schemas``) over what the
simulator renders: the simulator itself never imports it, so agreement is evidence
that both read CONTRACT §1 the same way.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

import schemas.transaction as st
from producers.simulator.feed import Feed
from producers.simulator.model import SimulatorConfig, anchor_from
from producers.simulator.truth import compute, first_month_day
from schemas import CleaningError, clean_record

ANCHOR = anchor_from(datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
SMALL = SimulatorConfig(seed=7, history_days=40, transactions_per_day=120, rate=2.0)


def _feed(config: SimulatorConfig = SMALL, clock_ms: int = ANCHOR) -> Feed:
    return Feed(config, ANCHOR, lambda: clock_ms)


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a, b = _feed(), _feed()
    assert [e.body for e in a.entries] == [e.body for e in b.entries]
    assert [e.key for e in a.entries] == [e.key for e in b.entries]
    c = _feed(replace(SMALL, seed=8))
    assert [e.body for e in a.entries] != [e.body for e in c.entries]


def test_feed_is_in_order_and_only_up_to_the_clock() -> None:
    feed = _feed()
    assert feed.keys == sorted(feed.keys)
    assert feed.entries and all(k[0] <= ANCHOR for k in feed.keys)


def test_history_is_a_pure_function_of_time() -> None:
    """Advancing the clock in steps shows exactly what a feed born later shows."""
    later = ANCHOR + 3 * 3_600_000
    clock = [ANCHOR]
    stepped = Feed(SMALL, ANCHOR, lambda: clock[0])
    for step in range(1, 13):
        clock[0] = ANCHOR + step * 900_000
        stepped.advance()
    direct = _feed(clock_ms=later)
    assert [e.body for e in stepped.entries] == [e.body for e in direct.entries]
    live = [e for e in direct.entries if e.key[0] > ANCHOR]
    assert len([e for e in live if e.kind == "version" and e.key[2] >= 10_000_000]) > 100


def test_every_rendered_record_cleans_to_the_model_and_every_invalid_one_is_rejected() -> None:
    config = replace(SMALL, dirty_rate=0.9, invalid_rate=0.3, history_days=20)
    kinds: Counter[str] = Counter()
    for entry in _feed(config).entries:
        obj = st._DECODER.decode(entry.body.decode())
        try:
            txn = clean_record(obj)
        except CleaningError as exc:
            assert entry.version is None, (entry.body, exc.reason)
            kinds[entry.kind] += 1
            continue
        assert entry.version is not None, (entry.kind, entry.body)
        v = entry.version
        assert (
            txn.transaction_id,
            txn.customer_id,
            txn.product_category,
            txn.amount_cents,
            txn.transaction_date,
            txn.status,
            int(txn.updated_at.timestamp() * 1000),
        ) == (
            v.transaction_id,
            v.customer_id,
            v.category,
            v.amount_cents,
            v.transaction_date,
            v.status,
            v.updated_ms,
        ), entry.body
    assert len(kinds) >= 20  # invalid records of (nearly) every kind appear


def test_history_has_every_kind_of_change_and_noise() -> None:
    feed = _feed(replace(SMALL, history_days=120))
    kinds = Counter(e.kind for e in feed.entries)
    assert kinds["repeat"] and kinds["late"] and kinds["version"]
    versions: dict[str, list] = {}
    for e in feed.entries:
        if e.kind == "version" and e.version is not None:
            versions.setdefault(e.version.transaction_id, []).append(e.version)
    changes: Counter[str] = Counter()
    for vs in versions.values():
        for old, new in itertools.pairwise(vs):
            for field in ("status", "amount_cents", "transaction_date", "category", "customer_id"):
                if getattr(old, field) != getattr(new, field):
                    changes[field if field != "status" else f"{old.status}->{new.status}"] += 1
    for expected in (
        "pending->approved",
        "pending->declined",
        "approved->reversed",
        "amount_cents",
        "transaction_date",
        "category",
        "customer_id",
    ):
        assert changes[expected] > 0, expected
    spend = Counter()
    for vs in versions.values():
        spend[vs[-1].customer_id] += vs[-1].amount_cents
    ranked = sorted(spend.values(), reverse=True)
    top_share = sum(ranked[: len(ranked) // 20]) / sum(ranked)
    assert top_share > 0.15  # skewed: the top 5% of customers hold a large share


def test_truth_matches_a_fold_of_the_cleaned_records() -> None:
    """Truth from the model == last-writer-wins over ``schemas`` cleaning of the served bytes."""
    feed = _feed(replace(SMALL, history_days=400, transactions_per_day=20))
    upto = len(feed.entries) * 2 // 3
    served = bytearray(len(feed.entries))
    served[: upto + 1] = b"\x01" * (upto + 1)
    now = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    doc = compute(feed.entries, served, upto, frozenset({"pending", "approved"}), now)
    current: dict[str, st.Transaction] = {}
    invalid = 0
    for entry in feed.entries[: upto + 1]:
        for result in st.parse_message(b"[" + entry.body + b"]"):  # as the poller batches it
            if isinstance(result, st.Rejection):
                invalid += 1
                continue
            txn = result.transaction
            cur = current.get(txn.transaction_id)
            if cur is None or txn.updated_at > cur.updated_at:
                current[txn.transaction_id] = txn
    live = [t for t in current.values() if t.status in ("pending", "approved")]
    assert doc["served"]["invalid_distinct"] == invalid > 0
    assert doc["counted_transaction_count"] == len(live)
    cats: dict[str, list[int]] = {}
    for t in live:
        row = cats.setdefault(t.product_category, [0, 0])
        row[0] += 1
        row[1] += t.amount_cents
    assert {r["product_category"]: r["total_transactions"] for r in doc["categories"]} == {
        k: v[0] for k, v in cats.items()
    }
    total = sum(t.amount_cents for t in live)
    assert sum(int(r["total_amount"].replace(".", "")) for r in doc["top_customers"]) == total
    first = date(2025, 3, 2)
    in_year = sum(t.amount_cents for t in live if t.transaction_date >= first)
    assert sum(int(r["total_amount"].replace(".", "")) for r in doc["monthly"]) == in_year
    assert doc["monthly"][0]["month"] == "2025-03"


@pytest.mark.parametrize(
    ("now", "first"),
    [
        (datetime(2026, 3, 1, 9, 30, tzinfo=UTC), date(2025, 3, 2)),
        (datetime(2026, 3, 1, 0, 0, 0, tzinfo=UTC), date(2025, 3, 1)),
        (datetime(2026, 3, 1, 0, 0, 0, 400_000, tzinfo=UTC), date(2025, 3, 1)),
        (datetime(2028, 2, 29, 12, 0, tzinfo=UTC), date(2027, 3, 1)),
        (datetime(2028, 2, 29, 0, 0, tzinfo=UTC), date(2027, 2, 28)),
    ],
    ids=["midday", "midnight", "midnight-fraction", "leap-day", "leap-day-midnight"],
)
def test_monthly_boundary_follows_mysql(now: datetime, first: date) -> None:
    assert first_month_day(now) == first


def test_monthly_boundary_agrees_with_the_shared_answers_module() -> None:
    """Two independent readings of the seed query's boundary must agree."""
    from datetime import timedelta

    from schemas.answers import monthly_first_day

    moment = datetime(2027, 12, 30, 0, 0, tzinfo=UTC)
    for _ in range(800):
        assert first_month_day(moment) == monthly_first_day(moment), moment
        moment += timedelta(hours=7, minutes=13, seconds=29)
    for special in (
        datetime(2028, 2, 29, 0, 0, tzinfo=UTC),
        datetime(2028, 3, 1, 0, 0, 1, tzinfo=UTC),
    ):
        assert first_month_day(special) == monthly_first_day(special)
