"""`txnpipe reconcile` on real services (issue 10): a pipeline run to caught-up, then damaged
behind its back one way at a time (and all at once); each time reconcile exits 1 naming the
damage with the right counts, `--repair` then the pipeline catching up bring it back, and
reconcile exits 0 with Redis, MySQL and the seed's SQL answering the simulator's truth.

One pipeline per module (simulator, a stream worker and a sink kept running); the tests run
in order on it and each leaves it repaired.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings, load_settings
from producers.simulator.model import SimulatorConfig
from producers.simulator.server import start_simulator
from tests.integration.test_dlq import Pipe, _clean, answers, wait_for
from txnpipe.commands.run import child_env

CONFIG = SimulatorConfig(seed=3, history_days=10, transactions_per_day=50, rate=2.0,
                         invalid_rate=0.05)  # fmt: skip


class Recon(Pipe):
    def reconcile(self, *args: str, code: int = 0) -> dict[str, Any]:
        done = subprocess.run([sys.executable, "-m", "txnpipe", "reconcile", "--json", *args],
                              env=self.env, capture_output=True, timeout=180)  # fmt: skip
        out = done.stdout.decode()
        if done.returncode != code:
            pytest.fail(f"reconcile {args}: exit {done.returncode}\n{out}\n{done.stderr.decode()}")
        doc: dict[str, Any] = json.loads(out)
        return doc

    def truth_answers(self) -> dict[str, Any]:
        doc = self.sim.truth(include_transactions=False)
        return {"categories": doc["categories"], "top-customers": doc["top_customers"],
                "monthly": doc["monthly"]}  # fmt: skip

    def caught_up(self) -> None:
        """Redis and MySQL (the seed's SQL on `transactions`) answer the simulator's truth."""
        want = self.truth_answers()
        wait_for("answers to equal the truth",
                 lambda: answers(self.settings) == {"redis": want, "mysql": want}
                 or answers(self.settings))  # fmt: skip

    def sql(self, *statements: str) -> list[Any]:
        import mysql.connector

        conn = mysql.connector.connect(
            host=self.settings.mysql_host, port=self.settings.mysql_port,
            user=self.settings.mysql_user, database=self.settings.mysql_database,
            password=self.settings.mysql_password.get_secret_value(), autocommit=True,
        )  # fmt: skip
        out: list[Any] = []
        cur = conn.cursor()
        for statement in statements:
            cur.execute(statement)
            out.append(cur.fetchall() if cur.with_rows else cur.rowcount)
        conn.close()
        return out

    def redis(self) -> Any:
        import redis

        return redis.Redis.from_url(self.settings.redis_url)

    def repaired(self) -> None:
        """`--repair` succeeds, the pipeline catches up, reconcile agrees, answers = truth."""
        self.reconcile("--repair")
        wait_for("reconcile to agree", lambda: self.recheck())
        self.caught_up()

    def recheck(self) -> Any:
        done = subprocess.run([sys.executable, "-m", "txnpipe", "reconcile", "--json"],
                              env=self.env, capture_output=True, timeout=120)  # fmt: skip
        return True if done.returncode == 0 else done.stdout.decode()[-2000:]


def diffs(doc: dict[str, Any], section: str) -> dict[str, int]:
    counts: dict[str, int] = doc[section]["differences"]
    return counts


@pytest.fixture(scope="module")
def pipe(
    kafka: str, mysql_server: Settings, redis_server: Settings, base_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Recon]:  # fmt: skip
    namespace = f"t{uuid.uuid4().hex[:10]}"
    tmp: Path = tmp_path_factory.mktemp("reconcile")
    settings = load_settings({**base_settings.model_dump(), "namespace": namespace,
                              "mysql_database": f"txnpipe_{namespace}",
                              "state_dir": tmp / "state"})  # fmt: skip
    try:
        with start_simulator(CONFIG, now=datetime.now(UTC).replace(microsecond=0)) as sim:
            # three partitions: every restore reads each ledger partition to its end
            settings = settings.model_copy(update={"api_url": sim.url, "partitions": 3})
            env = child_env(settings)
            p = Recon(settings, env, sim, tmp, {}, [])
            p.cli("poll", "--once")
            p.start("stream", "stream", "--web-port", "0", "--session-timeout", "6",
                    "--batch-wait", "0.05", "--no-broker")  # fmt: skip
            p.start("sink", "sink")
            try:
                p.caught_up()
                yield p
            finally:
                for name in list(p.procs):
                    p.stop(name)
    finally:
        _clean(settings)


def test_a_clean_pipeline_agrees_while_new_data_arrives(pipe: Recon) -> None:
    doc = pipe.reconcile()
    assert doc["agree"] is True
    assert doc["api_mysql"]["checked"] > 400
    assert all(doc[s]["differences"] == {} for s in ("api_mysql", "ledger_mysql", "redis_mysql"))
    recent = pipe.reconcile("--since", (datetime.now(UTC) - timedelta(days=2)).isoformat())
    assert recent["agree"] is True
    assert 0 < recent["api_mysql"]["checked"] < doc["api_mysql"]["checked"]
    pipe.start("poll", "poll", "--interval", "0.3")
    stop = threading.Event()

    def arrivals() -> None:
        while not stop.wait(1.0):
            pipe.sim.simulator.advance(1.0)  # two new records a second

    feeder = threading.Thread(target=arrivals, daemon=True)
    feeder.start()
    try:
        for _ in range(2):
            assert pipe.reconcile()["agree"] is True
    finally:
        stop.set()
        feeder.join(5)
        pipe.stop("poll")
    pipe.cli("poll", "--once")
    pipe.caught_up()


def _single_version_ids(pipe: Recon, n: int, counted: bool = True) -> list[str]:
    rows = pipe.sql(
        "SELECT v.transaction_id FROM transaction_versions v JOIN transactions t "
        "USING (transaction_id) GROUP BY v.transaction_id HAVING COUNT(*) = 1 "
        f"ORDER BY v.transaction_id LIMIT {n + 20}"
    )[0]
    return [str(r[0]) for r in rows]


def test_deleted_mysql_rows_are_found_and_repaired(pipe: Recon) -> None:
    ids = _single_version_ids(pipe, 5)
    gone_current, gone_versions = ids[:3], ids[3:5]
    q = ", ".join(f"'{i}'" for i in gone_current)
    v = ", ".join(f"'{i}'" for i in gone_versions)
    pipe.sql(f"DELETE FROM transactions WHERE transaction_id IN ({q})",
             f"DELETE FROM transaction_versions WHERE transaction_id IN ({v})")  # fmt: skip
    doc = pipe.reconcile(code=1)
    assert diffs(doc, "api_mysql") == {"missing": 5}
    assert sorted(doc["api_mysql"]["examples"]["missing"]) == sorted(ids[:5])
    assert sum(sum(m.values()) for m in doc["api_mysql"]["by_month"].values()) == 5
    assert diffs(doc, "ledger_mysql") == {"mismatch": 3}  # entries but no current row
    assert doc["redis_mysql"]["agree"] is False  # MySQL's sums lost those three
    pipe.repaired()


def test_deleted_and_changed_ledger_rows_are_rewritten_from_the_versions(pipe: Recon) -> None:
    ids = _single_version_ids(pipe, 3)
    pipe.sql(
        f"DELETE FROM transaction_ledger WHERE transaction_id IN ('{ids[0]}', '{ids[1]}')",
        f"UPDATE transaction_ledger SET amount = amount + 1 WHERE transaction_id = '{ids[2]}'",
    )
    doc = pipe.reconcile(code=1)
    assert diffs(doc, "ledger_mysql") == {"mismatch": 3}
    assert sorted(doc["ledger_mysql"]["examples"]["mismatch"]) == sorted(ids[:3])
    assert diffs(doc, "api_mysql") == {}
    repaired = pipe.reconcile("--repair")
    assert repaired["repair"]["rewritten_from_versions"] == 3
    wait_for("reconcile to agree", lambda: pipe.recheck())
    pipe.caught_up()


def test_changed_redis_aggregates_are_rebuilt_by_the_restore(pipe: Recon) -> None:
    r, ns = pipe.redis(), pipe.settings.namespace
    cats = sorted(r.hkeys(f"{ns}:agg:cat:count"))
    r.hincrby(f"{ns}:agg:cat:count", cats[0], 2)
    r.hincrby(f"{ns}:agg:cat:cents", cats[1], 999)
    member = r.zrange(f"{ns}:agg:customer", 0, 0)[0]
    r.zincrby(f"{ns}:agg:customer", 5, member)
    day = sorted(r.hkeys(f"{ns}:agg:day"))[0]
    r.hset(f"{ns}:agg:day", day, 1)
    r.close()
    doc = pipe.reconcile(code=1)
    assert diffs(doc, "redis_mysql") == {"category": 2, "customer": 1, "day": 1}
    assert doc["redis_mysql"]["examples"]["customer"] == [member.decode()]
    assert diffs(doc, "api_mysql") == diffs(doc, "ledger_mysql") == {}
    pipe.repaired()


def test_a_lost_raw_partition_state_is_found_and_restored(pipe: Recon) -> None:
    r, ns = pipe.redis(), pipe.settings.namespace
    partition = max(range(3), key=lambda p: r.hlen(f"{ns}:state:{p}"))
    pipe_ = r.pipeline(transaction=True)
    pipe_.delete(f"{ns}:state:{partition}")
    pipe_.hdel(f"{ns}:wm", str(partition))
    pipe_.execute()
    r.close()
    doc = pipe.reconcile(code=1)
    assert diffs(doc, "redis_mysql") == {"state_lost": 1}
    assert doc["redis_mysql"]["examples"]["state_lost"] == [f"partition {partition}"]
    pipe.repaired()


def test_records_that_never_reached_kafka_are_republished(pipe: Recon) -> None:
    from producers.checkpoint import CheckpointStore
    from producers.publisher import format_since
    from producers.sweep import republish, subset, sweep
    from sinks.audit import read_view

    before = read_view(pipe.settings).newest
    pipe.sim.simulator.advance(120)  # new transactions and new versions of older ones
    swept = sweep(pipe.settings)
    changed = sorted(t for t, v in swept.newest.items() if before.get(t) != v.updated_at)
    assert len(changed) > 20
    sent, lost = changed[::2], changed[1::2]
    republish(pipe.settings, subset(swept, sent))  # "publish part of a sweep only"
    store = CheckpointStore(pipe.settings)  # the poller believes it published everything
    store.save(format_since(max(v.updated_at for v in swept.newest.values())), len(sent))
    store.close()
    doc = pipe.reconcile(code=1)
    want_missing = sum(1 for t in lost if t not in before)
    want = {k: n for k, n in (("missing", want_missing), ("behind", len(lost) - want_missing)) if n}
    assert diffs(doc, "api_mysql") == want
    pipe.repaired()


def test_all_damage_at_once(pipe: Recon) -> None:
    ids = _single_version_ids(pipe, 4)
    pipe.sql(f"DELETE FROM transactions WHERE transaction_id = '{ids[0]}'",
             f"DELETE FROM transaction_versions WHERE transaction_id = '{ids[1]}'",
             f"DELETE FROM transaction_ledger WHERE transaction_id = '{ids[2]}'")  # fmt: skip
    r, ns = pipe.redis(), pipe.settings.namespace
    r.hincrby(f"{ns}:agg:day", sorted(r.hkeys(f"{ns}:agg:day"))[-1], 7)
    r.delete(f"{ns}:state:0")
    r.hdel(f"{ns}:wm", "0")
    r.close()
    doc = pipe.reconcile(code=1)
    assert diffs(doc, "api_mysql") == {"missing": 2}
    assert diffs(doc, "ledger_mysql") == {"mismatch": 2}
    assert doc["redis_mysql"]["differences"]["state_lost"] == 1
    pipe.repaired()
