"""Sinks leaving one right after another leave a group that the next sink can join.

The bundled broker (Tansu 0.6) wedges a consumer group for good when its last member leaves
while a rebalance is under way: no member that joins later is ever assigned a partition.
Seen as a hang of the end-to-end test's second replay: the first replay's drain left the
group, and the pipeline's sink, revoked for the rebalance that followed, was stopped before
it rejoined. A sink therefore leaves only once its group has settled.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from common.settings import Settings
from sinks.runner import SinkRunner
from tests.unit.sinks.ledger_stream import publish, random_ledger

DEADLINE = 60.0


def start(settings: Settings) -> tuple[SinkRunner, threading.Thread, list[BaseException]]:
    runner = SinkRunner(settings, max_batch_age=0.05)
    failures: list[BaseException] = []

    def work() -> None:
        try:
            runner.run(until_idle=False)
        except BaseException as exc:  # surfaced by the assertions
            failures.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return runner, thread, failures


def wait_for(condition: Any, what: str) -> None:
    end = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling interval of a condition with a deadline


def stop(runner: SinkRunner, thread: threading.Thread, failures: list[BaseException]) -> None:
    runner.stop()
    thread.join(60)
    assert not thread.is_alive() and not failures, failures


def test_last_sink_leaving_right_after_another_leaves_a_group_the_next_sink_joins(
    topics: Settings, mysql_db: Settings
) -> None:
    settings = topics.model_copy(update={"partitions": 3})
    publish(settings, random_ledger(60, today=datetime.now(UTC).date(), seed=5).messages)
    first = start(settings)
    wait_for(lambda: len(first[0].expected) == 3, "the first sink to own every partition")
    second = start(settings)
    wait_for(
        lambda: second[0].expected and len(first[0].expected) < 3,
        "the second sink to share the partitions",
    )
    # the second leaves, and the first is stopped at once: mid-rebalance
    stop(*second)
    stop(*first)

    third = start(settings)
    try:
        wait_for(lambda: len(third[0].expected) == 3, "the next sink to be assigned")
    finally:
        stop(*third)
