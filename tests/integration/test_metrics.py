"""Issue 11 metrics end to end: ``txnpipe run --metrics-port`` with a REAL Prometheus server
scraping every stage (found through the targets file run writes), promtool on each
endpoint's real output, and PromQL answering with the numbers ``txnpipe status --json``
reports once the pipeline has caught up."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from common.settings import Settings
from tests.integration.test_end_to_end import txnpipe, wait_for
from tests.unit.common.promtool import binary, check_metrics

STAGES = {"run", "simulator", "poller", "stream-1", "sink"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def get(url: str, timeout: float = 10) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        body: bytes = response.read()
    return body


def endpoints(log: Path) -> dict[str, str]:
    """The metrics URLs ``txnpipe run`` printed in its start-up lines."""
    found = {}
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("txnpipe run: metrics "):
            _, _, _, name, url = line.split(" ", 4)
            found[name] = url
    return found


def rows(settings: Settings, table: str) -> float:
    from sinks import db

    conn = db.connect(settings, autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute(f"SELECT COUNT(*) FROM {table}")
        return float(cur.fetchone()[0])
    finally:
        db.close_quietly(conn)


class Prometheus:
    """A Prometheus server of this test's own: free port, temp config and storage."""

    def __init__(self, workdir: Path, targets_file: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            "global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}\n"
            "scrape_configs:\n"
            "  - job_name: txnpipe\n"
            "    file_sd_configs:\n"
            f"      - files: ['{targets_file}']\n"
            "        refresh_interval: 1s\n"
        )
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        doc = json.loads(get(url))
        assert doc["status"] == "success", doc
        result: list[dict[str, Any]] = doc["data"]["result"]
        return result

    def scalar(self, promql: str) -> float | None:
        try:
            result = self.query(promql)
        except OSError:
            return None  # not listening yet
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


def test_prometheus_scrapes_every_stage_and_agrees_with_status(
    services: Settings, tmp_path: Path
) -> None:
    binary("prometheus")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TXNPIPE_")},
        "TXNPIPE_NAMESPACE": services.namespace,
        "TXNPIPE_MYSQL_DATABASE": services.mysql_database,
        "TXNPIPE_STATE_DIR": str(tmp_path / "state"),
        "TXNPIPE_PARTITIONS": "3",
    }  # no TXNPIPE_API_URL: run starts its own simulator, a fourth stage to scrape
    targets = tmp_path / "state" / "run" / services.namespace / "prometheus-targets.json"
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        run = subprocess.Popen(
            [sys.executable, "-m", "txnpipe", "run", "--no-view", "--web-port", "0",
             "--metrics-port", str(free_port()), "--history-days", "20", "--rate", "0",
             "--seed", "7"],
            env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    prometheus: Prometheus | None = None
    try:
        wait_for(
            lambda: "Prometheus targets in" in log.read_text() or log.read_text()[-2000:],
            "run's start-up lines",
            60,
        )
        urls = endpoints(log)
        assert set(urls) == STAGES, urls
        assert {g["labels"]["child"] for g in json.loads(targets.read_text())} == STAGES
        prometheus = Prometheus(tmp_path, targets)
        assert prometheus is not None

        def all_up() -> Any:
            up = prometheus.scalar("count(up == 1)")
            return True if up == len(STAGES) else f"targets up: {up}"

        wait_for(all_up, "Prometheus to scrape every stage", 120)

        def agrees() -> Any:
            """PromQL first, then status: a mismatch is work in flight; look again."""
            promql = {
                o: prometheus.scalar(f'sum(txnpipe_stream_records_total{{outcome="{o}"}})')
                for o in ("accepted", "stale", "invalid")
            }
            dead = prometheus.scalar("sum(txnpipe_dead_letters_total)")
            stream_lag = prometheus.scalar("sum(txnpipe_stream_consumer_lag)")
            sink_lag = prometheus.scalar("sum(txnpipe_sink_consumer_lag)")
            versions = prometheus.scalar(
                'sum(txnpipe_sink_rows_written_total{table="transaction_versions"})'
            )
            status = txnpipe("status", "--json", env=env, timeout=120)
            report = json.loads(status.stdout)
            stages = {s["name"]: s for s in report["stages"]}
            stats = stages["stream"]["detail"]
            want = {o: float(stats.get(o, 0)) for o in ("accepted", "stale", "invalid")}
            ok = (
                promql == want
                and want["accepted"] > 0
                and dead == float(report["dead_letters"]) > 0
                and stages["stream"]["lag"] == 0 == stream_lag
                and stages["sink"]["lag"] == 0 == sink_lag
                and versions is not None
                and versions >= rows(services, "transaction_versions") > 0  # skipped rows count
            )
            return True if ok else {"promql": promql, "dead": dead, "lags": (stream_lag, sink_lag),
                                    "versions": versions, "status": report}  # fmt: skip

        wait_for(agrees, "PromQL to answer what txnpipe status reports", 180)
        duplicates = prometheus.scalar('sum(txnpipe_stream_records_total{outcome="duplicate"})')
        assert duplicates is not None and duplicates > 0  # every sweep re-reads its boundary
        assert prometheus.scalar("sum(txnpipe_stage_up)") == len(STAGES) - 1  # run's children
        for name, url in urls.items():  # promtool on what each endpoint really serves
            body = get(url)
            assert b"txnpipe_" in body, name
            check_metrics(body)
    finally:
        if prometheus is not None:
            prometheus.stop()
        run.send_signal(signal.SIGINT)
        try:
            run.wait(timeout=90)
        except subprocess.TimeoutExpired:
            run.kill()
            run.wait(timeout=10)
    assert run.returncode == 0, log.read_text()[-3000:]
