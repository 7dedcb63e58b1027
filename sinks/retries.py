"""Which sink failures are retried, and how long to wait between tries.

A transient failure (the connection lost or killed, a deadlock, the broker away; see
``db.is_transient``) is retried on a fresh connection with exponential backoff; any other
database error stops the sink loudly. The classification lives here once, for the batch
writes in the writer thread and for start-up and partition assignment alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from common.errors import ServiceUnavailableError
from sinks import db

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_BACKOFF = 10.0
# What a sink step may raise that is worth a look: every database error, and the broker
# being away. ``is_transient`` decides which of them are retried.
RETRIED: tuple[type[Exception], ...] = (*db.DB_ERRORS, ServiceUnavailableError)


def is_transient(exc: BaseException, conn: Any) -> bool:
    """Retry? Yes for anything but a database error, which ``db.is_transient`` judges."""
    return not isinstance(exc, db.DB_ERRORS) or db.is_transient(exc, conn)


@dataclass
class Backoff:
    """Exponential backoff: 0.2 s, doubled after each wait, at most ``MAX_BACKOFF``."""

    delay: float = 0.2
    cap: float = MAX_BACKOFF

    def sleep(self) -> None:
        time.sleep(self.delay)
        self.delay = min(self.delay * 2, self.cap)


def with_retries(
    action: Callable[[], T],
    what: str,
    *,
    conn: Callable[[], Any],
    reset: Callable[[], None],
    stopping: Callable[[], bool],
    give_up_after: float | None = None,
    on_error: Callable[[bool], None] | None = None,
) -> T:
    """``action()``, retried with backoff on transient errors (until ``give_up_after`` s).

    ``conn`` gives the connection the error happened on (for the classification); ``reset``
    drops it before the next try; ``on_error(transient)`` is told of each database error.
    """
    backoff = Backoff()
    deadline = None if give_up_after is None else time.monotonic() + give_up_after
    while True:
        try:
            return action()
        except RETRIED as exc:
            transient = is_transient(exc, conn())
            if on_error is not None and isinstance(exc, db.DB_ERRORS):
                on_error(transient)
            reset()
            if not transient:
                raise
            if stopping() or (deadline is not None and time.monotonic() > deadline):
                raise
            log.warning("sink: %s failed, retrying in %.1fs: %s", what, backoff.delay, exc)
            backoff.sleep()
