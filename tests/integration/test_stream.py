"""`txnpipe stream` end to end, as a subprocess against the real broker and Redis.

Each test generates a dirty history (tests/unit/stream_app/history.py), writes it to the raw
topic like the poller (per-partition JSON arrays) plus single records, and compares the
Redis answers with a truth computed independently (a plain dict of last versions).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from confluent_kafka import Consumer, Producer, TopicPartition

from common.settings import Settings
from stream_app.lookups import answer
from stream_app.topics import ensure_topics
from tests.unit.stream_app.history import History, batches, generate, singles, truth

TXNPIPE = str(Path(sys.executable).parent / "txnpipe")
WAIT = 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LOGS: list[Path] = []  # worker logs of the running test, shown when a wait times out


def wait_for(what: str, cond: Callable[[], bool], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n{p.read_text()[-4000:]}" for p in LOGS if p.exists())
            raise AssertionError(f"timed out waiting for {what}\n{tails}")
        time.sleep(0.05)


class Worker:
    """One `txnpipe stream` subprocess with its own log and web port."""

    def __init__(self, settings: Settings, tmp: Path, name: str, batch_size: int = 50) -> None:
        self.port = _free_port()
        self.log = tmp / f"{name}.log"
        env = {
            **os.environ,
            "TXNPIPE_NAMESPACE": settings.namespace,
            "TXNPIPE_REDIS_URL": settings.redis_url,
            "TXNPIPE_STATE_DIR": str(settings.state_dir),  # Faust's datadir goes there
        }
        self.proc = subprocess.Popen(
            [
                TXNPIPE,
                "stream",
                "--web-port",
                str(self.port),
                "--session-timeout",
                "6",
                "--batch-size",
                str(batch_size),
                "--batch-wait",
                "0.05",
                "--no-broker",
            ],
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
                raise AssertionError(f"worker ignored SIGTERM; log: {self.log}") from None
        return self.proc.returncode

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as resp:
            return json.loads(resp.read())


@pytest.fixture
def stream_env(topics: Settings, redis_ns: Settings, tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = topics
    ensure_topics(settings)
    workers: list[Worker] = []
    env: dict[str, Any] = {"settings": settings, "workers": workers, "tmp": tmp_path}
    LOGS.clear()
    yield env
    LOGS.clear()
    for w in workers:
        with contextlib.suppress(Exception):
            if w.alive():
                w.kill()


def start(env: dict[str, Any], name: str, settings: Settings | None = None) -> Worker:
    w = Worker(settings or env["settings"], env["tmp"], name)
    LOGS.append(w.log)
    env["workers"].append(w)
    return w


class RawWriter:
    """Writes raw messages, remembering the last offset per partition (delivery reports)."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic("transactions.raw")
        self.producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "enable.idempotence": True,
                "linger.ms": 5,
                "message.max.bytes": 4_000_000,
            }
        )
        self.last: dict[int, int] = {}

    def _delivered(self, err: Any, msg: Any) -> None:
        assert err is None, err
        self.last[msg.partition()] = max(self.last.get(msg.partition(), -1), msg.offset())

    def write(self, messages: Iterator[tuple[int, bytes | None, bytes]] | list[Any]) -> None:
        for p, key, value in messages:
            self.producer.produce(self.topic, value, key, partition=p, on_delivery=self._delivered)
            self.producer.poll(0)
        assert self.producer.flush(30) == 0


def caught_up(settings: Settings, last: dict[int, int]) -> Callable[[], bool]:
    client = redis.Redis.from_url(settings.redis_url)

    def check() -> bool:
        wm = {int(k): int(v) for k, v in client.hgetall(f"{settings.namespace}:wm").items()}
        return all(wm.get(p, -1) >= o for p, o in last.items())

    return check


def assert_answers(settings: Settings, hist: History, now: datetime) -> None:
    """``now`` generated the history; the monthly window is taken at one instant for both
    the truth and the answer (a test running across midnight UTC must not flake)."""
    at = datetime.now(UTC)
    expected = truth(hist, now=at, limit=10)
    assert answer(settings, "categories", now=at).to_json() == expected.categories
    assert answer(settings, "top-customers", 10, now=at).to_json() == expected.top
    assert answer(settings, "monthly", now=at).to_json() == expected.monthly


def dlq_count(settings: Settings, at_least: int, timeout: float = 30.0) -> int:
    """Count DLQ messages; waits until ``at_least`` are there, then reads to the end."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "t-dlq",
            "enable.partition.eof": True,
            "fetch.queue.backoff.ms": 10,
            "fetch.wait.max.ms": 50,
        }
    )
    topic = settings.topic("transactions.dlq")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
    seen, eof = 0, set()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and (seen < at_least or len(eof) < settings.partitions):
            for m in consumer.consume(500, 0.2):
                if m.error() is None:
                    seen += 1
                    eof.discard(m.partition())
                elif m.error().code() == -191:  # _PARTITION_EOF
                    eof.add(m.partition())
    finally:
        consumer.close()
    return seen


def applied_messages(settings: Settings) -> int:
    client = redis.Redis.from_url(settings.redis_url)
    try:
        return int(client.hget(f"{settings.namespace}:stats", "messages") or 0)
    finally:
        client.close()


def now_hour() -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0)


POISON = [
    b"",
    b"\xff\xfe\x00garbage",
    b"{not json",
    b'[1, 2, "three"]',
    json.dumps({"transaction_id": "x" * 1_000_000}).encode(),
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
]


def test_dirty_history_and_poison_match_truth(stream_env: dict[str, Any]) -> None:
    settings: Settings = stream_env["settings"]
    now = now_hour()
    hist = generate(11, 1500, now=now)
    writer = RawWriter(settings)
    half = len(hist.served) // 2
    worker = start(stream_env, "w1")
    writer.write(batches(hist.served[:half], settings.partitions, page=300))
    # poison straight onto the raw topic, single records from an outside producer, more batches
    writer.write([(i % settings.partitions, None, v) for i, v in enumerate(POISON)])
    writer.write(singles(hist.served[half : half + 200], settings.partitions))
    writer.write(batches(hist.served[half + 200 :], settings.partitions, page=300))
    wait_for("the worker to catch up", caught_up(settings, writer.last))
    assert worker.alive(), worker.log.read_text()[-3000:]
    assert_answers(settings, hist, now)
    # poison: 7 messages, the array of non-objects holds 3 invalid records
    invalid = hist.invalid + len(POISON) - 1 + 3
    stats = redis.Redis.from_url(settings.redis_url).hgetall(f"{settings.namespace}:stats")
    assert int(stats[b"invalid"]) == invalid
    assert dlq_count(settings, invalid) == invalid
    served = worker.get("/top-customers?limit=3")
    assert served["rows"] == truth(hist, now=now, limit=3).top
    assert set(served["offsets"]) == {str(p) for p in writer.last}
    assert served["as_of"] is not None
    assert worker.get("/categories")["rows"] == truth(hist, now=now).categories
    assert worker.stop() == 0


@pytest.mark.slow
def test_sigterm_then_repeated_sigkill_mid_stream(stream_env: dict[str, Any]) -> None:
    settings: Settings = stream_env["settings"]
    now = now_hour()
    hist = generate(12, 2000, now=now)
    writer = RawWriter(settings)
    msgs = list(batches(hist.served, settings.partitions, page=100))
    chunks = [msgs[i::4] for i in range(4)]  # interleaved so every chunk touches all ids
    stats_key = f"{settings.namespace}:stats"
    client = redis.Redis.from_url(settings.redis_url)
    for n, chunk in enumerate(chunks[:3]):
        worker = start(stream_env, f"w{n}")
        writer.write(sorted(chunk, key=lambda m: m[0]))
        before = int(client.hget(stats_key, "messages") or 0)
        wait_for("some progress", lambda b=before: int(client.hget(stats_key, "messages") or 0) > b)
        if n == 0:
            assert worker.stop() == 0  # SIGTERM mid-stream: the batch in flight finishes
        else:
            worker.kill()  # SIGKILL mid-stream, between any two steps
    worker = start(stream_env, "final")
    writer.write(sorted(chunks[3], key=lambda m: m[0]))
    wait_for("the worker to catch up", caught_up(settings, writer.last))
    assert_answers(settings, hist, now)
    assert worker.stop() == 0


@pytest.mark.slow
def test_redis_wiped_mid_stream(stream_env: dict[str, Any]) -> None:
    settings: Settings = stream_env["settings"]
    now = now_hour()
    hist = generate(13, 2000, now=now)
    writer = RawWriter(settings)
    msgs = list(batches(hist.served, settings.partitions, page=200))
    worker = start(stream_env, "w1")
    writer.write(msgs[: len(msgs) // 2])
    client = redis.Redis.from_url(settings.redis_url)
    wait_for(
        "some progress",
        lambda: int(client.hget(f"{settings.namespace}:stats", "messages") or 0) > 5,
    )
    keys = list(client.scan_iter(match=f"{settings.namespace}:*", count=1000))
    client.delete(*keys)  # everything under the namespace, while the worker runs
    writer.write(msgs[len(msgs) // 2 :])
    wait_for("the worker to catch up", caught_up(settings, writer.last))
    assert worker.alive()
    assert_answers(settings, hist, now)
    assert int(client.hget(f"{settings.namespace}:stats", "restores") or 0) >= 1
    # and wiped while stopped: the next start restores before answering
    assert worker.stop() == 0
    client.delete(*list(client.scan_iter(match=f"{settings.namespace}:*", count=1000)))
    worker = start(stream_env, "w2")
    wait_for("the restart to restore", caught_up(settings, writer.last))
    assert_answers(settings, hist, now)
    assert worker.stop() == 0


@pytest.mark.slow
def test_second_worker_joins_then_one_is_killed(stream_env: dict[str, Any]) -> None:
    """A worker joining mid-stream, then one leaving by SIGKILL: nothing lost or doubled."""
    settings: Settings = stream_env["settings"]
    now = now_hour()
    hist = generate(14, 2000, now=now)
    writer = RawWriter(settings)
    msgs = list(batches(hist.served, settings.partitions, page=100))
    quarter = len(msgs) // 4
    a = start(stream_env, "a")
    writer.write(msgs[:quarter])
    wait_for("some progress", lambda: applied_messages(settings) > 5)
    b = start(stream_env, "b")  # joins while a is busy
    writer.write(msgs[quarter : 2 * quarter])
    wait_for(
        "a rebalance onto both workers",
        lambda: re.search(r"assigned partitions=\[\d", b.log.read_text()) is not None,
    )
    writer.write(msgs[2 * quarter : 3 * quarter])
    wait_for("b to apply something", lambda: "applied" in b.log.read_text() or
             applied_messages(settings) >= quarter * 2)  # fmt: skip
    b.kill()
    writer.write(msgs[3 * quarter :])
    wait_for("the survivor to catch up", caught_up(settings, writer.last))
    assert a.alive()
    assert_answers(settings, hist, now)
    assert a.stop() == 0


class PrivateRedis:
    """A redis-server of this test's own (memory only), so it can be killed and restarted."""

    def __init__(self, tmp: Path) -> None:
        self.port = _free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port)
        wait_for("redis-server to answer", lambda: _pings(client), timeout=20)
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_redis_down_then_back_empty(stream_env: dict[str, Any]) -> None:
    """Redis dies mid-stream (the worker backs off and retries the same batch) and comes
    back empty (it restores from the ledger): answers exact, nothing skipped."""
    base: Settings = stream_env["settings"]
    private = PrivateRedis(stream_env["tmp"])
    private.start()
    try:
        settings = base.model_copy(update={"redis_url": f"redis://127.0.0.1:{private.port}/0"})
        now = now_hour()
        hist = generate(15, 1500, now=now)
        writer = RawWriter(settings)
        msgs = list(batches(hist.served, settings.partitions, page=200))
        worker = start(stream_env, "w1", settings)
        writer.write(msgs[: len(msgs) // 2])
        wait_for("some progress", lambda: applied_messages(settings) > 5)
        private.kill()
        writer.write(msgs[len(msgs) // 2 :])
        wait_for("the worker to notice", lambda: "retrying" in worker.log.read_text())
        assert worker.alive()
        private.start()  # empty: nothing is persisted
        wait_for("the worker to catch up", caught_up(settings, writer.last))
        assert worker.alive()
        assert_answers(settings, hist, now)
        assert worker.stop() == 0
    finally:
        private.kill()
