"""`txnpipe services up|down|status` on a port of its own: up starts the bundled broker, down
leaves nothing of ours running, and a broker we did not start is never stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from common.services import Endpoint, answers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def txnpipe(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "txnpipe", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def test_up_then_down_leaves_no_broker_running(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "TXNPIPE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}",
        "TXNPIPE_STATE_DIR": str(tmp_path),
    }
    up = txnpipe("services", "up", env=env)
    assert up.returncode in (0, 1), up.stderr  # 1 only when MySQL or Redis is missing
    assert f"127.0.0.1:{port}  answers (bundled broker pid" in up.stdout
    pid = int((tmp_path / f"broker-127.0.0.1-{port}.pid").read_text())
    assert alive(pid) and answers(Endpoint("127.0.0.1", port))

    status = txnpipe("services", "status", env=env)
    assert f"bundled broker pid {pid}" in status.stdout

    down = txnpipe("services", "down", env=env)
    assert down.returncode == 0 and f"pid {pid}" in down.stdout
    deadline = time.monotonic() + 10
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    assert not answers(Endpoint("127.0.0.1", port))
    again = txnpipe("services", "down", env=env)
    assert "nothing of ours" in again.stdout


def test_down_never_stops_a_broker_it_did_not_start(tmp_path: Path, kafka: str) -> None:
    env = {**os.environ, "TXNPIPE_KAFKA_BOOTSTRAP": kafka, "TXNPIPE_STATE_DIR": str(tmp_path)}
    down = txnpipe("services", "down", env=env)
    assert "nothing of ours" in down.stdout
    host, _, port = kafka.rpartition(":")
    assert answers(Endpoint(host, int(port)))
