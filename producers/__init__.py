"""Source stage: the reference transactions API (simulator) and the poller into the raw topic.

Public surface (imported lazily, so ``txnpipe poll`` never loads aiohttp and
``txnpipe simulate-api`` never loads confluent-kafka):

- ``TransactionPoller``, ``PollerOptions``: ``txnpipe poll``.
- ``start_simulator``, ``SimulatorConfig``, ``FaultConfig``, ``RunningSimulator``: the API.
- ``partition_for``: Kafka's murmur2 partitioner (CONTRACT §3 routing).
- ``checkpoint_info(settings)``: the saved poll position (``txnpipe status``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producers.checkpoint import checkpoint_info
    from producers.murmur2 import partition_for
    from producers.poller import PollerOptions, TransactionPoller
    from producers.simulator import FaultConfig, RunningSimulator, SimulatorConfig, start_simulator

_WHERE = {
    "TransactionPoller": "producers.poller",
    "PollerOptions": "producers.poller",
    "start_simulator": "producers.simulator",
    "SimulatorConfig": "producers.simulator",
    "FaultConfig": "producers.simulator",
    "RunningSimulator": "producers.simulator",
    "partition_for": "producers.murmur2",
    "checkpoint_info": "producers.checkpoint",
}

__all__ = [
    "FaultConfig",
    "PollerOptions",
    "RunningSimulator",
    "SimulatorConfig",
    "TransactionPoller",
    "checkpoint_info",
    "partition_for",
    "start_simulator",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'producers' has no attribute {name!r}")
