"""Bisecting a refused batch: halves in savepoints until the refused unit is alone.

A statement the database refuses for a data reason (strict mode, a value out of range)
must not stop the sink nor lose the rest of the batch: the rows are retried on halves
inside savepoints, the one refused item becomes a dead letter and the others commit in
the same transaction. A transient error (see ``db.is_transient``) is not bisected: it
propagates, and the caller retries the whole batch on a new connection.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from mysql.connector.errors import Error as MySQLError

from schemas import DeadLetter
from sinks import db
from sinks.batch import Received, dead_letter

log = logging.getLogger(__name__)

T = TypeVar("T")


# Errors that say the schema or the grants are wrong, not the rows: bisecting would turn
# every message into a dead letter (seen: a migration cut short by a killed connection left
# a column missing, and the whole batch went to the DLQ). They stop the sink loudly instead.
NOT_THE_DATA = frozenset(
    {
        1044,  # access denied to the database
        1049,  # unknown database
        1054,  # unknown column
        1064,  # syntax error
        1142,  # command denied on a table
        1143,  # command denied on a column
        1146,  # no such table
        1227,  # privilege needed
    }
)


class SavepointBisector:
    """Runs a write over a list, bisecting on refusal; savepoint names are unique per writer."""

    def __init__(self) -> None:
        self._savepoints = 0

    def write(
        self,
        cur: Any,
        conn: Any,
        items: list[T],
        write: Callable[[Any, list[T]], None],
        refuse: Callable[[T, MySQLError], None],
    ) -> None:
        """``write(items)``; on a permanent SQL error, halves in savepoints down to one item."""
        if not items:
            return
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        cur.execute(f"SAVEPOINT {name}")
        try:
            write(cur, items)
        except MySQLError as exc:
            if db.is_transient(exc, conn) or getattr(exc, "errno", None) in NOT_THE_DATA:
                raise
            cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
            if len(items) == 1:
                refuse(items[0], exc)
                return
            middle = len(items) // 2
            self.write(cur, conn, items[:middle], write, refuse)
            self.write(cur, conn, items[middle:], write, refuse)
            return
        cur.execute(f"RELEASE SAVEPOINT {name}")


def refused(topic: str, items: list[Received], exc: MySQLError) -> list[DeadLetter]:
    """Dead letters for messages the database refused, with its error as the detail."""
    detail = f"MySQL error {getattr(exc, 'errno', '?')}: {getattr(exc, 'msg', str(exc))}"[:1000]
    log.warning(
        "sink: the database refused %d message(s) at partition=%d offset=%d (%s): dead letter",
        len(items),
        items[-1].partition,
        items[-1].offset,
        detail,
    )
    return [dead_letter(topic, item, "db_rejected", detail) for item in items]
