"""The dashboard without services: the /api/state document's shape, the ring buffer, the HTTP
server (assets from the package, nothing from elsewhere), and the command's usage errors."""

from __future__ import annotations

import json
import re
import socket
import time
import tomllib
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError
from common.settings import Settings, load_settings
from txnpipe.cli import main
from txnpipe.dashboard import DashboardServer, DashboardState, build_state
from txnpipe.dashboard.server import ASSETS, asset
from txnpipe.dashboard.state import age_seconds, history_point
from txnpipe.observe import Snapshot, StageStatus

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
ANSWERS = {
    "categories": [
        {"product_category": "books", "total_transactions": 2, "total_amount": "30.50"},
        {"product_category": "travel", "total_transactions": 1, "total_amount": "1200.00"},
    ],
    "top-customers": [{"customer_id": "c1", "total_amount": "1200.00"}],
    "monthly": [{"month": "2026-11", "total_amount": "1230.50"}],
}


def _settings() -> Settings:
    return load_settings({"namespace": "dash"})


def _snapshot() -> Snapshot:
    return Snapshot(
        taken_at=NOW.isoformat(),
        stages=[
            StageStatus("poller", per_minute=12),
            StageStatus("stream", lag=5, per_minute=300, lag_by_partition={0: 5}),
            StageStatus("sink", lag=0, per_minute=280),
        ],
        dead_letters=7,
        dead_letter_reasons=[("invalid_amount", 4)],
        redis_as_of=(NOW - timedelta(seconds=3)).isoformat(timespec="seconds"),
        mysql_as_of=(NOW - timedelta(seconds=12)).replace(tzinfo=None).isoformat() + "Z",
    )


def _state(reasons: list[dict[str, Any]] | None) -> dict[str, Any]:
    snap = _snapshot()
    history = [history_point(snap, 1_000), history_point(snap, 6_000)]
    return build_state(_settings(), snap, ANSWERS, {}, reasons, history, interval=5.0, now=NOW)


def test_state_document_shape() -> None:
    reasons = [{"reason": "invalid_amount", "count": 5}, {"reason": "not_an_object", "count": 2}]
    doc = _state(reasons)
    assert set(doc) == {
        "namespace", "taken_at", "interval_seconds", "healthy", "problems", "answers",
        "answers_meta", "stages", "history", "dead_letters", "freshness", "status",
    }  # fmt: skip
    assert doc["namespace"] == "dash" and doc["healthy"] is True
    assert doc["answers"] == ANSWERS  # exactly the rows of `txnpipe query --json`
    assert doc["stages"] == [
        {"name": "poller", "lag": None, "per_minute": 12, "error": None},
        {"name": "stream", "lag": 5, "per_minute": 300, "error": None},
        {"name": "sink", "lag": 0, "per_minute": 280, "error": None},
    ]
    assert doc["history"][1] == {
        "t": 6_000,
        "stages": {
            "poller": {"lag": None, "per_minute": 12},
            "stream": {"lag": 5, "per_minute": 300},
            "sink": {"lag": 0, "per_minute": 280},
        },
    }
    assert doc["dead_letters"]["total"] == 7
    assert doc["dead_letters"]["reasons"][0] == {"reason": "invalid_amount", "count": 5}
    assert doc["freshness"]["redis_age_seconds"] == 3.0
    assert doc["freshness"]["mysql_age_seconds"] == 12.0
    assert doc["status"]["stages"][1]["lag_by_partition"] == {0: 5}  # `status --json` as is
    json.dumps(doc)  # serialisable as served


def test_without_a_dead_letter_index_the_status_reasons_are_shown() -> None:
    doc = _state(None)
    assert doc["dead_letters"]["reasons"] == [{"reason": "invalid_amount", "count": 4}]


@pytest.mark.parametrize(
    ("as_of", "age"),
    [
        ("2026-12-03T11:59:50+00:00", 10.0),
        ("2026-12-03T11:59:50Z", 10.0),
        ("2026-12-03T11:59:50.500000Z", 9.5),
        ("2026-12-03T11:59:50", 10.0),  # naive: UTC
        ("2026-12-03T12:00:05+00:00", 0.0),  # clocks a little apart: never negative
        (None, None),
        ("not a time", None),
    ],
    ids=["offset", "Z", "fraction", "naive", "future", "none", "garbage"],
)
def test_age_seconds(as_of: str | None, age: float | None) -> None:
    assert age_seconds(as_of, NOW) == age


class _FakeState(DashboardState):
    """Samples a fixed snapshot: no services."""

    def sample(self) -> dict[str, Any]:
        doc = _state(None)
        doc["ready"] = True
        with self._lock:
            self._doc = doc
        return doc


def _get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.headers["Content-Type"], r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], exc.read()


def test_ring_buffer_keeps_the_last_minutes() -> None:
    state = DashboardState(_settings(), interval=5.0)
    assert state.document() == {"ready": False, "namespace": "dash"}
    assert state._history.maxlen == 180  # 15 minutes at one sample every 5 s


def test_server_serves_the_page_its_assets_and_the_state() -> None:
    server = DashboardServer(_FakeState(_settings(), interval=0.5), port=0).start()
    try:
        base = server.url
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", base)
        status, kind, body = _get(base + "api/state")
        deadline = time.monotonic() + 10
        while json.loads(body).get("ready") is not True and time.monotonic() < deadline:
            time.sleep(0.05)  # polling interval of a condition with a deadline (first sample)
            status, kind, body = _get(base + "api/state")
        assert status == 200 and kind == "application/json"
        assert json.loads(body)["answers"] == ANSWERS
        for path, (name, content_type) in ASSETS.items():
            status, kind, body = _get(base + path.lstrip("/"))
            assert (status, kind, body) == (200, content_type, asset(name))
        assert _get(base + "nothing-here")[0] == 404
    finally:
        server.stop()


def test_every_asset_is_ours_and_ships_in_the_wheel() -> None:
    page = asset("index.html").decode()
    references = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert references and all(not re.match(r"[a-z]+://|//", r) for r in references), references
    assert {"dashboard.js", "dashboard.css"} <= set(references)
    script = asset("dashboard.js").decode()
    assert "http://" not in script.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in script
    pyproject = tomllib.loads((Path(__file__).parents[3] / "pyproject.toml").read_text())
    shipped = pyproject["tool"]["setuptools"]["package-data"]["*"]
    assert {"*.html", "*.js", "*.css"} <= set(shipped)


def test_a_busy_port_is_a_one_line_config_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"127.0.0.1:{port}"):
            DashboardServer(DashboardState(_settings()), port=port)


@pytest.mark.parametrize(
    "argv",
    [
        ["dashboard", "--port", "70000"],
        ["dashboard", "--interval", "0.1"],
        ["run", "--dashboard-port", "-1"],
    ],
    ids=["port", "interval", "run-port"],
)
def test_dashboard_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"txnpipe {argv[0]}: --")


def test_run_has_a_dashboard_port() -> None:
    from txnpipe.cli import build_parser

    args = build_parser().parse_args(["run"])
    assert args.dashboard_port == 8088
    assert build_parser().parse_args(["run", "--dashboard-port", "0"]).dashboard_port == 0


def test_a_server_never_started_stops_at_once() -> None:
    server = DashboardServer(DashboardState(_settings()), port=0)
    server.stop()  # no serve_forever to wait for
