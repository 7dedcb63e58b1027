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
import json
import random
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.settings import Settings, load_settings
from sinks.asof import answer, restate
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


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _v(tid: str, cust: str, cat: str, cents: int, day: str, status: str, at: str) -> Version:
    return Version(tid, cust, cat, cents, date.fromisoformat(day), status, _at(at))


def restatement_history() -> list[Version]:
    """Arrival order; b is backdated from February into January after both closes."""
    b1 = _v("b", "B", "books", 5000, "2026-02-14", "approved", "2026-02-14T09:00")
    c1 = _v("c", "C", "toys", 3000, "2026-01-20", "approved", "2026-01-20T08:00")
    d1 = _v("d", "D", "toys", 2000, "2026-02-03", "approved", "2026-02-03T08:00")
    e1 = _v("e", "E", "books", 1000, "2026-02-01", "pending", "2026-02-01T08:00")
    h1 = _v("h", "H", "books", 700, "2026-02-20", "pending", "2026-02-20T08:00")
    x1 = _v("x", "X", "books", 999, "2025-12-15", "approved", "2025-12-15T08:00")
    return [
        _v("a", "A", "books", 10000, "2026-01-10", "approved", "2026-01-10T10:00"),
        b1, _replace(b1, {"day": date(2026, 1, 30), "updated_at": _at("2026-03-07T12:00")}),
        c1, _replace(c1, {"cents": 3550, "updated_at": _at("2026-02-10T08:00")}),
        d1, _replace(d1, {"status": "reversed", "updated_at": _at("2026-03-08T08:00")}),
        _replace(e1, {"status": "approved", "updated_at": _at("2026-02-02T08:00")}), e1,  # late
        _v("g", "G", "books", 1234, "2026-02-27", "approved", "2026-03-06T08:00"),
        h1, _replace(h1, {"status": "approved", "updated_at": _at("2026-03-09T08:00")}),
        x1, _replace(x1, {"cents": 1999, "updated_at": _at("2026-02-01T00:00")}),
    ]  # fmt: skip


def test_restatements_of_a_hand_made_history_with_a_backdated_correction(
    pipeline: Pipeline,
) -> None:
    rng = random.Random(5)
    pipeline.reset()
    pipeline.feed([Served(render(rng, v, v.category), v) for v in restatement_history()], rng)
    months = [m.to_json() for m in restate(pipeline.settings, 2, 5, _at("2026-03-10T00:00"))]
    figures = [
        (m["month"], m["closed_at"], m["amount_at_close"], m["amount_now"], m["difference"],
         m["transactions_moved"], [(t["transaction_id"], t["change"]) for t in m["top"]])
        for m in months
    ]  # fmt: skip
    assert figures == [
        ("2026-01", "2026-02-05T00:00:00Z", "130.00", "185.50", "55.50", 2,
         [("b", "50.00"), ("c", "5.50")]),
        ("2026-02", "2026-03-05T00:00:00Z", "87.00", "29.34", "-57.66", 3,
         [("b", "-50.00"), ("d", "-20.00"), ("g", "12.34")]),
    ]  # fmt: skip
    jan_b, feb_b = months[0]["top"][0]["versions"], months[1]["top"][0]["versions"]
    story = [(v["updated_at"], v["known_at_close"], v["changed"]) for v in jan_b]
    assert story == [("2026-02-14T09:00:00Z", False, []),
                     ("2026-03-07T12:00:00Z", False, ["transaction_date"])]  # fmt: skip
    story = [(v["updated_at"], v["known_at_close"], v["changed"]) for v in feb_b]
    assert story == [("2026-02-14T09:00:00Z", True, []),
                     ("2026-03-07T12:00:00Z", False, ["transaction_date"])]  # fmt: skip
    assert (
        feb_b[1]["transaction_date"] == "2026-01-30"
        and feb_b[0]["transaction_date"] == "2026-02-14"
    )
    # the amounts at each close are what as-of answers say at that instant
    for m, close in (("2026-01", "2026-02-05T00:00"), ("2026-02", "2026-03-05T00:00")):
        rows = answer(pipeline.settings, "monthly", _at(close), None).to_json()
        at_close = next(r["total_amount"] for r in rows if r["month"] == m)
        assert at_close == next(x[2] for x in figures if x[0] == m)


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    flags = ["--mysql-database", settings.mysql_database]
    return subprocess.run([sys.executable, "-m", "txnpipe", *args, *flags],
                          capture_output=True, text=True, timeout=120)  # fmt: skip


def test_cli_as_of_and_restatements_outputs_and_usage_errors(pipeline: Pipeline) -> None:
    rng = random.Random(5)
    pipeline.reset()
    pipeline.feed([Served(render(rng, v, v.category), v) for v in restatement_history()], rng)
    s = pipeline.settings
    done = _cli(s, "query", "categories", "--as-of", "2026-02-05", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"product_category": "books", "total_transactions": 3, "total_amount": "129.99"},
        {"product_category": "toys", "total_transactions": 2, "total_amount": "50.00"},
    ]
    done = _cli(s, "query", "top-customers", "--as-of", "2026-02-05T00:00:00Z")
    assert done.returncode == 0 and "source=mysql (--as-of reads MySQL" in done.stdout
    assert done.stdout.splitlines()[0].split() == ["A", "100.00"]
    usage = (
        ["query", "monthly", "--as-of", "2026-02-05", "--source", "redis"],
        ["query", "monthly", "--as-of", "yesterday"],
        ["restatements", "--close-day", "29"],
        ["restatements", "--months", "0"],
    )
    for bad in usage:
        done = _cli(s, *bad)
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, (bad, done)
    done = _cli(s, "restatements", "--months", "2", "--json")
    assert done.returncode == 0, done.stderr
    assert [m["transactions_moved"] for m in json.loads(done.stdout)["months"]] == [0, 0]
