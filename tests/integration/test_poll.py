"""The poller against the simulator and the real broker: nothing served is ever missing.

Each test runs ``txnpipe poll`` as a subprocess (as operators and ``txnpipe run`` do), in
its own namespace, against an in-process simulator with a frozen clock.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from common.settings import Settings
from producers.client import parse_page
from producers.murmur2 import partition_for
from producers.publisher import ensure_topics
from producers.simulator import FaultConfig, RunningSimulator, SimulatorConfig, start_simulator
from schemas import readable_id

KEY = "test-key"
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
CONFIG = SimulatorConfig(seed=11, history_days=45, transactions_per_day=120, rate=0.0)


@pytest.fixture
def simulator(request: pytest.FixtureRequest) -> Iterator[RunningSimulator]:
    faults = getattr(request, "param", None) or FaultConfig()
    with start_simulator(CONFIG, faults=faults, api_key=KEY, now=NOW) as sim:
        yield sim


def _argv(settings: Settings, url: str, *extra: str, key: str = KEY) -> list[str]:
    return [
        sys.executable, "-m", "txnpipe", "poll",
        "--namespace", settings.namespace,
        "--kafka-bootstrap", settings.kafka_bootstrap,
        "--redis-url", settings.redis_url,
        "--api-url", url,
        "--api-key", key,
        *extra,
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TXNPIPE_")}


def _poll(settings: Settings, url: str, *extra: str, key: str = KEY, timeout: float = 120) -> Any:
    return subprocess.run(
        _argv(settings, url, *extra, key=key),
        capture_output=True, text=True, timeout=timeout, env=_env(),
    )  # fmt: skip


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                stat = open(f"/proc/{entry}/stat").read()  # noqa: SIM115
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]  # noqa: SIM115
    except OSError:
        return False
    return state != "Z"


def _checkpoint(settings: Settings) -> str | None:
    import redis

    client = redis.Redis.from_url(settings.redis_url)
    try:
        raw = client.get(settings.redis_key("poller", "checkpoint"))
    finally:
        client.close()
    return None if raw is None else str(json.loads(raw)["updated_since"])


def _raw_records(
    settings: Settings, expected: set[bytes], timeout: float = 60
) -> dict[bytes, set[int]]:
    """Every record in the raw topic (split out of its batch) → the partitions it is in."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = settings.topic("transactions.raw")
    partitions = ensure_topics(settings)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.namespace}-check",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
        }
    )
    found: dict[bytes, set[int]] = {}
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            messages = consumer.consume(500, 0.2)
            if messages:
                quiet_since = time.monotonic()
            for msg in messages:
                if msg.error() is not None:
                    continue
                assert msg.key() is None  # batches carry no key
                page = parse_page(b'{"data":' + msg.value() + b',"next_cursor":null}')
                for text, _ in page.records:
                    found.setdefault(text.encode(), set()).add(msg.partition())
            if expected <= found.keys() and time.monotonic() - quiet_since > 0.5:
                break
    finally:
        consumer.close()
    return found


def _assert_all_served_published(
    sim: RunningSimulator, settings: Settings, at_least: int = 1000
) -> dict[bytes, set[int]]:
    served = set(sim.served_records())
    assert len(served) >= at_least
    found = _raw_records(settings, served)
    missing = served - found.keys()
    assert not missing, f"{len(missing)} served records missing, e.g. {sorted(missing)[:3]}"
    partitions = ensure_topics(settings)
    for body, where in found.items():
        tid = readable_id(json.loads(body))
        if tid is not None:
            assert where == {partition_for(tid.encode(), partitions)}, body
    return found


@pytest.mark.parametrize(
    "simulator",
    [FaultConfig.uniform(0.12, slow_seconds=0.3, retry_after=1)],
    ids=["all-faults"],
    indirect=True,
)
def test_poll_once_with_every_fault_publishes_everything_served(
    simulator: RunningSimulator, topics: Settings, redis_ns: Settings
) -> None:
    result = _poll(topics, simulator.url, "--once", "--page-size", "500", "--request-timeout", "5")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "retry" in result.stderr  # the faults did happen and were survived
    found = _assert_all_served_published(simulator, topics)
    truth = simulator.truth(include_transactions=False)
    assert truth["served"]["invalid_distinct"] > 0
    assert truth["as_of"]["entries"] == len(simulator.simulator.feed.entries)  # caught up
    # exactly as served: the (transaction_id, updated_at) pairs, dirty forms included
    pairs = {
        (readable_id(rec), rec.get("updated_at"))
        for rec in (json.loads(b) for b in found)
        if isinstance(rec, dict)
    }
    for body in simulator.served_records():
        rec = json.loads(body)
        if isinstance(rec, dict):
            assert (readable_id(rec), rec.get("updated_at")) in pairs
    assert _checkpoint(topics) is not None
    from producers import checkpoint_info

    info = checkpoint_info(topics)
    assert info["updated_since"] == _checkpoint(topics) and info["records_published"] > 0


@pytest.mark.parametrize(
    "simulator",
    [FaultConfig(rate_slow=0.5, slow_seconds=0.15, rate_5xx=0.05)],
    ids=["slow"],
    indirect=True,
)
def test_sigkill_mid_sweep_then_restart_loses_nothing(
    simulator: RunningSimulator, topics: Settings, redis_ns: Settings
) -> None:
    checkpoints: list[str] = []
    for _ in range(3):
        proc = subprocess.Popen(
            _argv(topics, simulator.url, "--page-size", "100", "--interval", "0.2"),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 60
            previous = checkpoints[-1] if checkpoints else None
            while time.monotonic() < deadline:
                current = _checkpoint(topics)
                if current is not None and current != previous:
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the poller made no progress")
        finally:
            children = _children(proc.pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        # nothing the poller started may outlive it
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in children if _alive(pid)]
        checkpoints.append(current)
    assert checkpoints == sorted(checkpoints)  # each restart resumed, none went back
    served_before = len(simulator.served_records())
    assert served_before < len(simulator.simulator.feed.entries)  # really killed mid-sweep
    result = _poll(topics, simulator.url, "--once", "--page-size", "500")
    assert result.returncode == 0, result.stderr[-2000:]
    _assert_all_served_published(simulator, topics)


def test_sigterm_flushes_saves_and_exits_zero(
    simulator: RunningSimulator, topics: Settings, redis_ns: Settings
) -> None:
    proc = subprocess.Popen(
        _argv(topics, simulator.url, "--page-size", "50", "--interval", "0.2"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _checkpoint(topics) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    assert proc.returncode == 0, stderr[-2000:]
    assert "poller stopped" in stderr
    assert _checkpoint(topics) is not None
    # every page fetched before the stop was flushed to the broker
    _assert_all_served_published(simulator, topics, at_least=50)


@pytest.mark.parametrize(
    "simulator", [FaultConfig(rate_slow=1.0, slow_seconds=60)], ids=["hanging-api"], indirect=True
)
def test_sigterm_does_not_wait_for_a_hanging_request(
    simulator: RunningSimulator, topics: Settings, redis_ns: Settings
) -> None:
    proc = subprocess.Popen(
        _argv(topics, simulator.url, "--request-timeout", "120"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env(),
    )  # fmt: skip
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # the first request goes out right after this line
            if "poller starting" in line:
                break
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0  # the API would answer only after 60 s
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_wrong_key_exits_2_with_one_line(
    simulator: RunningSimulator, topics: Settings, redis_ns: Settings
) -> None:
    result = _poll(topics, simulator.url, "--once", "--log-level", "WARNING", key="wrong")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "401" in lines[0] and "wrong" not in lines[0]
    assert not simulator.served_records()


def test_unreachable_api_retries_then_fails_clearly(topics: Settings, redis_ns: Settings) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = _poll(topics, f"http://127.0.0.1:{port}", "--once", "--max-retry-time", "2")
    assert result.returncode == 1
    assert "retry" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("txnpipe poll:") and "kept failing" in last and str(port) in last


def test_librdkafka_murmur2_random_agrees_with_our_partitions(topics: Settings) -> None:
    from confluent_kafka import Producer

    partitions = ensure_topics(topics)
    producer = Producer(
        {
            "bootstrap.servers": topics.kafka_bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
        }
    )
    landed: dict[str, int] = {}

    def delivered(err: Any, msg: Any) -> None:
        assert err is None
        landed[msg.key().decode()] = msg.partition()

    keys = [str(1_000_000_000_000 + i * 7919) for i in range(200)] + ["a", "bc", "ü-key", "x" * 41]
    for key in keys:
        producer.produce(
            topics.topic("transactions.raw"), key=key.encode(), value=b"{}", on_delivery=delivered
        )
    assert producer.flush(30) == 0
    assert landed == {key: partition_for(key.encode(), partitions) for key in keys}
    assert len(set(landed.values())) == partitions
