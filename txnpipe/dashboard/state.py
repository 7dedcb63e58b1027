"""What the dashboard shows: one document built from the code behind ``txnpipe query --json``,
``txnpipe status --json`` and ``txnpipe dlq stats``, sampled every few seconds by a thread.

The HTTP handlers only read the last document (cheap, whatever the number of browsers); the
sampler keeps a ring buffer of stage lag and throughput so the page can draw the last minutes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from common.settings import Settings
from schemas.answers import QUESTIONS
from txnpipe.observe import Snapshot, reason_counts, snapshot

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 5.0
DEFAULT_TOP = 10
HISTORY_SECONDS = 15 * 60  # the page draws the last 15 minutes


def answers_json(settings: Settings, top: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The three answers exactly as ``txnpipe query QUESTION --json`` prints them (Redis),
    and per question its freshness or the error that kept it away."""
    from stream_app.lookups import answer

    rows: dict[str, Any] = {}
    meta: dict[str, Any] = {}
    for question in QUESTIONS:
        try:
            ans = answer(settings, question, top if question == "top-customers" else None)
        except Exception as exc:  # a store restarting must not stop the page
            rows[question] = []
            meta[question] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        rows[question] = ans.to_json()
        meta[question] = {"as_of": ans.as_of.isoformat() if ans.as_of else None}
    return rows, meta


def dead_letter_reasons(settings: Settings) -> list[dict[str, Any]] | None:
    """Dead letters by reason from the sink's index (``txnpipe dlq stats``), largest first;
    None when there is no index yet (the sink has not run)."""
    from sinks.dead_letter_queries import DeadLetterIndex

    try:
        index = DeadLetterIndex(settings)
    except Exception as exc:
        log.debug("no dead-letter index: %s", exc)
        return None
    try:
        counts = reason_counts(index)
    finally:
        index.close()
    return [{"reason": r, "count": c} for r, c in sorted(counts.items(), key=_largest_first)]


def _largest_first(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])


def age_seconds(as_of: str | None, now: datetime) -> float | None:
    """Seconds between an ISO-8601 instant (``Z`` or an offset) and ``now``; None if unknown."""
    if not as_of:
        return None
    try:
        then = datetime.fromisoformat(as_of)
    except ValueError:
        return None
    if then.tzinfo is None:
        then = then.replace(tzinfo=UTC)
    return round(max((now - then).total_seconds(), 0.0), 1)


def history_point(snap: Snapshot, at_ms: int) -> dict[str, Any]:
    """One ring-buffer entry: each stage's lag and messages handled in the last minute."""
    return {
        "t": at_ms,
        "stages": {s.name: {"lag": s.lag, "per_minute": s.per_minute} for s in snap.stages},
    }


def build_state(
    settings: Settings,
    snap: Snapshot,
    answers: dict[str, Any],
    answers_meta: dict[str, Any],
    reasons: list[dict[str, Any]] | None,
    history: list[dict[str, Any]],
    *,
    interval: float,
    now: datetime,
) -> dict[str, Any]:
    """The ``/api/state`` document (docs/dashboard.md describes every field)."""
    status = snap.to_json()
    if reasons is None:  # no index: the status's own top reasons (sampled from the topic)
        reasons = status["dead_letter_reasons"]
    return {
        "namespace": settings.namespace,
        "taken_at": now.isoformat(timespec="seconds"),
        "interval_seconds": interval,
        "healthy": snap.healthy,
        "problems": list(snap.problems),
        "answers": answers,
        "answers_meta": answers_meta,
        "stages": [
            {"name": s.name, "lag": s.lag, "per_minute": s.per_minute, "error": s.error}
            for s in snap.stages
        ],
        "history": history,
        "dead_letters": {"total": snap.dead_letters, "reasons": reasons},
        "freshness": {
            "redis_as_of": snap.redis_as_of,
            "redis_age_seconds": age_seconds(snap.redis_as_of, now),
            "mysql_as_of": snap.mysql_as_of,
            "mysql_age_seconds": age_seconds(snap.mysql_as_of, now),
        },
        "status": status,
    }


class DashboardState:
    """Samples the stores every ``interval`` seconds in a daemon thread; ``document()`` is the
    last ``/api/state`` document (``{"ready": false}`` until the first sample is in)."""

    def __init__(
        self,
        settings: Settings,
        *,
        interval: float = DEFAULT_INTERVAL,
        top: int = DEFAULT_TOP,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.settings = settings
        self.interval = interval
        self.top = top
        self._clock = clock
        self._history: deque[dict[str, Any]] = deque(
            maxlen=max(int(HISTORY_SECONDS / max(interval, 0.5)), 10)
        )
        self._doc: dict[str, Any] = {"ready": False, "namespace": settings.namespace}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> dict[str, Any]:
        """Read every store once and publish the new document."""
        snap = snapshot(self.settings, reasons=False)
        answers, meta = answers_json(self.settings, self.top)
        try:
            reasons = dead_letter_reasons(self.settings)
        except Exception as exc:  # MySQL away: the page says so through status problems
            log.debug("dead-letter reasons: %s", exc)
            reasons = None
        now = self._clock()
        with self._lock:
            self._history.append(history_point(snap, int(now.timestamp() * 1000)))
            doc = build_state(
                self.settings, snap, answers, meta, reasons, list(self._history),
                interval=self.interval, now=now,
            )  # fmt: skip
            doc["ready"] = True
            self._doc = doc
        return doc

    def document(self) -> dict[str, Any]:
        with self._lock:
            return self._doc

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.sample()
            except Exception as exc:  # the sampler never dies; the next round tries again
                log.warning("dashboard sample failed: %s: %s", type(exc).__name__, exc)
            self._stop.wait(max(self.interval - (time.monotonic() - started), 0.2))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="dashboard-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
