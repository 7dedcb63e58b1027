"""``--metrics-port`` on the command line: usage errors, and how ``txnpipe run`` hands a free
port to each child and tells Prometheus where they are."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from common.settings import load_settings
from stream_app.fold import RawMessage, fold_batch, parse_batch
from txnpipe.cli import main
from txnpipe.metrics import SupervisorCollector, plan_ports, start_run_metrics, write_targets
from txnpipe.supervisor import Stage, Supervisor


@pytest.mark.parametrize("command", ["poll", "stream", "sink", "simulate-api"])
def test_a_bad_metrics_port_is_a_usage_error(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([command, "--metrics-port", "70000"]) == 2
    err = capsys.readouterr().err
    assert "--metrics-port 70000" in err and len(err.strip().splitlines()) == 1


def test_run_gives_each_child_its_own_port_and_writes_the_targets(tmp_path: Path) -> None:
    stages = [
        Stage(n, [n.split("-")[0]], tmp_path / f"{n}.log")
        for n in ("poller", "stream-1", "stream-2", "sink")
    ]
    ports = plan_ports(stages, "127.0.0.1")
    assert len(set(ports.values())) == 4 and all(p > 0 for p in ports.values())
    for stage in stages:
        assert list(stage.argv[-4:]) == [
            "--metrics-port",
            str(ports[stage.name]),
            "--metrics-bind",
            "127.0.0.1",
        ]
    write_targets(tmp_path / "targets.json", "0.0.0.0", ports)
    groups = json.loads((tmp_path / "targets.json").read_text())
    assert groups == [
        {"targets": [f"127.0.0.1:{port}"], "labels": {"child": name}}
        for name, port in ports.items()
    ]


def test_without_a_port_children_are_told_to_keep_metrics_off(tmp_path: Path) -> None:
    settings = load_settings({"metrics_port": 9999})  # inherited by children through the env
    supervisor = Supervisor([Stage("sink", ["sink"], tmp_path / "s.log")], {})
    args = argparse.Namespace(metrics_port=0, metrics_bind=None)
    assert start_run_metrics(args, settings, supervisor, tmp_path) is None
    assert list(supervisor.stages[0].argv) == ["sink", "--metrics-port", "0"]


def test_run_reports_restarts_and_up_per_stage(tmp_path: Path) -> None:
    stages = [
        Stage("poller", ["poll"], tmp_path / "p.log"),
        Stage("sink", ["sink"], tmp_path / "s.log"),
    ]
    stages[1].restarts = 3
    registry = CollectorRegistry()
    registry.register(SupervisorCollector("tns", Supervisor(stages, {})))  # type: ignore[arg-type]
    from prometheus_client import generate_latest

    found = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    restarts = {s.labels["stage"]: s.value for s in found["txnpipe_stage_restarts"].samples}
    assert restarts == {"poller": 0, "sink": 3}
    assert found["txnpipe_stage_restarts"].type == "counter"
    assert {s.value for s in found["txnpipe_stage_up"].samples} == {0}  # nothing started


def test_a_fold_counts_its_dead_letters_by_reason() -> None:
    value = b'[{"bad": 1}, 42, {"transaction_id": "t1"}]'
    parsed = parse_batch(0, [RawMessage(0, None, value)])
    fold = fold_batch(
        parsed, {}, watermark=-1, counted={"pending", "approved"}, raw_topic="t.raw",
        accepted_at=__import__("datetime").datetime.now(__import__("datetime").UTC),
    )  # fmt: skip
    assert fold.invalid == 3 and sum(fold.reasons.values()) == 3
    assert "not_an_object" in fold.reasons
