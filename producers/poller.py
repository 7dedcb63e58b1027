"""``TransactionPoller``: sweeps the API into the raw topic and never loses a record.

A sweep starts at ``updated_since`` = the checkpoint (inclusive; none at first: from the
beginning) and follows ``next_cursor`` until it is null. Pages are produced without
waiting for the broker (the next page is fetched while librdkafka delivers); the
checkpoint advances only to the largest ``updated_at`` of the longest prefix of pages the
broker fully acknowledged, and is saved at most every ``SAVE_EVERY`` seconds and at the end
of each sweep. A stop request (SIGTERM, SIGINT) ends the sweep between pages, flushes the
producer, saves the checkpoint.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.errors import ServiceUnavailableError
from common.settings import Settings, mask_url
from producers.checkpoint import CheckpointStore
from producers.client import (
    PageFormatError,
    RetryPolicy,
    StoppedError,
    TransactionsClient,
    guess_cursor,
    parse_page,
)
from producers.metrics import PollerMetrics
from producers.publisher import (
    PreparedPage,
    RawPublisher,
    Router,
    ensure_topics,
    format_since,
    parse_updated_at,
    prepare,
)

log = logging.getLogger(__name__)

SAVE_EVERY = 0.2  # seconds between checkpoint writes during a sweep (and at its end)


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
        metrics: PollerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or PollerMetrics(settings.namespace)
        self.options = options
        self.stop = stop or threading.Event()
        self.stats = PollStats()
        self.checkpoints = CheckpointStore(settings)
        partitions = ensure_topics(settings)
        self.router = Router(partitions)
        self.publisher = RawPublisher(settings, partitions, on_acked=self._acked)
        self.client = TransactionsClient(
            settings.api_url,
            settings.api_key.get_secret_value(),
            timeout=options.request_timeout,
            retry=RetryPolicy(max_retry_time=options.max_retry_time),
            stop=self.stop,
            metrics=self.metrics,
        )
        self._newest: datetime | None = None  # largest updated_at produced so far
        self._saved: str | None = None
        self._saved_at = 0.0

    def run(self) -> PollStats:
        """Sweep until caught up (``once``) or until stopped; always flush and checkpoint."""
        # A page is ~1000 fresh, acyclic dicts: the default gen-0 threshold (700) would run
        # a collection every few records and cost as much as parsing them. This process
        # is the poller; collecting every 100k allocations is plenty.
        gc.set_threshold(100_000, 50, 100)
        since = self.checkpoints.load()
        self._saved = since
        self._newest = parse_updated_at(since) if since else None
        log.info(
            "poller starting: api=%s topic=%s partitions=%d updated_since=%s",
            mask_url(self.settings.api_url),
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
        """Request page N+1 (a worker thread, I/O only) while page N is parsed and produced.

        The next cursor is guessed from the tail of a body so its request starts before
        the body is parsed; a wrong guess (or an unreadable body) discards the early
        request. A page that was fetched is always published, even on a stop.
        """
        since = format_since(self._newest) if self._newest else None
        size = self.options.page_size
        self.stats.sweeps += 1
        self.metrics.sweeps.inc()
        started = time.perf_counter()
        cursor: str | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="poll-fetch") as pool:
            ahead: tuple[str, Future[bytes]] | None = None
            try:
                body = self._await(pool.submit(self.client.fetch_body, since, cursor, size))
                while True:
                    guess = guess_cursor(body)
                    if guess is not None and not self.stop.is_set():
                        ahead = (guess, pool.submit(self.client.fetch_body, since, guess, size))
                    try:
                        page = prepare(self.router, parse_page(body))
                    except PageFormatError:
                        ahead = _discard(ahead)  # the client is not shared between threads
                        parsed = self.client.fetch(since, cursor, size, first_body=body)
                        page = prepare(self.router, parsed)
                    nxt = page.next_cursor
                    if nxt and nxt == cursor and not page.records:
                        # an API that would keep us here forever
                        log.warning("empty page that points at itself; ending the sweep")
                        nxt = page.next_cursor = None
                    if ahead is not None and ahead[0] != nxt:
                        ahead = _discard(ahead)
                    if ahead is None and nxt and not self.stop.is_set():
                        ahead = (nxt, pool.submit(self.client.fetch_body, since, nxt, size))
                    self._publish(page, started)
                    if ahead is None:
                        return
                    cursor, body = ahead[0], self._await(ahead[1])  # StoppedError if stopped
                    ahead = None
                    started = time.perf_counter()
            except BaseException:
                self.stop.set()  # failing: a request in flight must not keep retrying
                raise

    def _await(self, request: Future[bytes]) -> bytes:
        """A body from the fetch thread; on a stop, a request still in flight is cut short
        (its socket shut down) instead of waiting up to the request timeout."""
        while True:
            try:
                return request.result(timeout=0.2)
            except FutureTimeoutError:
                if self.stop.is_set():
                    self.client.abort()

    def _publish(self, page: PreparedPage, started: float) -> None:
        if page.max_updated_at is not None and (
            self._newest is None or page.max_updated_at > self._newest
        ):
            self._newest = page.max_updated_at
        if page.ignored_future:
            log.warning(
                "%d records carry an updated_at more than a day ahead; "
                "they do not move the checkpoint",
                page.ignored_future,
            )
        checkpoint = format_since(self._newest) if self._newest else None
        messages = self.publisher.publish(page, checkpoint)
        self.stats.pages += 1
        self.stats.records += page.records
        self.stats.messages += messages
        metrics = self.metrics
        metrics.pages.inc()
        metrics.records.inc(page.records, "read")
        metrics.page_records.observe(page.records)
        metrics.page_seconds.observe(time.perf_counter() - started)
        self._save(self.publisher.acked(), final=False)
        log.info(
            "page records=%d messages=%d next_cursor=%s elapsed_ms=%.1f checkpoint=%s",
            page.records,
            messages,
            (page.next_cursor or "null")[:24],
            (time.perf_counter() - started) * 1000,
            self._saved or "-",
        )

    def _acked(self, records: int, messages: int) -> None:
        self.metrics.records.inc(records, "published")
        self.metrics.messages.inc(messages)

    def _finish_sweep(self) -> None:
        self._save(self.publisher.flush(), final=True)

    def _save(self, checkpoint: str | None, final: bool) -> None:
        if checkpoint is None or checkpoint == self._saved:
            return
        now = time.monotonic()
        if not final and now - self._saved_at < SAVE_EVERY:
            return  # a kill loses at most SAVE_EVERY of progress: re-read, deduplicated later
        self._saved_at = now
        try:
            self.checkpoints.save(checkpoint, self.stats.records)
        except ServiceUnavailableError as exc:
            self.metrics.redis_errors.inc(1, "transient" if not final else "permanent")
            if final:
                raise
            log.warning("%s; will retry after the next page", exc)
            return
        self._saved = checkpoint
        self.stats.checkpoint = checkpoint
        moment = parse_updated_at(checkpoint)
        if moment is not None:
            self.metrics.checkpoint.set(moment.timestamp())


def _discard(ahead: tuple[str, Future[bytes]] | None) -> Any:
    """Drop an early request: cancel it, or wait for it and ignore what it got; None."""
    if ahead is not None and not ahead[1].cancel():
        with contextlib.suppress(Exception):
            ahead[1].result()
    return None
