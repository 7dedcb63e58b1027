"""The simulator over HTTP: CONTRACT §1 paging, determinism, auth, faults, truth, the CLI.

No broker, MySQL or Redis needed: the server runs in-process (or as ``txnpipe
simulate-api`` in a subprocess) on a free port.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from producers.client import parse_page
from producers.simulator import FaultConfig, SimulatorConfig, start_simulator

NOW = datetime(2026, 2, 10, 8, 30, tzinfo=UTC)
CONFIG = SimulatorConfig(seed=5, history_days=30, transactions_per_day=80, rate=1.0)


def _get(url: str, key: str | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url)
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _sweep(base: str, key: str = "", since: str | None = None, limit: int = 250) -> list[bytes]:
    """Every page body of one sweep, following next_cursor."""
    bodies: list[bytes] = []
    cursor = None
    while True:
        query = f"limit={limit}"
        if since:
            query += f"&updated_since={since}"
        if cursor:
            query += f"&cursor={cursor}"
        status, _, body = _get(f"{base}/transactions?{query}", key)
        assert status == 200, body
        bodies.append(body)
        cursor = json.loads(body)["next_cursor"]
        if cursor is None:
            return bodies


def _records(bodies: list[bytes]) -> list[Any]:
    return [value for body in bodies for _, value in parse_page(body).records]


def test_same_seed_same_bytes_over_http() -> None:
    with start_simulator(CONFIG, now=NOW) as a, start_simulator(CONFIG, now=NOW) as b:
        first, second = _sweep(a.url), _sweep(b.url)
    assert first == second and len(first) > 5
    with start_simulator(replace(CONFIG, seed=6), now=NOW) as c:
        assert _sweep(c.url) != first


def test_paging_covers_the_feed_in_order_and_resumes_inclusively() -> None:
    with start_simulator(CONFIG, now=NOW) as sim:
        records = _records(_sweep(sim.url, limit=97))
        assert len(records) == len(sim.simulator.feed.entries)
        dicts = [r for r in records if isinstance(r, dict) and isinstance(r.get("updated_at"), str)]
        middle = dicts[len(dicts) // 2]["updated_at"]
        resumed = _records(_sweep(sim.url, since=middle.replace("+", "%2B")))
        at = datetime.fromisoformat(middle)
        # every record from that instant on, including the one at the instant itself
        assert any(isinstance(r, dict) and r.get("updated_at") == middle for r in resumed)
        assert len(resumed) < len(records)
        seen = {json.dumps(r, sort_keys=True) for r in resumed}
        aware = [r for r in dicts if datetime.fromisoformat(r["updated_at"]).tzinfo is not None]
        later = [r for r in aware if datetime.fromisoformat(r["updated_at"]) >= at]
        assert later and all(json.dumps(r, sort_keys=True) in seen for r in later)


def test_auth_wrong_key_401_right_key_200_and_open_without_key() -> None:
    with start_simulator(CONFIG, now=NOW, api_key="s3cret") as sim:
        assert _get(f"{sim.url}/transactions?limit=1", "nope")[0] == 401
        assert _get(f"{sim.url}/transactions?limit=1")[0] == 401
        assert _get(f"{sim.url}/transactions?limit=1", "s3cret")[0] == 200
        assert _get(f"{sim.url}/transactions?limit=0", "s3cret")[0] == 400
        assert _get(f"{sim.url}/transactions?cursor=zzz", "s3cret")[0] == 400
        assert _get(f"{sim.url}/transactions?updated_since=2026-01-01T00:00:00", "s3cret")[0] == 400
    with start_simulator(CONFIG, now=NOW) as sim:
        assert _get(f"{sim.url}/transactions?limit=1", "anything")[0] == 200


@pytest.mark.parametrize(
    ("faults", "check"),
    [
        (FaultConfig(rate_429=1.0, retry_after=3), "429"),
        (FaultConfig(rate_5xx=1.0), "5xx"),
        (FaultConfig(rate_truncated=1.0), "truncated"),
    ],
    ids=["429", "5xx", "truncated"],
)
def test_faults(faults: FaultConfig, check: str) -> None:
    with start_simulator(CONFIG, now=NOW, faults=faults) as sim:
        for _ in range(6):
            try:
                status, headers, body = _get(f"{sim.url}/transactions?limit=200")
            except Exception:  # the connection was cut mid-body
                assert check == "truncated"
                continue
            if check == "429":
                assert status == 429
                retry = headers["Retry-After"]
                assert retry == "3" or retry.endswith("GMT")
            elif check == "5xx":
                assert status in (500, 502, 503, 504)
            else:
                assert status == 200
                with pytest.raises(ValueError):
                    parse_page(body)
        assert not sim.served_records()  # nothing reached the client whole


def test_truth_over_http_follows_what_was_served() -> None:
    with start_simulator(CONFIG, now=NOW) as sim:
        status, _, body = _get(f"{sim.url}/_truth")
        empty = json.loads(body)
        assert status == 200 and empty["as_of"]["entries"] == 0 and empty["categories"] == []
        _get(f"{sim.url}/transactions?limit=1000")
        half = json.loads(_get(f"{sim.url}/_truth?transactions=0")[2])
        assert half["as_of"]["entries"] == 1000 and "transactions" not in half
        _sweep(sim.url)
        full = json.loads(_get(f"{sim.url}/_truth?now=2026-02-10T08:30:00Z")[2])
        assert full["as_of"]["entries"] == len(sim.simulator.feed.entries)
        assert full["served"]["distinct_records"] == len(sim.simulator.feed.entries)
        assert full["counted_transaction_count"] == len(full["transactions"]) > 0
        assert sum(r["total_transactions"] for r in full["categories"]) == len(full["transactions"])
        cents = sum(int(t["transaction_amount"].replace(".", "")) for t in full["transactions"])
        top = sum(int(r["total_amount"].replace(".", "")) for r in full["top_customers"])
        assert top == cents
        amounts = [int(r["total_amount"].replace(".", "")) for r in full["top_customers"]]
        assert amounts == sorted(amounts, reverse=True)
        assert {t["status"] for t in full["transactions"]} <= {"pending", "approved"}
        only_approved = json.loads(_get(f"{sim.url}/_truth?counted=approved&transactions=0")[2])
        assert only_approved["counted_transaction_count"] < full["counted_transaction_count"]


def test_live_arrivals_appear_as_the_clock_moves() -> None:
    with start_simulator(CONFIG, now=NOW) as sim:
        before = _records(_sweep(sim.url))
        assert _sweep(sim.url) == _sweep(sim.url)  # frozen clock: nothing new
        sim.simulator.advance(600)  # ten minutes at 1 transaction/s
        last = max(
            datetime.fromisoformat(r["updated_at"])
            for r in before
            if isinstance(r, dict)
            and isinstance(r.get("updated_at"), str)
            and datetime.fromisoformat(r["updated_at"]).tzinfo is not None
        )
        since = last.isoformat().replace("+00:00", "Z")
        new = _records(_sweep(sim.url, since=since))
        ids = {str(r.get("transaction_id")).strip() for r in new if isinstance(r, dict)}
        assert len([i for i in ids if i.startswith("2")]) >= 500  # the live id range


def test_cli_prints_its_url_and_stops_cleanly_on_sigterm() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TXNPIPE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "txnpipe", "simulate-api", "--port", "0", "--history-days", "5",
         "--now", "2026-02-10T08:30:00Z", "--api-key", "k", "--faults", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.split()[-1]
        assert _get(f"{url}/_health")[0] == 200
        assert _get(f"{url}/transactions", "k")[0] == 200
        # another process, same options: the same bytes (no hash randomisation in the history)
        with start_simulator(SimulatorConfig(history_days=5), now=NOW) as same:
            assert _sweep(url, "k") == _sweep(same.url)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
