"""The metric sets of every stage: names and labels by the Prometheus conventions, what
promtool says of each exposition, scrape-time gauges, the endpoint itself."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from common.errors import ConfigError
from common.metrics import StageMetrics
from common.settings import load_settings
from producers.metrics import PollerMetrics, SimulatorMetrics
from sinks.metrics import SinkMetrics
from stream_app.metrics import OUTCOMES, PartitionState, StreamMetrics
from tests.unit.common.promtool import check_metrics

NS = "tmetrics"

# The "at least" list, as (family name, type, labels beyond namespace and stage).
REQUIRED = {
    "poller": [
        ("txnpipe_poll_records", "counter", {"outcome"}),
        ("txnpipe_api_requests", "counter", {"status"}),
        ("txnpipe_api_retries", "counter", {"reason"}),
        ("txnpipe_poll_page_records", "histogram", set()),
        ("txnpipe_poll_page_duration_seconds", "histogram", set()),
        ("txnpipe_redis_errors", "counter", {"kind"}),
    ],
    "stream": [
        ("txnpipe_stream_records", "counter", {"outcome"}),
        ("txnpipe_dead_letters", "counter", {"reason"}),
        ("txnpipe_stream_ledger_entries", "counter", set()),
        ("txnpipe_stream_batch_records", "histogram", set()),
        ("txnpipe_stream_batch_duration_seconds", "histogram", set()),
        ("txnpipe_stream_publish_to_apply_seconds", "histogram", set()),
        ("txnpipe_stream_restores", "counter", set()),
        ("txnpipe_stream_consumer_lag", "gauge", {"partition"}),
        ("txnpipe_stream_freshness_seconds", "gauge", {"partition"}),
        ("txnpipe_redis_errors", "counter", {"kind"}),
    ],
    "sink": [
        ("txnpipe_sink_rows_written", "counter", {"table"}),
        ("txnpipe_sink_batch_messages", "histogram", set()),
        ("txnpipe_sink_batch_duration_seconds", "histogram", set()),
        ("txnpipe_dead_letters", "counter", {"reason"}),
        ("txnpipe_mysql_errors", "counter", {"kind"}),
        ("txnpipe_sink_freshness_seconds", "gauge", set()),
        ("txnpipe_sink_consumer_lag", "gauge", {"partition"}),
        ("txnpipe_sink_catch_all_rows", "gauge", set()),
    ],
    "simulator": [
        ("txnpipe_simulator_requests", "counter", {"path", "status"}),
        ("txnpipe_simulator_faults", "counter", {"kind"}),
    ],
}


def exercised() -> Iterator[StageMetrics]:
    """Each stage's set with a sample in every family (a family without one shows no labels)."""
    poller = PollerMetrics(NS)
    poller.records.inc(10, "read")
    poller.requests.inc(1, "200")
    poller.retries.inc(1, "429")
    poller.page_records.observe(10)
    poller.page_seconds.observe(0.1)
    poller.redis_errors.inc(1, "transient")
    yield poller
    stream = StreamMetrics(NS)
    stream.batch(
        records=12, skipped=1, applied=3, outcomes=(7, 2, 1, 2), entries=9,
        reasons={"invalid_amount": 2}, steps=(0.01, 0.002, 0.02, 0.003, 0.001),
    )  # fmt: skip
    stream.applied_at([1000.0, 1001.0], now=1002.0)
    stream.restores.inc()
    PartitionState(load_settings({"namespace": NS}), stream)  # owns no partition yet: no samples
    yield stream
    sink = SinkMetrics(NS)
    closed = load_settings({"namespace": NS, "mysql_port": _closed_port()})
    sink.watch(closed, "t.ledger", lambda: {0: 5})  # MySQL and the broker away: no samples
    sink.committed(
        messages=30, rows={"transaction_ledger": 20, "transaction_versions": 10}, dead=["x"],
        seconds=0.05,
    )  # fmt: skip
    sink.state("sink_consumer_lag_fixture", "(test only)", lambda: [(("0",), 3.0)], ["partition"])
    yield sink
    simulator = SimulatorMetrics(NS)
    simulator.requests.inc(1, "/transactions", "200")
    simulator.faults.inc(1, "5xx")
    yield simulator


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def families(metrics: StageMetrics) -> dict[str, Any]:
    text = metrics.exposition().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_every_stage_follows_the_naming_conventions() -> None:
    for metrics in exercised():
        found = families(metrics)
        ours = {n: f for n, f in found.items() if n.startswith("txnpipe_")}
        assert ours, metrics.stage
        for name, family in ours.items():
            assert family.documentation, name
            if family.type == "counter":
                assert all(s.name == f"{name}_total" for s in family.samples), name
            if "duration" in name or "latency" in name or "freshness" in name:
                assert name.endswith("_seconds"), name
            assert not name.endswith("_ms") and "millis" not in name, name
            for sample in family.samples:
                assert sample.labels["namespace"] == NS, (name, sample)
                assert sample.labels["stage"] == metrics.stage, (name, sample)
        assert "process_start_time_seconds" in found  # restarts show there too


def test_the_required_metrics_exist_with_their_labels() -> None:
    for metrics in exercised():
        found = families(metrics)
        for name, kind, labels in REQUIRED[metrics.stage]:
            assert name in found, (metrics.stage, name)
            family = found[name]
            assert family.type == kind, (name, family.type)
            sample_labels = {k for s in family.samples for k in s.labels if k != "le"}
            if kind == "gauge" and not family.samples:
                continue  # read at scrape time from a service that is away here
            assert sample_labels == {"namespace", "stage", *labels}, (name, sample_labels)


@pytest.mark.parametrize("stage", ["poller", "stream", "sink", "simulator"])
def test_promtool_accepts_each_exposition(stage: str) -> None:
    metrics = next(m for m in exercised() if m.stage == stage)
    check_metrics(metrics.exposition())


def test_stream_batch_counts_once_per_batch() -> None:
    metrics = StreamMetrics(NS, CollectorRegistry())
    for _ in range(3):
        metrics.batch(
            records=10, skipped=0, applied=2, outcomes=(6, 2, 1, 1), entries=8,
            reasons={"invalid_date": 1}, steps=(0.1, 0.1, 0.1, 0.1, 0.5),
        )  # fmt: skip
    value = metrics.registry.get_sample_value
    base = {"namespace": NS, "stage": "stream"}
    got = {o: value("txnpipe_stream_records_total", {**base, "outcome": o}) for o in OUTCOMES}
    assert got == {"accepted": 18, "duplicate": 6, "stale": 3, "invalid": 3}
    assert value("txnpipe_dead_letters_total", {**base, "reason": "invalid_date"}) == 3
    assert value("txnpipe_stream_batch_records_count", base) == 3
    assert value("txnpipe_stream_batch_records_sum", base) == 30
    # the batch duration is parse..apply; the publish runs on after the hand-off
    assert value("txnpipe_stream_batch_duration_seconds_sum", base) == pytest.approx(1.2)


def test_a_state_gauge_is_read_at_scrape_time_and_a_failure_yields_no_sample() -> None:
    metrics = StageMetrics(NS, "test", CollectorRegistry())
    readings = iter([5.0, 7.0])
    metrics.state("thing_lag", "a state", lambda: [(("0",), next(readings))], ["partition"])

    def broken() -> list[tuple[tuple[str, ...], float]]:
        raise OSError("service away")

    metrics.state("broken", "fails", broken)
    value = metrics.registry.get_sample_value
    labels = {"namespace": NS, "stage": "test", "partition": "0"}
    assert value("txnpipe_thing_lag", labels) == 5.0
    assert value("txnpipe_thing_lag", labels) == 7.0  # read again: fresh
    assert "txnpipe_broken" in metrics.exposition().decode()  # declared, no sample
    assert value("txnpipe_broken", {"namespace": NS, "stage": "test"}) is None


def test_a_state_gauge_reuses_a_reading_within_its_min_interval() -> None:
    metrics = StageMetrics(NS, "test", CollectorRegistry())
    calls: list[int] = []
    metrics.state("costly", "x", lambda: calls.append(1) or [((), float(len(calls)))], (), 60.0)
    for _ in range(3):
        metrics.exposition()
    assert len(calls) == 1


def test_the_endpoint_serves_get_metrics_and_a_taken_port_is_a_config_error() -> None:
    metrics = PollerMetrics(NS)
    metrics.records.inc(3, "read")
    port = metrics.serve(_closed_port())
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read().decode()
        assert (
            'txnpipe_poll_records_total{namespace="tmetrics",outcome="read",stage="poller"} 3.0'
            in body
        )
        with pytest.raises(ConfigError, match="--metrics-port"):
            PollerMetrics(NS).serve(port)
    finally:
        metrics.close()
    assert PollerMetrics(NS).serve(0) == 0  # 0: off


def test_docs_metrics_md_describes_every_metric() -> None:
    from pathlib import Path

    page = (Path(__file__).resolve().parents[3] / "docs" / "metrics.md").read_text()
    names = {"txnpipe_stage_restarts_total", "txnpipe_stage_up"}
    for metrics in exercised():
        for name, family in families(metrics).items():
            if name.startswith("txnpipe_") and not name.endswith("_fixture"):
                names.add(f"{name}_total" if family.type == "counter" else name)
    missing = sorted(n for n in names if f"`{n}`" not in page)
    assert not missing, missing
