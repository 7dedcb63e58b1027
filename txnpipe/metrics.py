"""``--metrics-port`` wiring: the flag of each long-running stage, and what ``txnpipe run``
does with it — its own endpoint (the supervisor: restarts, up) and a free port per child,
printed at start and written as a Prometheus ``file_sd`` targets file (docs/metrics.md).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.errors import ConfigError
from common.settings import Settings
from txnpipe.supervisor import Stage, Supervisor

if TYPE_CHECKING:  # prometheus-client is imported only by a command that serves metrics
    from common.metrics import StageMetrics

TARGETS_FILE = "prometheus-targets.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--metrics-port`` and ``--metrics-bind`` (TXNPIPE_METRICS_PORT / _BIND)."""
    group = parser.add_argument_group("metrics (Prometheus, docs/metrics.md)")
    group.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="serve GET /metrics on this port (0: off; default TXNPIPE_METRICS_PORT, else 0)",
    )
    group.add_argument(
        "--metrics-bind",
        default=None,
        help="address the metrics endpoint binds (default TXNPIPE_METRICS_BIND, 127.0.0.1)",
    )


def endpoint(args: argparse.Namespace, settings: Settings) -> tuple[int, str]:
    """(port, bind) from the flags, else the settings; exit 2 for a port out of range."""
    port = settings.metrics_port if args.metrics_port is None else int(args.metrics_port)
    if not 0 <= port < 65536:
        raise ConfigError(f"--metrics-port {port}: expected 0 (off) or a port number")
    return port, args.metrics_bind or settings.metrics_bind


def serve(metrics: StageMetrics, args: argparse.Namespace, settings: Settings) -> int:
    """Serve ``metrics`` as the flags say; the port (0: off)."""
    port, bind = endpoint(args, settings)
    return metrics.serve(port, bind)


class SupervisorCollector:
    """``txnpipe run``'s own metrics, read from the supervisor at scrape time (a
    prometheus-client collector: anything with ``collect()``)."""

    def __init__(self, namespace: str, supervisor: Supervisor) -> None:
        self.namespace = namespace
        self.supervisor = supervisor

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from common.metrics import BASE_LABELS

        restarts = CounterMetricFamily(
            "txnpipe_stage_restarts",
            "Times txnpipe run restarted a stage after it exited",
            labels=BASE_LABELS,
        )
        up = GaugeMetricFamily(
            "txnpipe_stage_up", "1 while the stage's process runs, else 0", labels=BASE_LABELS
        )
        for stage in self.supervisor.stages:
            restarts.add_metric([self.namespace, stage.name], stage.restarts)
            up.add_metric([self.namespace, stage.name], 1 if stage.pid is not None else 0)
        yield restarts
        yield up


def _free_port(bind: str) -> int:
    with socket.socket() as s:
        s.bind((bind, 0))
        port: int = s.getsockname()[1]
        return port


def plan_ports(stages: Sequence[Stage], bind: str) -> dict[str, int]:
    """Give each child stage a free metrics port (appended to its command line)."""
    ports: dict[str, int] = {}
    for stage in stages:
        ports[stage.name] = _free_port(bind)
        stage.argv = [*stage.argv, "--metrics-port", str(ports[stage.name]), "--metrics-bind", bind]
    return ports


def write_targets(path: Path, bind: str, ports: dict[str, int]) -> None:
    """A Prometheus ``file_sd_configs`` file: one target per endpoint, labelled by ``child``."""
    host = "127.0.0.1" if bind in ("0.0.0.0", "") else bind
    groups = [
        {"targets": [f"{host}:{port}"], "labels": {"child": name}} for name, port in ports.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(groups, indent=2) + "\n")
    tmp.replace(path)


def start_run_metrics(
    args: argparse.Namespace, settings: Settings, supervisor: Supervisor, run_dir: Path
) -> StageMetrics | None:
    """With ``--metrics-port P`` (P > 0): serve run's own metrics on P, give every child a free
    port, print them and write the targets file. Call before ``supervisor.start()``."""
    port, bind = endpoint(args, settings)
    if port == 0:
        for stage in supervisor.stages:  # children inherit TXNPIPE_METRICS_PORT: keep them off
            stage.argv = [*stage.argv, "--metrics-port", "0"]
        return None
    from common.metrics import StageMetrics

    metrics = StageMetrics(settings.namespace, "run")
    metrics.registry.register(SupervisorCollector(settings.namespace, supervisor))
    ports = {"run": metrics.serve(port, bind), **plan_ports(supervisor.stages, bind)}
    write_targets(run_dir / TARGETS_FILE, bind, ports)
    shown = "127.0.0.1" if bind in ("0.0.0.0", "") else bind
    for name, child_port in ports.items():
        print(f"txnpipe run: metrics {name} http://{shown}:{child_port}/metrics", file=sys.stderr)
    print(f"txnpipe run: Prometheus targets in {run_dir / TARGETS_FILE}", file=sys.stderr)
    return metrics
