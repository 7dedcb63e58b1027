"""As-of answers and restatements through MariaDB for real (issue 13).

Property: dirty histories (repeats, late replicas of versions already seen and of versions
never seen before, backdating, status, amount, category and customer changes, invalid
records) go through the stream's decisions and the sink's writer (``asof_harness``); at
random instants T each of the three as-of answers equals an independent computation from
the served records alone. Restatements: a hand-made history with a known backdated
correction gives exact figures.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.settings import Settings, load_settings
from sinks.asof import answer
from tests.integration.asof_harness import Pipeline, Served, expected
from tests.unit.stream_app.history import Version, _spoil, render

COUNTED = frozenset({"pending", "approved"})
STATUSES = ("pending", "approved", "declined", "reversed")
CATEGORIES = {
    "books": ["books", " BOOKS ", "Books"],
    "home & garden": ["Home  &  Garden"],
    "café": ["Café", "café "],
    "cafe": ["cafe"],
    "uncategorized": [None, "  "],
}
CUSTOMERS = ("A1", "a1", "c-7", "42")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def db_settings(mysql_server: Settings, base_settings: Settings) -> Iterator[Settings]:
    name = f"txnpipe_t{uuid.uuid4().hex[:10]}"
    yield load_settings({**base_settings.model_dump(), "mysql_database": name})
    import mysql.connector

    with contextlib.closing(
        mysql.connector.connect(host=base_settings.mysql_host, port=base_settings.mysql_port,
                                user=base_settings.mysql_user, autocommit=True,
                                password=base_settings.mysql_password.get_secret_value())
    ) as conn:  # fmt: skip
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="module")
def pipeline(db_settings: Settings) -> Iterator[Pipeline]:
    p = Pipeline(db_settings, COUNTED)
    yield p
    p.close()


@st.composite
def versions_of(draw: st.DrawFn, tid: str) -> list[Version]:
    """1-4 versions of one transaction, updated_at strictly increasing."""
    count = draw(st.integers(1, 4))
    at = T0 + timedelta(minutes=draw(st.integers(0, 60 * 24 * 30)))
    day = date(2024, 12, 1) + timedelta(days=draw(st.integers(0, 395)))
    customer = draw(st.sampled_from(CUSTOMERS))
    category = draw(st.sampled_from(sorted(CATEGORIES)))
    cents, status = draw(st.integers(1, 100_000_000)), draw(st.sampled_from(STATUSES))
    v = Version(tid, customer, category, cents, day, status, at)
    out = [v]
    for _ in range(count - 1):
        at = at + timedelta(minutes=draw(st.integers(1, 60 * 24 * 10)), microseconds=1000)
        what = draw(st.sampled_from(("status", "amount", "backdate", "category", "customer")))
        changes: dict[str, Any] = {"updated_at": at}
        if what == "status":
            changes["status"] = draw(st.sampled_from(STATUSES))
        elif what == "amount":
            changes["cents"] = draw(st.integers(1, 100_000_000))
        elif what == "backdate":
            changes["day"] = v.day - timedelta(days=draw(st.integers(1, 45)))
        elif what == "category":
            changes["category"] = draw(st.sampled_from(sorted(CATEGORIES)))
        else:
            changes["customer_id"] = draw(st.sampled_from(CUSTOMERS))
        v = _replace(v, changes)
        out.append(v)
    return out


def _replace(v: Version, changes: dict[str, Any]) -> Version:
    fields = {f: getattr(v, f) for f in Version.__dataclass_fields__}
    fields.update(changes)
    return Version(**fields)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Served], list[datetime], int]:
    """Served records in arrival order (out of order, repeated, late, some invalid), and
    instants to ask at."""
    n = draw(st.integers(1, 8))
    seed = draw(st.integers(0, 2**32))
    rng = random.Random(seed)
    served: list[Served] = []
    instants: list[datetime] = [T0 - timedelta(days=1), T0 + timedelta(days=400)]
    for i in range(n):
        versions = draw(versions_of(f"tx{i}" if i % 3 else f" {i} "))
        order = list(range(len(versions)))
        if draw(st.booleans()):
            order = draw(st.permutations(order))  # late arrivals of versions never seen
        for k in order:
            v = versions[k]
            rec = render(rng, v, rng.choice(CATEGORIES[v.category]))
            rec["transaction_id"] = v.transaction_id.strip()
            if v.transaction_id.strip().isdigit() and rng.random() < 0.5:
                rec["transaction_id"] = int(v.transaction_id)
            rec["customer_id"] = f" {v.customer_id} " if rng.random() < 0.3 else v.customer_id
            clean = _replace(v, {"transaction_id": v.transaction_id.strip()})
            served.append(Served(rec, clean))
            if rng.random() < 0.2:  # an exact repeat
                served.append(Served(dict(rec), clean))
            if k > 0 and rng.random() < 0.3:  # a late replica of the previous version
                older = versions[k - 1]
                late = render(rng, older, rng.choice(CATEGORIES[older.category]))
                late["transaction_id"] = rec["transaction_id"]
                late["customer_id"] = older.customer_id
                served.append(
                    Served(late, _replace(older, {"transaction_id": clean.transaction_id}))
                )
            if rng.random() < 0.15:
                served.append(Served(_spoil(rng, rec), None))
            instants += [v.updated_at, v.updated_at - timedelta(microseconds=1)]
    instants += [T0 + timedelta(minutes=draw(st.integers(0, 60 * 24 * 60))) for _ in range(3)]
    picked = draw(st.lists(st.sampled_from(instants), min_size=3, max_size=5, unique=True))
    return served, picked, seed


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(history=histories())
def test_as_of_answers_equal_an_independent_computation_from_the_served_records(
    pipeline: Pipeline, history: tuple[list[Served], list[datetime], int]
) -> None:
    served, instants, seed = history
    pipeline.reset()
    pipeline.feed(served, random.Random(seed))
    for at in instants:
        truth = expected(served, at, COUNTED)
        for question in ("categories", "top-customers", "monthly"):
            got = answer(pipeline.settings, question, at, 1_000_000).to_json()
            assert got == truth[question], (question, at)


def test_a_late_replica_never_seen_before_is_stored_stale_and_answers_before_its_successor(
    pipeline: Pipeline,
) -> None:
    newer = Version("late-1", "c1", "books", 2000, date(2025, 12, 30), "approved",
                    T0 + timedelta(hours=2))  # fmt: skip
    older = _replace(newer, {"cents": 1500, "status": "pending", "updated_at": T0})
    served = [Served(render(random.Random(1), v, v.category), v) for v in (newer, older)]
    pipeline.reset()
    pipeline.feed(served, random.Random(1))
    stored = {(str(t), bool(s)) for t, _u, s in pipeline.versions()}
    assert stored == {("late-1", False), ("late-1", True)}
    rows = answer(pipeline.settings, "categories", T0 + timedelta(hours=1), None).to_json()
    assert rows == [{"product_category": "books", "total_transactions": 1, "total_amount": "15.00"}]
    now = answer(pipeline.settings, "categories", T0 + timedelta(hours=3), None).to_json()
    assert now[0]["total_amount"] == "20.00"
