"""The source stage's metrics against an in-process simulator: the client's requests and
retries and the simulator's own count agree, request by request."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry

from producers.client import RetryPolicy, TransactionsClient
from producers.metrics import PollerMetrics, SimulatorMetrics
from producers.simulator import FaultConfig, SimulatorConfig
from producers.simulator.server import RunningSimulator, Simulator
from tests.unit.common.promtool import check_metrics

CONFIG = SimulatorConfig(seed=3, history_days=3, transactions_per_day=60, rate=0.0)
NOW = datetime(2026, 3, 3, 3, 3, tzinfo=UTC)


class NoWait(threading.Event):
    """A stop event whose waits return at once (the backoff is not what is tested here)."""

    def wait(self, timeout: float | None = None) -> bool:
        return False


def test_client_and_simulator_count_the_same_requests_and_faults() -> None:
    faults = FaultConfig(rate_429=0.25, rate_5xx=0.25, retry_after=0)
    sim = Simulator(CONFIG, faults, api_key="k", now=NOW)
    sim.metrics = SimulatorMetrics("tsrc", CollectorRegistry())
    poller = PollerMetrics("tsrc", CollectorRegistry())
    with RunningSimulator(sim) as running:
        client = TransactionsClient(
            running.url, "k", stop=NoWait(), retry=RetryPolicy(max_retry_time=60), metrics=poller
        )
        cursor: str | None = None
        records = 0
        while True:
            page = client.fetch(None, cursor, 20)
            records += len(page)
            cursor = page.next_cursor
            if cursor is None:
                break
        client.close()
    ours, theirs = poller.registry.get_sample_value, sim.metrics.registry.get_sample_value
    p_base = {"namespace": "tsrc", "stage": "poller"}
    s_base = {"namespace": "tsrc", "stage": "simulator", "path": "/transactions"}
    statuses = ("200", "429", "500", "502", "503", "504")
    client_side = {
        s: ours("txnpipe_api_requests_total", {**p_base, "status": s}) or 0 for s in statuses
    }
    server_side = {
        s: theirs("txnpipe_simulator_requests_total", {**s_base, "status": s}) or 0
        for s in statuses
    }
    assert client_side == server_side and client_side["200"] > 1 and client_side["429"] > 0
    assert sum(client_side[s] for s in statuses[2:]) > 0
    retries = sum(
        ours("txnpipe_api_retries_total", {**p_base, "reason": r}) or 0 for r in ("429", "5xx")
    )
    assert retries == client.retries == sum(v for s, v in client_side.items() if s != "200")
    faults_total = sum(
        theirs(
            "txnpipe_simulator_faults_total", {"namespace": "tsrc", "stage": "simulator", "kind": k}
        )
        or 0
        for k in ("429", "5xx")
    )
    assert faults_total == retries
    served = theirs(
        "txnpipe_simulator_records_served_total", {"namespace": "tsrc", "stage": "simulator"}
    )
    assert served == records > 0
    check_metrics(poller.exposition())
    check_metrics(sim.metrics.exposition())
