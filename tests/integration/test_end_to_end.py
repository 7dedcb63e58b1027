"""Issue 5 end to end: ``txnpipe run`` against the simulator until Redis and MySQL answer
exactly what the simulator's own model says; Ctrl-C leaves nothing running; a replay keeps
the answers; ``txnpipe status`` reports healthy."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from producers.simulator.model import SimulatorConfig
from producers.simulator.server import FaultConfig, start_simulator

DEADLINE = 240.0


def txnpipe(
    *args: str, env: dict[str, str], timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "txnpipe", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def answers(source: str, env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for question in ("categories", "top-customers", "monthly"):
        limit = ["--limit", "1000000"] if question == "top-customers" else []
        proc = txnpipe("query", question, "--source", source, "--json", *limit, env=env, timeout=60)
        if proc.returncode != 0:
            return {"error": proc.stderr}
        out[question] = json.loads(proc.stdout)
    return out


def expected(truth: dict[str, Any]) -> dict[str, Any]:
    return {
        "categories": truth["categories"],
        "top-customers": truth["top_customers"],
        "monthly": truth["monthly"],
    }


def our_processes(namespace: str) -> list[int]:
    """Pids of live processes started with this test's namespace in their environment."""
    found = []
    needle = f"TXNPIPE_NAMESPACE={namespace}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_for(condition: Any, what: str, deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        last = condition()
        if last is True:
            return True
        time.sleep(1.0)  # polling interval of a condition with a deadline, not synchronisation
    raise AssertionError(f"timed out waiting for {what}; last: {str(last)[:2000]}")


@pytest.mark.slow
def test_run_replay_rules_change_and_status(services: Settings, tmp_path: Path) -> None:
    config = SimulatorConfig(
        seed=11, history_days=90, transactions_per_day=25, rate=0.0, customers=300
    )
    now = datetime.now(UTC).replace(microsecond=0)
    sim = start_simulator(
        config,
        faults=FaultConfig(rate_429=0.05, rate_5xx=0.05),
        api_key="e2e-key",
        now=now,
        frozen=True,
    )
    env = {
        **os.environ,
        "TXNPIPE_NAMESPACE": services.namespace,
        "TXNPIPE_MYSQL_DATABASE": services.mysql_database,
        "TXNPIPE_API_URL": sim.url,
        "TXNPIPE_API_KEY": "e2e-key",
        "TXNPIPE_STATE_DIR": str(tmp_path),
        "TXNPIPE_PARTITIONS": "3",
    }

    def truth(counted: frozenset[str] | None = None) -> dict[str, Any]:
        return expected(sim.truth(counted=counted, include_transactions=False))

    def converged(env: dict[str, str], counted: frozenset[str] | None = None) -> Any:
        want = truth(counted)
        got = {"redis": answers("redis", env), "mysql": answers("mysql", env)}
        return True if got["redis"] == want and got["mysql"] == want else {"truth": want, **got}

    run = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "txnpipe",
            "run",
            "--no-view",
            "--web-port",
            "0",
            "--dashboard-port",
            "0",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(
            lambda: bool(truth()["categories"]) or "no data served yet",
            "the poller to read the API",
        )
        wait_for(lambda: converged(env), "Redis and MySQL to equal the simulator's truth")
        truth_before = truth()
        assert truth_before["categories"] and truth_before["top-customers"]

        # a replay while the pipeline runs neither loses nor doubles anything
        replay = txnpipe("replay", "--from-beginning", "--target", "all", env=env, timeout=300)
        assert replay.returncode == 0, replay.stderr[-3000:]
        wait_for(lambda: converged(env), "the answers to settle after a replay while running")
    finally:
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=90)
    assert run.returncode == 0, output[-3000:]
    wait_for(
        lambda: our_processes(services.namespace) == [] or our_processes(services.namespace),
        "every stage to exit",
        deadline=30,
    )

    # idempotent: a replay of a stopped pipeline gives the same answers again
    replay = txnpipe("replay", "--from-beginning", "--target", "all", env=env, timeout=300)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert answers("redis", env) == truth_before
    assert answers("mysql", env) == truth_before

    # a change of rules (pending no longer counted) takes effect through a replay
    approved_only = frozenset({"approved"})
    assert truth(approved_only) != truth_before
    strict_env = {**env, "TXNPIPE_COUNTED_STATUSES": "approved"}
    replay = txnpipe("replay", "--from-beginning", "--target", "all", env=strict_env, timeout=300)
    assert replay.returncode == 0, replay.stderr[-3000:]
    assert converged(strict_env, approved_only) is True

    status = txnpipe("status", "--json", env=env, timeout=120)
    report = json.loads(status.stdout)
    assert status.returncode == 0 and report["healthy"], (
        status.stdout[-3000:] + status.stderr[-2000:]
    )
    assert {s["name"] for s in report["stages"]} == {"poller", "stream", "sink"}
    lags = {s["name"]: s["lag"] for s in report["stages"]}
    assert lags["stream"] == 0 and lags["sink"] == 0, status.stdout[-3000:]
    assert (
        report["dead_letters"]
        >= sim.truth(include_transactions=False)["served"]["invalid_distinct"]
    )
    sim.stop()
