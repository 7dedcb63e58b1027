"""The API client against an in-process simulator: what it retries, how long it waits."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime

import pytest

from common.errors import AuthError, ServiceUnavailableError
from producers.client import RetryPolicy, StoppedError, TransactionsClient
from producers.simulator import FaultConfig, SimulatorConfig, start_simulator

CONFIG = SimulatorConfig(seed=2, history_days=3, transactions_per_day=50, rate=0.0)
NOW = datetime(2026, 3, 3, 3, 3, tzinfo=UTC)


class RecordingStop(threading.Event):
    """Records each wait; answers "stop" after ``allow`` waits, so nothing really sleeps."""

    def __init__(self, allow: int) -> None:
        super().__init__()
        self.waits: list[float] = []
        self.allow = allow

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout or 0.0)
        return len(self.waits) > self.allow


def test_wrong_key_is_fatal_at_once() -> None:
    with start_simulator(CONFIG, api_key="right", now=NOW) as sim:
        client = TransactionsClient(sim.url, "wrong")
        with pytest.raises(AuthError, match="401"):
            client.fetch(None, None, 10)
        assert client.retries == 0


def test_429_waits_retry_after_in_either_form() -> None:
    faults = FaultConfig(rate_429=1.0, retry_after=3)
    with start_simulator(CONFIG, faults=faults, now=NOW) as sim:
        stop = RecordingStop(allow=12)
        client = TransactionsClient(sim.url, "", stop=stop, retry=RetryPolicy(max_retry_time=60))
        with pytest.raises(StoppedError):
            client.fetch(None, None, 10)
    assert len(stop.waits) == 13
    assert all(1.5 <= w <= 3.0 for w in stop.waits), stop.waits  # "3" or an HTTP date


def test_5xx_backs_off_with_capped_jitter_and_never_skips() -> None:
    faults = FaultConfig(rate_5xx=1.0)
    policy = RetryPolicy(max_retry_time=60, base=0.2, cap=2.0)
    with start_simulator(CONFIG, faults=faults, now=NOW) as sim:
        stop = RecordingStop(allow=10)
        client = TransactionsClient(sim.url, "", stop=stop, retry=policy, rng=random.Random(1))
        with pytest.raises(StoppedError):
            client.fetch(None, None, 10)
        assert not sim.served_records()
    for attempt, wait in enumerate(stop.waits[:10]):
        assert 0.0 <= wait <= min(2.0, 0.2 * 2**attempt)
    assert len(set(stop.waits)) > 5  # jittered, not a fixed schedule


def test_gives_up_after_max_retry_time_with_one_clear_error() -> None:
    faults = FaultConfig(rate_truncated=1.0)
    with start_simulator(CONFIG, faults=faults, now=NOW) as sim:
        policy = RetryPolicy(max_retry_time=0.5, base=0.01, cap=0.05)
        client = TransactionsClient(sim.url, "", retry=policy)
        with pytest.raises(ServiceUnavailableError, match="kept failing") as err:
            client.fetch(None, None, 50)
        assert client.retries > 1
        assert "--max-retry-time" in str(err.value)


def test_a_clean_api_pages_to_the_end() -> None:
    with start_simulator(CONFIG, now=NOW) as sim:
        client = TransactionsClient(sim.url, "")
        cursor, seen = None, 0
        while True:
            page = client.fetch(None, cursor, 100)
            seen += len(page)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == len(sim.simulator.feed.entries) > 100
        assert client.retries == 0
