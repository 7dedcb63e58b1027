"""Issue 14: N stream workers and N sinks give the same answers as one of each.

- 3 workers and 2 sinks over 12 partitions while the simulator keeps serving new data; one
  worker and one sink SIGKILLed mid-stream, one of each added: Redis and MySQL answer
  exactly the simulator's truth (nothing lost, nothing doubled).
- ``txnpipe run --workers 2 --sinks 2`` stopped, then started again on the same broker and
  namespace, catches up: stopping group members one after another used to wedge a group on
  the bundled broker (its last member left mid-rebalance) and the second run hung.
- Growing the partition count by the documented procedure (docs/SCALING.md: a new namespace
  with more partitions, the API read again from the start) gives the truth again.

The truth is the simulator's own model; the stages are real processes on the real broker,
MariaDB and Redis.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.kafka import admin_client, end_offsets, group_settled, partition_counts
from common.settings import Settings, load_settings
from producers.simulator.model import SimulatorConfig
from producers.simulator.server import RunningSimulator, start_simulator
from tests.integration.test_dlq import _clean, answers, wait_for
from tests.integration.test_end_to_end import our_processes
from txnpipe.commands.run import child_env, settled_check, sink_group, stream_group
from txnpipe.supervisor import Stage, Supervisor

CONFIG = SimulatorConfig(seed=14, history_days=20, transactions_per_day=40, rate=4.0,
                         customers=200)  # fmt: skip
DEADLINE = 150.0

pytestmark = pytest.mark.slow


def truth(sim: RunningSimulator) -> dict[str, Any]:
    doc = sim.truth(include_transactions=False)
    want = {"categories": doc["categories"], "top-customers": doc["top_customers"],
            "monthly": doc["monthly"]}  # fmt: skip
    return {"redis": want, "mysql": want}


def converged(settings: Settings, sim: RunningSimulator) -> Any:
    """True once both stores answer the truth of what the API served (and it served some)."""
    want, got = truth(sim), answers(settings)
    if not want["mysql"]["categories"]:
        return "the API has served nothing yet"
    return True if got == want else {"want": want, "got": got}


def simulator() -> RunningSimulator:
    now = datetime.now(UTC).replace(microsecond=0)
    return start_simulator(CONFIG, api_key="scale-key", now=now, frozen=True)


def counts(settings: Settings) -> Any:
    """Versions and ledger entries applied once each: Redis's counters (updated in the same
    Lua call as the state) equal the rows MySQL holds (unique keys) — True, or both."""
    import redis

    from sinks.db import connect

    client = redis.Redis.from_url(settings.redis_url)
    stats = client.hmget(settings.redis_key("stats"), ("versions", "entries"))
    client.close()
    conn = connect(settings, autocommit=True)
    try:
        cur = conn.cursor()
        rows = []
        for table in ("transaction_versions", "transaction_ledger"):
            cur.execute(f"SELECT COUNT(*) FROM {table}")
            rows.append(int(cur.fetchone()[0]))
    finally:
        conn.close()
    redis_counts = [int(x or 0) for x in stats]
    return True if redis_counts == rows and rows[0] > 0 else {"redis": redis_counts, "mysql": rows}


def worker(settings: Settings, name: str) -> Stage:
    argv = ["stream", "--web-port", "0", "--session-timeout", "6", "--batch-size", "50",
            "--no-broker"]  # fmt: skip
    return Stage(name, argv, settings.state_dir / f"{name}.log", group=stream_group(settings))


def sink(settings: Settings, name: str) -> Stage:
    return Stage(name, ["sink"], settings.state_dir / f"{name}.log", group=sink_group(settings))


def kill(stage: Stage) -> None:
    assert stage.proc is not None and stage.proc.poll() is None, f"{stage.name} is not running"
    os.killpg(stage.proc.pid, signal.SIGKILL)
    stage.proc.wait(10)


def test_three_workers_two_sinks_one_of_each_killed_and_added_mid_stream(
    services: Settings,
) -> None:
    settings = services.model_copy(update={"partitions": 12})
    with simulator() as sim:
        env = child_env(settings.model_copy(update={"api_url": sim.url, "api_key": type(
            settings.api_key)("scale-key")}))  # fmt: skip
        stages = [Stage("poller", ["poll", "--interval", "0.5"], settings.state_dir / "poll.log",
                        stop_rank=-1)]  # fmt: skip
        stages += [worker(settings, f"stream-{i}") for i in (1, 2, 3)]
        stages += [sink(settings, f"sink-{i}") for i in (1, 2)]
        tree = Supervisor(stages, env, settled=settled_check(settings))
        tree.start()
        try:
            wait_for("the history to reach Redis and MySQL", lambda: converged(settings, sim))
            assert partition_counts(
                settings.kafka_bootstrap,
                [settings.topic("transactions.raw"), settings.topic("transactions.ledger")],
            ) == {settings.topic("transactions.raw"): 12, settings.topic("transactions.ledger"): 12}
            raw = settings.topic("transactions.raw")
            before = sum(end_offsets(settings.kafka_bootstrap, raw).values())
            sim.simulator.advance(120)  # ~480 new transactions and the updates that fall due
            by = {s.name: s for s in stages}
            wait_for("the poller to publish new records", lambda: sum(end_offsets(
                settings.kafka_bootstrap, raw).values()) > before or "nothing new yet")  # fmt: skip
            kill(by["stream-2"])
            kill(by["sink-1"])
            sim.simulator.advance(120)
            tree.add(worker(settings, "stream-4"))
            tree.add(sink(settings, "sink-3"))
            for added, marker in (("stream-4", "assigned partitions=["),
                                  ("sink-3", "sink: assigned partitions [")):  # fmt: skip
                wait_for(f"{added} to be given partitions", lambda a=added, m=marker: bool(
                    re.search(re.escape(m) + r"\d", (settings.state_dir / f"{a}.log").read_text(
                        errors="replace"))) or "not yet")  # fmt: skip
            sim.simulator.advance(120)  # and more, with the new members in the groups
            wait_for("the answers to equal the truth after the kills", lambda: converged(
                settings, sim))  # fmt: skip
            wait_for("every version and entry once in each store", lambda: counts(settings))
        finally:
            tree.stop()
        for stage in tree.stages:
            assert stage.proc is not None and stage.proc.poll() is not None
        admin = admin_client(settings.kafka_bootstrap)
        assert group_settled(admin, sink_group(settings))
        assert group_settled(admin, stream_group(settings))


def run_pipeline(env: dict[str, str], *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "txnpipe", "run", "--no-view", "--web-port", "0",
         "--workers", "2", "--sinks", "2", "--refresh", "1", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def stop_pipeline(run: subprocess.Popen[str], namespace: str) -> None:
    run.send_signal(signal.SIGINT)
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 0, output[-3000:]
    wait_for("every stage to exit", lambda: our_processes(namespace) == [] or our_processes(
        namespace), deadline=30)  # fmt: skip


def test_run_two_and_two_stops_starts_again_and_grows_its_partitions(
    services: Settings, tmp_path: Path
) -> None:
    with simulator() as sim:
        env = {**os.environ, "TXNPIPE_NAMESPACE": services.namespace,
               "TXNPIPE_MYSQL_DATABASE": services.mysql_database, "TXNPIPE_API_URL": sim.url,
               "TXNPIPE_API_KEY": "scale-key", "TXNPIPE_STATE_DIR": str(tmp_path),
               "TXNPIPE_PARTITIONS": "3"}  # fmt: skip
        run = run_pipeline(env)
        try:
            wait_for("the first run to catch up", lambda: converged(services, sim))
        finally:
            stop_pipeline(run, services.namespace)

        before = truth(sim)
        sim.simulator.advance(300)  # new data while stopped: the second run must catch up
        run = run_pipeline(env)
        try:
            wait_for("the second run to poll the new data", lambda: truth(sim) != before or "no")
            wait_for("the second run to catch up (it hung on a wedged group before)",
                     lambda: converged(services, sim))  # fmt: skip
        finally:
            stop_pipeline(run, services.namespace)

        # Growing partitions: a new namespace (and database) with more partitions, the API
        # read again from the start; the old namespace answers until the switch, then goes.
        grown = load_settings({**services.model_dump(), "namespace": f"t{uuid.uuid4().hex[:10]}",
                               "partitions": 6})  # fmt: skip
        grown = grown.model_copy(update={"mysql_database": f"txnpipe_{grown.namespace}"})
        grown_env = {**env, "TXNPIPE_NAMESPACE": grown.namespace, "TXNPIPE_PARTITIONS": "6",
                     "TXNPIPE_MYSQL_DATABASE": grown.mysql_database}  # fmt: skip
        try:
            sim.simulator.advance(300)
            run = run_pipeline(grown_env)
            try:
                wait_for("the grown namespace to answer the truth", lambda: converged(grown, sim))
            finally:
                stop_pipeline(run, grown.namespace)
            raw = grown.topic("transactions.raw")
            ledger = grown.topic("transactions.ledger")
            assert partition_counts(grown.kafka_bootstrap, [raw, ledger]) == {raw: 6, ledger: 6}
        finally:
            _clean(grown)
