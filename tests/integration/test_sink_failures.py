"""The sink under failure: connections killed mid-batch, the process SIGKILLed mid-batch.

Both end with the exact truth: every version once, every entry once, ``transactions``
equal to the counted current versions (no loss, no duplicates).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from mysql.connector.errors import Error as MySQLError

from common.settings import Settings
from sinks import db
from sinks.runner import SinkRunner
from tests.unit.sinks.ledger_stream import Ledger, noisy, publish, random_ledger

# Connections of the sink's database running a statement of a batch right now (mid-batch:
# every INSERT/DELETE of the sink runs inside its batch transaction). PROCESSLIST, not
# INNODB_TRX: InnoDB refreshes the latter's snapshot at most every 100 ms.
MID_BATCH = """
SELECT ID FROM information_schema.PROCESSLIST
WHERE DB = %s AND ID <> CONNECTION_ID() AND COMMAND = 'Query'
AND (INFO LIKE %s OR INFO LIKE %s)
"""


def mid_batch(conn: Any, database: str) -> list[tuple[Any, ...]]:
    return one(conn, MID_BATCH, (database, "INSERT%", "DELETE%"))  # type: ignore[no-any-return]


def one(conn: Any, sql: str, args: tuple[Any, ...] = ()) -> Any:
    cur = conn.cursor()
    cur.execute(sql, args)
    rows = cur.fetchall()
    cur.close()
    return rows


def committed(conn: Any) -> int:
    """Messages the sink has committed so far (0 before it has made its tables)."""
    try:
        rows = one(conn, "SELECT COALESCE(SUM(GREATEST(next_offset, 0)), 0) FROM sink_offsets")
    except MySQLError as exc:
        if getattr(exc, "errno", None) == 1146:  # no such table yet
            return 0
        raise
    return int(rows[0][0]) if rows else 0


def assert_exact(settings: Settings, ledger: Ledger) -> None:
    conn = db.connect(settings, autocommit=True)
    truth = ledger.truth()
    assert one(
        conn,
        "SELECT transaction_id, transaction_amount, status FROM transactions "
        "ORDER BY transaction_id",
    ) == [(t.transaction_id, Decimal(t.amount_cents).scaleb(-2), t.status) for t in truth]
    versions = sum(1 for m in ledger.messages if m.kind == "version")
    entries = sum(1 for m in ledger.messages if m.kind == "entry")
    assert one(
        conn,
        "SELECT COUNT(*), COUNT(DISTINCT transaction_id, updated_at) FROM transaction_versions",
    ) == [(versions, versions)]
    assert one(
        conn, "SELECT COUNT(*), COUNT(DISTINCT entry_id), SUM(`count`) FROM transaction_ledger"
    ) == [(entries, entries, Decimal(len(truth)))]
    assert one(conn, "SELECT COUNT(*) FROM sink_pending_entries") == [(0,)]
    conn.close()


def test_connection_killed_from_another_session_mid_batch(
    topics: Settings, mysql_db: Settings
) -> None:
    ledger = random_ledger(500, today=datetime.now(UTC).date(), seed=3)
    publish(topics, noisy(ledger.messages))
    runner = SinkRunner(topics, batch_messages=30, max_batch_age=0.05, idle_seconds=1.5)
    failures: list[BaseException] = []

    def run() -> None:
        try:
            runner.run(until_idle=True)
        except BaseException as exc:  # surfaced by the assertion below
            failures.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    killer = db.connect(mysql_db, autocommit=True)
    kills = 0
    deadline = time.monotonic() + 90
    # Kill only once batches flow: the start-up migration's INSERTs match MID_BATCH too, and
    # on a busy machine (pytest -n) every kill could land there, none in a batch.
    while thread.is_alive() and committed(killer) == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    while thread.is_alive() and kills < 6 and time.monotonic() < deadline:
        for (victim,) in mid_batch(killer, mysql_db.mysql_database):
            try:
                one(killer, f"KILL CONNECTION {int(victim)}")
                kills += 1
            except Exception:  # it committed and went idle or away in between
                pass
    thread.join(120)
    killer.close()
    assert not thread.is_alive() and not failures, failures
    # some kills land on a COMMIT the server already made: the fence then finds it applied
    assert kills >= 3 and runner.totals["retries"] >= 1, (kills, runner.totals)
    assert_exact(topics, ledger)


@pytest.mark.slow
def test_repeated_sigkill_of_the_sink_process_mid_batch(
    topics: Settings, mysql_db: Settings, tmp_path: Path
) -> None:
    ledger = random_ledger(700, today=datetime.now(UTC).date(), seed=5)
    messages = noisy(ledger.messages)
    publish(topics, messages)
    env = {
        **os.environ,
        "TXNPIPE_NAMESPACE": topics.namespace,
        "TXNPIPE_MYSQL_DATABASE": topics.mysql_database,
        "TXNPIPE_KAFKA_BOOTSTRAP": topics.kafka_bootstrap,
    }
    command = [
        sys.executable,
        "-m",
        "txnpipe",
        "sink",
        "--batch-messages",
        "8",
        "--max-batch-age",
        "0.02",
    ]
    watcher = db.connect(mysql_db, autocommit=True)
    progress: list[int] = []
    for round_ in range(3):
        log = open(tmp_path / f"sink{round_}.log", "wb")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            floor = (progress[-1] if progress else 0) + 150
            deadline = time.monotonic() + 60
            done = 0
            while time.monotonic() < deadline and proc.poll() is None:
                done = committed(watcher)
                if done >= floor and mid_batch(watcher, mysql_db.mysql_database):
                    break  # the sink is inside a batch transaction: kill it now
            assert proc.poll() is None, (tmp_path / f"sink{round_}.log").read_text()[-2000:]
            assert done >= floor, f"no progress in round {round_}"
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            progress.append(done)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            log.close()
    assert progress == sorted(progress) and progress[-1] < len(messages)

    # SIGTERM: the sink finishes the batch in hand and leaves cleanly (exit 0)
    baseline = committed(watcher)  # the killed sinks are gone: this no longer moves
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while committed(watcher) <= baseline and time.monotonic() < deadline:
        assert proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr[-2000:]
    assert b"stopping after the current batch" in stderr

    final = subprocess.run(
        [*command, "--until-idle", "--idle-seconds", "1.5"],
        env=env,
        capture_output=True,
        timeout=180,
    )
    assert final.returncode == 0, final.stderr[-2000:]
    watcher.close()
    assert_exact(topics, ledger)
