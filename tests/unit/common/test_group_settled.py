"""``group_settled``: which coordinator states let a member leave (no broker needed)."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupState

from common.kafka import group_settled


class Admin:
    def __init__(self, state: ConsumerGroupState | None) -> None:
        self.state = state

    def describe_consumer_groups(self, groups: list[str], request_timeout: float) -> Any:
        future: Future[Any] = Future()
        if self.state is None:
            future.set_exception(RuntimeError("coordinator not available"))
        else:
            future.set_result(type("Description", (), {"state": self.state})())
        return {groups[0]: future}


@pytest.mark.parametrize(
    ("state", "settled"),
    [
        (ConsumerGroupState.STABLE, True),
        (ConsumerGroupState.EMPTY, True),
        (ConsumerGroupState.DEAD, True),  # Apache Kafka's answer for a group never joined
        (ConsumerGroupState.PREPARING_REBALANCING, False),
        (ConsumerGroupState.COMPLETING_REBALANCING, False),
        (ConsumerGroupState.UNKNOWN, False),
        (None, True),  # cannot tell: never hold a shutdown on it
    ],
    ids=lambda v: getattr(v, "name", str(v)),
)
def test_a_member_may_leave_unless_the_group_rebalances(
    state: ConsumerGroupState | None, settled: bool
) -> None:
    assert group_settled(Admin(state), "g", timeout=1) is settled
