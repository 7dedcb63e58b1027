"""Simulator → poller → stream worker → Redis answers == the simulator's own ground truth.

The truth is folded from the simulator's clean model, never from ``schemas``: agreement
means the dirty forms, invalid records, repeats and late replicas the simulator serves,
the poller's per-partition batches and the stream app's cleaning all read CONTRACT §1-§3
the same way. Every fault is on while the poller runs.
"""

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

from common.settings import Settings
from producers.simulator import FaultConfig, SimulatorConfig, start_simulator

KEY = "truth-key"


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TXNPIPE_")}


def _flags(settings: Settings) -> list[str]:
    return [
        "--namespace", settings.namespace,
        "--kafka-bootstrap", settings.kafka_bootstrap,
        "--redis-url", settings.redis_url,
    ]  # fmt: skip


def _query(settings: Settings, question: str) -> Any:
    result = subprocess.run(
        [sys.executable, "-m", "txnpipe", "query", question, "--json", "--limit", "1000000",
         *_flags(settings)],
        capture_output=True, text=True, timeout=60, env=_env(),
    )  # fmt: skip
    return json.loads(result.stdout) if result.returncode == 0 else None


def test_pipeline_answers_equal_the_simulators_truth(
    topics: Settings, redis_ns: Settings, tmp_path: Path
) -> None:
    config = SimulatorConfig(seed=23, history_days=25, transactions_per_day=60, rate=0.0)
    faults = FaultConfig.uniform(0.08, slow_seconds=0.2, retry_after=1)
    now = datetime.now(UTC).replace(microsecond=0)
    with start_simulator(config, faults=faults, api_key=KEY, now=now) as sim:
        polled = subprocess.run(
            [sys.executable, "-m", "txnpipe", "poll", "--once", "--page-size", "300",
             "--api-url", sim.url, "--api-key", KEY, *_flags(topics)],
            capture_output=True, text=True, timeout=120, env=_env(),
        )  # fmt: skip
        assert polled.returncode == 0, polled.stderr[-2000:]
        truth = sim.truth(include_transactions=False)
    assert truth["served"]["invalid_distinct"] > 0 and truth["feed_counts"]["stale"] > 0
    log = (tmp_path / "stream.log").open("ab")
    worker = subprocess.Popen(
        [sys.executable, "-m", "txnpipe", "stream", "--web-port", "0", "--session-timeout", "6",
         "--batch-wait", "0.05", "--no-broker", *_flags(topics)],
        stdout=log, stderr=subprocess.STDOUT, env=_env(),
    )  # fmt: skip
    try:
        wanted = {
            "categories": truth["categories"],
            "top-customers": truth["top_customers"],
            "monthly": truth["monthly"],
        }
        assert all(wanted.values())
        got: dict[str, Any] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            got = {question: _query(topics, question) for question in wanted}
            if got == wanted:
                break
            time.sleep(0.5)
        assert got["categories"] == wanted["categories"]
        assert got["top-customers"] == wanted["top-customers"]
        assert got["monthly"] == wanted["monthly"]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
