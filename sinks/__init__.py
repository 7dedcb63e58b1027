"""The MySQL sink: ledger topic → ledger, versions (audit trail) and current ``transactions``.

mysql-connector's C extension fails to load once ``ssl`` has been imported (confluent-kafka
and redis import it) and the connector then silently runs in pure Python at half speed, so
this package loads it before anything else can.

The names others use are re-exported here, imported on first use: ``txnpipe --help`` and
the look-ups must not pay for confluent-kafka and the whole writer.
"""

import contextlib
import importlib
from typing import TYPE_CHECKING, Any

with contextlib.suppress(ImportError):  # pragma: no cover - import-order guard
    import _mysql_connector  # noqa: F401

if TYPE_CHECKING:
    from sinks.consumer import ensure_topics, group_id
    from sinks.offsets import FencedError
    from sinks.runner import SinkRunner
    from sinks.status import sink_status
    from sinks.writer import BatchResult, LedgerWriter

_HOMES = {
    "BatchResult": "sinks.writer",
    "FencedError": "sinks.offsets",
    "LedgerWriter": "sinks.writer",
    "SinkRunner": "sinks.runner",
    "ensure_topics": "sinks.consumer",
    "group_id": "sinks.consumer",
    "sink_status": "sinks.status",
}
__all__ = [
    "BatchResult",
    "FencedError",
    "LedgerWriter",
    "SinkRunner",
    "ensure_topics",
    "group_id",
    "sink_status",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'sinks' has no attribute {name!r}")
    return getattr(importlib.import_module(home), name)
