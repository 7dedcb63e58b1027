"""The MySQL sink: ledger topic → ledger, versions (audit trail) and current ``transactions``.

mysql-connector's C extension fails to load once ``ssl`` has been imported (confluent-kafka
and redis import it) and the connector then silently runs in pure Python at half speed, so
this package loads it before anything else can.
"""

import contextlib

with contextlib.suppress(ImportError):  # pragma: no cover - import-order guard
    import _mysql_connector  # noqa: F401
