"""Issue 11 part 2: ``txnpipe run`` serves the dashboard; headless Chromium loads it with no
console errors, its charts hold the numbers ``txnpipe query --json`` and ``txnpipe dlq stats``
give, and they change, without a reload, once the API serves more data. ``txnpipe dashboard``
serves the same answers against the running pipeline.

Screenshots go to the test's tmp dir, and to ``$DASHBOARD_SCREENSHOTS`` when that is set.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings
from producers.simulator.model import SimulatorConfig
from producers.simulator.server import start_simulator
from tests.conftest import IN_CI
from tests.integration.chromium import Chromium, chromium_binary
from tests.integration.test_end_to_end import our_processes, txnpipe, wait_for

TOP = 10  # the dashboard's top customers
STAGES = {"poller", "stream", "sink"}

# [label, value(, count)] of every bar/series of each chart, as drawn
CHART_VALUES = """JSON.stringify(Object.fromEntries([...document.querySelectorAll('[data-chart]')]
  .map(c => [c.dataset.chart, [...c.querySelectorAll('[data-label]')].map(e =>
    [e.dataset.label, e.dataset.value].concat(e.dataset.count ? [e.dataset.count] : [])
  )])))"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def drawn(query: dict[str, Any], dead: list[tuple[str, int]]) -> dict[str, Any]:
    """What the charts must show for these answers, as CHART_VALUES reads it."""
    return {
        "monthly": [[r["month"], r["total_amount"]] for r in query["monthly"]],
        "categories": [
            [r["product_category"], r["total_amount"], str(r["total_transactions"])]
            for r in query["categories"]
        ],
        "top-customers": [[r["customer_id"], r["total_amount"]] for r in query["top-customers"]],
        "dead-letters": [[reason, str(count)] for reason, count in dead],
    }


def query_json(env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for question in ("categories", "top-customers", "monthly"):
        limit = ["--limit", str(TOP)] if question == "top-customers" else []
        proc = txnpipe("query", question, "--json", *limit, env=env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        out[question] = json.loads(proc.stdout)
    return out


def dlq_reasons(env: dict[str, str]) -> list[tuple[str, int]] | str:
    """``dlq stats --json`` by reason, largest first; a text while its index is behind."""
    proc = txnpipe("dlq", "stats", "--json", env=env, timeout=60)
    if proc.returncode != 0:
        return proc.stderr
    stats = json.loads(proc.stdout)
    if stats["index_behind"]:
        return f"index behind by {stats['index_behind']}"
    counts: dict[str, int] = {}
    for r in stats["reasons"]:
        counts[r["reason"]] = counts.get(r["reason"], 0) + r["count"] + r["came_back_after_redrive"]
    return sorted(counts.items(), key=lambda rc: (-rc[1], rc[0]))


def caught_up(sim: Any, env: dict[str, str]) -> Any:
    """Redis answers what the simulator served and the dead-letter index has every letter."""
    truth = sim.truth(include_transactions=False)
    got = query_json(env)
    if not truth["categories"] or got["categories"] != truth["categories"]:
        return {"truth": truth["categories"], "redis": got["categories"]}
    if got["monthly"] != truth["monthly"]:
        return {"truth": truth["monthly"], "redis": got["monthly"]}
    reasons = dlq_reasons(env)
    return True if isinstance(reasons, list) and reasons else reasons


def standalone_dashboard(env: dict[str, str]) -> Any:
    """``txnpipe dashboard`` against the running pipeline: its ``/api/state`` answers."""
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "txnpipe", "dashboard", "--port", str(port), "--interval", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    def state() -> Any:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as r:
                doc = json.load(r)
        except OSError as exc:
            return f"{exc} (exit {proc.poll()})"
        return True if doc.get("ready") else doc

    try:
        wait_for(state, "`txnpipe dashboard` to serve its first sample", deadline=60)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/state", timeout=5) as r:
            answers = json.load(r)["answers"]
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    assert f"txnpipe dashboard: http://127.0.0.1:{port}/" in output
    return answers


@pytest.mark.slow
def test_dashboard_in_headless_chromium(services: Settings, tmp_path: Path) -> None:
    if chromium_binary() is None:
        if IN_CI:
            pytest.fail("chromium is not installed and CI=true (.ci/run installs it)")
        pytest.skip("chromium is not installed")
    now = datetime.now(UTC).replace(microsecond=0)
    config = SimulatorConfig(seed=23, history_days=75, transactions_per_day=15, rate=0.5)
    sim = start_simulator(config, api_key="dash-key", now=now, frozen=True)
    port = _free_port()
    env = {
        **os.environ,
        "TXNPIPE_NAMESPACE": services.namespace,
        "TXNPIPE_MYSQL_DATABASE": services.mysql_database,
        "TXNPIPE_API_URL": sim.url,
        "TXNPIPE_API_KEY": "dash-key",
        "TXNPIPE_STATE_DIR": str(tmp_path / "state"),
        "TXNPIPE_PARTITIONS": "3",
    }
    shots = [tmp_path]
    if os.environ.get("DASHBOARD_SCREENSHOTS"):
        shots.append(Path(os.environ["DASHBOARD_SCREENSHOTS"]))
    run = subprocess.Popen(
        [sys.executable, "-m", "txnpipe", "run", "--no-view", "--web-port", "0",
         "--dashboard-port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for(lambda: caught_up(sim, env), "the pipeline to apply what the API served")
        before = query_json(env)
        dead = dlq_reasons(env)
        assert isinstance(dead, list)

        with Chromium(tmp_path / "chromium") as browser:
            page = browser.page()
            page.navigate(f"http://127.0.0.1:{port}/")
            want = drawn(before, dead)

            def charts_show(expected: dict[str, Any]) -> Any:
                """True once every chart holds ``expected`` (else what they hold)."""
                got = json.loads(page.evaluate(CHART_VALUES))
                stages = {label for label, _ in got["lag"]}
                if {k: got[k] for k in expected} == expected and stages == STAGES:
                    return True
                return got

            wait_for(
                lambda: charts_show(want),
                "the charts to show `txnpipe query --json`'s numbers",
                deadline=60,
            )
            assert page.errors == [], page.errors
            fresh = json.loads(page.evaluate(CHART_VALUES))["freshness"]
            assert {label for label, _ in fresh} == {"redis", "mysql"}
            assert all(value for _, value in fresh), fresh
            assert standalone_dashboard(env) == before
            page.evaluate("window.__loadedOnce = true")
            for d in shots:
                page.screenshot(d / "dashboard-start.png")

            # more data: an hour of live arrivals becomes visible on the API
            sim.simulator.advance(3600)
            wait_for(lambda: caught_up(sim, env), "the pipeline to apply the new records")
            after = query_json(env)
            assert after != before
            dead_after = dlq_reasons(env)
            assert isinstance(dead_after, list)
            want_after = drawn(after, dead_after)
            wait_for(
                lambda: charts_show(want_after),
                "the charts to follow the new answers",
                deadline=60,
            )
            assert page.evaluate("window.__loadedOnce === true"), "the page reloaded"
            assert page.errors == [], page.errors
            for d in shots:
                page.screenshot(d / "dashboard-later.png")
    finally:
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=90)
        sim.stop()
    assert f"dashboard at http://127.0.0.1:{port}/" in output
    assert run.returncode == 0, output[-3000:]
    wait_for(
        lambda: our_processes(services.namespace) == [] or our_processes(services.namespace),
        "every stage to exit",
        deadline=30,
    )
