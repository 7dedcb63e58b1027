"""``TransactionPoller``: sweeps the API into the raw topic and never loses a record.

A sweep starts at ``updated_since`` = the checkpoint (inclusive; none at first: from the
beginning) and follows ``next_cursor`` until it is null. Pages are produced without
waiting for the broker (the next page is fetched while librdkafka delivers); the
checkpoint advances only to the largest ``updated_at`` of the longest prefix of pages the
broker fully acknowledged, and is saved whenever it advances. A stop request (SIGTERM,
SIGINT) ends the sweep between pages, flushes the producer, saves the checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from common.errors import ServiceUnavailableError
from common.settings import Settings
from producers.checkpoint import CheckpointStore
from producers.client import RetryPolicy, StoppedError, TransactionsClient
from producers.publisher import RawPublisher, Router, ensure_topics, format_since, parse_updated_at

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollerOptions:
    once: bool = False
    interval: float = 5.0
    max_retry_time: float = 300.0
    page_size: int = 1000
    request_timeout: float = 30.0


@dataclass
class PollStats:
    sweeps: int = 0
    pages: int = 0
    records: int = 0
    messages: int = 0
    checkpoint: str | None = None


class TransactionPoller:
    """Wires the API client, the router/publisher and the checkpoint store together."""

    def __init__(
        self,
        settings: Settings,
        options: PollerOptions,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.options = options
        self.stop = stop or threading.Event()
        self.stats = PollStats()
        self.checkpoints = CheckpointStore(settings)
        partitions = ensure_topics(settings)
        self.router = Router(partitions)
        self.publisher = RawPublisher(settings, partitions)
        self.client = TransactionsClient(
            settings.api_url,
            settings.api_key.get_secret_value(),
            timeout=options.request_timeout,
            retry=RetryPolicy(max_retry_time=options.max_retry_time),
            stop=self.stop,
        )
        self._newest: datetime | None = None  # largest updated_at produced so far
        self._saved: str | None = None

    def run(self) -> PollStats:
        """Sweep until caught up (``once``) or until stopped; always flush and checkpoint."""
        since = self.checkpoints.load()
        self._saved = since
        self._newest = parse_updated_at(since) if since else None
        log.info(
            "poller starting: api=%s topic=%s partitions=%d updated_since=%s",
            self.settings.api_url,
            self.publisher.topic,
            self.router.partitions,
            since or "-",
        )
        self.stats.checkpoint = since
        try:
            while not self.stop.is_set():
                self._sweep()
                self._finish_sweep()
                if self.options.once:
                    break
                self.stop.wait(self.options.interval)
        except StoppedError:
            log.info("stop requested; flushing")
        except BaseException:
            # keep what the broker already has: flush and checkpoint, then fail
            with contextlib.suppress(Exception):
                self._finish_sweep()
            raise
        finally:
            self.client.close()
        self._finish_sweep()
        self.checkpoints.close()
        log.info(
            "poller stopped: sweeps=%d pages=%d records=%d messages=%d checkpoint=%s",
            self.stats.sweeps,
            self.stats.pages,
            self.stats.records,
            self.stats.messages,
            self.stats.checkpoint,
        )
        return self.stats

    def _sweep(self) -> None:
        since = format_since(self._newest) if self._newest else None
        cursor: str | None = None
        self.stats.sweeps += 1
        while not self.stop.is_set():
            started = time.perf_counter()
            page = self.client.fetch(since, cursor, self.options.page_size)
            routed = self.router.route(page.records)
            if routed.max_updated_at is not None and (
                self._newest is None or routed.max_updated_at > self._newest
            ):
                self._newest = routed.max_updated_at
            if routed.ignored_future:
                log.warning(
                    "%d records carry an updated_at more than a day ahead; "
                    "they do not move the checkpoint",
                    routed.ignored_future,
                )
            checkpoint = format_since(self._newest) if self._newest else None
            messages = self.publisher.publish(routed, checkpoint)
            self.stats.pages += 1
            self.stats.records += routed.records
            self.stats.messages += messages
            self._save(self.publisher.acked(), final=False)
            log.info(
                "page records=%d messages=%d next_cursor=%s elapsed_ms=%.1f checkpoint=%s",
                routed.records,
                messages,
                (page.next_cursor or "null")[:24],
                (time.perf_counter() - started) * 1000,
                self._saved or "-",
            )
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def _finish_sweep(self) -> None:
        self._save(self.publisher.flush(), final=True)

    def _save(self, checkpoint: str | None, final: bool) -> None:
        if checkpoint is None or checkpoint == self._saved:
            return
        try:
            self.checkpoints.save(checkpoint, self.stats.records)
        except ServiceUnavailableError as exc:
            if final:
                raise
            log.warning("%s; will retry after the next page", exc)
            return
        self._saved = checkpoint
        self.stats.checkpoint = checkpoint
