"""As-of answers through the whole pipeline (issue 13): simulator → poll → TWO stream
workers → sink, plus late versions never served before published straight to the raw topic
(each older than its transaction's current version when it arrives). The as-of answers at
several instants equal the known-at-T computation from the simulator's model and the late
versions alone; after the sink's tables are emptied and rebuilt by ``txnpipe replay
--from-beginning --target mysql``, they are identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from common.settings import Settings, load_settings
from producers.simulator.model import SimulatorConfig, Version
from producers.simulator.server import start_simulator
from sinks import db
from tests.integration.test_dlq import Pipe, _clean, wait_for
from txnpipe.commands.run import child_env

CONFIG = SimulatorConfig(seed=7, history_days=20, transactions_per_day=30, rate=0.0,
                         invalid_rate=0.05, repeat_rate=0.1, late_rate=0.3)  # fmt: skip
QUESTIONS = ("categories", "top-customers", "monthly")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _record(v: Version) -> dict[str, Any]:
    updated = datetime.fromtimestamp(v.updated_ms / 1000, UTC)
    return {
        "transaction_id": v.transaction_id, "customer_id": v.customer_id,
        "product_category": v.category, "status": v.status,
        "transaction_amount": f"{v.amount_cents // 100}.{v.amount_cents % 100:02d}",
        "transaction_date": v.transaction_date.isoformat(),
        "updated_at": updated.isoformat().replace("+00:00", "Z"),
    }  # fmt: skip


def late_versions(current: list[Version]) -> list[Version]:
    """For some transactions, a version between their first and current one, never served."""
    out = []
    for v in current[::7][:12]:
        out.append(Version(v.transaction_id, v.customer_id, v.category, v.amount_cents + 101,
                           v.transaction_date, "approved", v.updated_ms - 1))  # fmt: skip
    return out


def publish(settings: Settings, versions: list[Version]) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap,
                         "partitioner": "murmur2_random"})  # fmt: skip
    for v in versions:
        producer.produce(settings.topic("transactions.raw"), json.dumps(_record(v)).encode(),
                         v.transaction_id.encode())  # fmt: skip
    assert producer.flush(30) == 0


def truth(versions: list[Version], at: datetime, counted: frozenset[str]) -> dict[str, Any]:
    """The three answers known at ``at``, from clean versions alone."""
    known: dict[str, Version] = {}
    for v in versions:
        if v.updated_ms <= _ms(at):
            have = known.get(v.transaction_id)
            if have is None or v.updated_ms > have.updated_ms:
                known[v.transaction_id] = v
    cats: dict[str, list[int]] = {}
    custs: dict[str, int] = {}
    months: dict[str, int] = {}
    day = at.date()
    first = date(day.year - 1, day.month, 28 if (day.month, day.day) == (2, 29) else day.day)
    for v in known.values():
        if v.status not in counted:
            continue
        cats.setdefault(v.category, [0, 0])
        cats[v.category][0] += 1
        cats[v.category][1] += v.amount_cents
        custs[v.customer_id] = custs.get(v.customer_id, 0) + v.amount_cents
        if v.transaction_date >= first:
            m = v.transaction_date.strftime("%Y-%m")
            months[m] = months.get(m, 0) + v.amount_cents
    money = lambda c: f"{c // 100}.{c % 100:02d}"  # noqa: E731
    top = sorted(custs.items(), key=lambda kv: (-kv[1], kv[0].encode()))
    return {
        "categories": [{"product_category": k, "total_transactions": n, "total_amount": money(c)}
                       for k, (n, c) in sorted(cats.items(), key=lambda kv: kv[0].encode())],
        "top-customers": [{"customer_id": k, "total_amount": money(c)} for k, c in top],
        "monthly": [{"month": k, "total_amount": money(c)} for k, c in sorted(months.items())],
    }  # fmt: skip


@pytest.fixture(scope="module")
def pipe(kafka: str, mysql_server: Settings, redis_server: Settings, base_settings: Settings,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipe]:  # fmt: skip
    namespace = f"t{uuid.uuid4().hex[:10]}"
    tmp = tmp_path_factory.mktemp("asof")
    settings = load_settings({**base_settings.model_dump(), "namespace": namespace,
                              "mysql_database": f"txnpipe_{namespace}",
                              "state_dir": tmp / "state"})  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        with start_simulator(CONFIG, now=now) as sim:
            env = child_env(settings.model_copy(update={"api_url": sim.url}))
            polled = subprocess.run([sys.executable, "-m", "txnpipe", "poll", "--once"],
                                    env=env, capture_output=True, timeout=120)  # fmt: skip
            assert polled.returncode == 0, polled.stderr.decode()[-2000:]
            with sim.simulator.lock:
                entries = list(sim.simulator.feed.entries[: sim.simulator.feed.max_served + 1])
            p = Pipe(settings, env, sim, tmp, sim.truth(include_transactions=False), entries)
            for worker in ("stream-1", "stream-2"):
                p.start(worker, "stream", "--web-port", "0", "--session-timeout", "6",
                        "--batch-wait", "0.05", "--no-broker")  # fmt: skip
            p.start("sink", "sink")
            try:
                yield p
            finally:
                for name in list(p.procs):
                    p.stop(name)
    finally:
        _clean(settings)


def as_of(pipe: Pipe, at: datetime) -> dict[str, Any]:
    out = {}
    for q in QUESTIONS:
        stamp = at.isoformat().replace("+00:00", "Z")
        out[q] = json.loads(pipe.cli("query", q, "--as-of", stamp, "--limit", "100000", "--json"))
    return out


def stored(pipe: Pipe) -> tuple[int, int]:
    """(versions, of them stale-flagged) in MySQL, or (-1, -1) before the tables exist."""
    try:
        conn = db.connect(pipe.settings, autocommit=True)
    except Exception:
        return (-1, -1)
    try:
        cur = conn.cursor()
        cur.execute("SELECT COUNT(*), COALESCE(SUM(stale), 0) FROM transaction_versions")
        total, stale = cur.fetchone()
        return int(total), int(stale)
    except Exception:
        return (-1, -1)
    finally:
        conn.close()


@pytest.mark.slow
def test_as_of_answers_through_two_workers_equal_the_model_and_survive_a_rebuild(
    pipe: Pipe,
) -> None:
    served = [e.version for e in pipe.entries if e.version is not None]
    current: dict[str, Version] = {}
    for v in served:
        if v.transaction_id not in current or v.updated_ms > current[v.transaction_id].updated_ms:
            current[v.transaction_id] = v
    older = {
        (s.transaction_id)
        for s in served
        if s.updated_ms < current[s.transaction_id].updated_ms - 1
    }
    multi = [v for v in current.values() if v.transaction_id in older]
    late = late_versions(sorted(multi, key=lambda v: v.transaction_id))
    assert len(late) >= 5
    distinct = {(v.transaction_id, v.updated_ms) for v in served}
    # every distinct version stored once, the late ones flagged stale (the simulator's own
    # late replicas are of versions stored already: they change nothing)
    wait_for("the sink to store every served version",
             lambda: stored(pipe) == (len(distinct), 0) or stored(pipe))  # fmt: skip
    publish(pipe.settings, late)
    want = (len(distinct) + len(late), len(late))
    wait_for("the late versions, stale-flagged", lambda: stored(pipe) == want or stored(pipe))
    versions = served + late
    times = sorted(v.updated_ms for v in late)
    instants = [datetime.fromtimestamp(ms / 1000, UTC) for ms in (times[0], times[len(times) // 2])]
    instants += [datetime.fromtimestamp(min(v.updated_ms for v in served) / 1000 + 86_400, UTC),
                 datetime.now(UTC) + timedelta(days=1)]  # fmt: skip
    before = {at: as_of(pipe, at) for at in instants}
    for at, answers in before.items():
        assert answers == truth(versions, at, pipe.settings.counted), at
    assert before[instants[0]] != before[instants[-1]]  # the instants see different histories

    pipe.stop("sink")
    conn = db.connect(pipe.settings, autocommit=True)
    for table in ("transaction_versions", "transaction_ledger", "transactions"):
        conn.cursor().execute(f"DELETE FROM {table}")
    conn.close()
    pipe.cli("replay", "--from-beginning", "--target", "mysql")
    assert stored(pipe) == (len(distinct) + len(late), len(late))
    assert {at: as_of(pipe, at) for at in instants} == before
