"""HTTP client of the transactions API (CONTRACT §1): one page per call, retried until it arrives.

Transient failures (connection errors, timeouts, 5xx, 408, truncated or non-JSON bodies)
are retried with capped exponential backoff and full jitter; 429 waits for
``Retry-After`` (seconds or an HTTP date); 401/403 raise ``AuthError`` at once. A page is
never skipped: the call either returns it or raises once ``max_retry_time`` has passed.

Pages are parsed with the C JSON scanner one record at a time, so each record's exact
served text is kept (the poller publishes records *exactly as served*).
"""

from __future__ import annotations

import contextlib
import email.utils
import http.client
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

from common.errors import AuthError, ServiceUnavailableError, TxnpipeError
from common.settings import mask_url
from producers.metrics import PollerMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_WS = " \t\n\r"


class PageFormatError(ValueError):
    """The body is not a complete ``{"data": [...], "next_cursor": ...}`` document."""


class StoppedError(TxnpipeError):
    """The poller was asked to stop while waiting to retry."""


@dataclass(frozen=True, slots=True)
class Page:
    """One API page: each record's decoded value and where its served text is, and the cursor.

    ``source`` is the body itself when it is ASCII (offsets are byte offsets: a record's
    bytes are a zero-copy slice), else the decoded text (offsets are character offsets).
    """

    values: list[Any]
    starts: list[int]
    ends: list[int]
    next_cursor: str | None
    source: bytes | str = b""

    def __len__(self) -> int:
        return len(self.values)

    def record(self, index: int) -> bytes:
        """The exact served bytes of record ``index``."""
        piece = self.source[self.starts[index] : self.ends[index]]
        return piece.encode("utf-8") if isinstance(piece, str) else piece

    def join(self, indices: list[int]) -> bytes:
        """A JSON array of the given records, each exactly as served."""
        starts, ends, source = self.starts, self.ends, self.source
        if isinstance(source, bytes):
            view = memoryview(source)
            return b"[" + b",".join([view[starts[i] : ends[i]] for i in indices]) + b"]"
        return ("[" + ",".join([source[starts[i] : ends[i]] for i in indices]) + "]").encode()

    @property
    def records(self) -> list[tuple[str, Any]]:
        """(served text, value) of every record (convenient, not fast)."""
        return [(self.record(i).decode("utf-8"), v) for i, v in enumerate(self.values)]


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in _WS:
        pos += 1
    return pos


def _scan(text: str, pos: int) -> tuple[Any, int]:
    try:
        value, end = _SCAN(text, pos)
    except StopIteration:
        raise PageFormatError(f"invalid JSON at char {pos}") from None
    except (ValueError, RecursionError) as exc:
        raise PageFormatError(f"invalid JSON at char {pos}: {exc}") from None
    return value, end


_Records = tuple[list[Any], list[int], list[int]]


def parse_page(body: bytes) -> Page:
    """Split a page body into records (value + exact served span) and the cursor."""
    ascii_body = body.isascii()
    try:
        text = body.decode("ascii" if ascii_body else "utf-8")
    except UnicodeDecodeError as exc:
        raise PageFormatError(f"body is not UTF-8 at byte {exc.start}") from None
    pos = _skip_ws(text, 0)
    if not text.startswith("{", pos):
        raise PageFormatError("body is not a JSON object")
    pos = _skip_ws(text, pos + 1)
    records: _Records | None = None
    cursor: Any = None
    seen_cursor = False
    if text.startswith("}", pos):
        pos += 1
    else:
        while True:
            key, pos = _scan(text, pos)
            if not isinstance(key, str):
                raise PageFormatError("object key is not a string")
            pos = _skip_ws(text, pos)
            if not text.startswith(":", pos):
                raise PageFormatError(f"expected ':' at char {pos}")
            pos = _skip_ws(text, pos + 1)
            if key == "data":
                records, pos = _scan_records(text, pos)
            else:
                value, pos = _scan(text, pos)
                if key == "next_cursor":
                    cursor, seen_cursor = value, True
            pos = _skip_ws(text, pos)
            if text.startswith(",", pos):
                pos = _skip_ws(text, pos + 1)
                continue
            if text.startswith("}", pos):
                pos += 1
                break
            raise PageFormatError(f"expected ',' or '}}' at char {pos}")
    if _skip_ws(text, pos) != len(text):
        raise PageFormatError("trailing data after the JSON object")
    if records is None:
        raise PageFormatError("no 'data' array")
    if not seen_cursor or not (cursor is None or isinstance(cursor, str)):
        raise PageFormatError("no 'next_cursor' (string or null)")
    values, starts, ends = records
    return Page(values, starts, ends, cursor or None, body if ascii_body else text)


def _scan_records(text: str, pos: int) -> tuple[_Records, int]:
    if not text.startswith("[", pos):
        raise PageFormatError("'data' is not an array")
    pos = _skip_ws(text, pos + 1)
    values: list[Any] = []
    starts: list[int] = []
    ends: list[int] = []
    if text.startswith("]", pos):
        return (values, starts, ends), pos + 1
    scan, ws = _SCAN, _WS
    add_value, add_start, add_end = values.append, starts.append, ends.append
    try:
        while True:  # the hot loop: one C scan per record, no copies, white space is rare
            value, end = scan(text, pos)
            add_value(value)
            add_start(pos)
            add_end(end)
            sep = text[end]
            if sep in ws:
                end = _skip_ws(text, end)
                sep = text[end]
            if sep == ",":
                pos = end + 1
                if text[pos] in ws:
                    pos = _skip_ws(text, pos)
            elif sep == "]":
                return (values, starts, ends), end + 1
            else:
                raise PageFormatError(f"expected ',' or ']' at char {end}")
    except StopIteration as exc:
        raise PageFormatError(f"invalid JSON at char {exc.value}") from None
    except IndexError:
        raise PageFormatError("the body ends inside 'data'") from None
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, PageFormatError):
            raise
        raise PageFormatError(f"invalid JSON: {exc}") from None


def guess_cursor(body: bytes) -> str | None:
    """The ``next_cursor`` read from the end of a body without parsing it (a guess).

    Lets the next request start before this page is parsed; the poller checks the guess
    against the parsed page and discards the early request when they differ.
    """
    at = body.rfind(b'"next_cursor"')
    if at < 0:
        return None
    try:
        text = body[at + 13 :].decode("utf-8").lstrip(_WS)
        if not text.startswith(":"):
            return None
        value, _ = _SCAN(text, len(text) - len(text[1:].lstrip(_WS)))
    except (UnicodeDecodeError, StopIteration, ValueError):
        return None
    return value if isinstance(value, str) and value else None


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds to wait: an integer, or an HTTP date; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


class _Transient(Exception):
    def __init__(self, message: str, wait: float | None = None, reason: str = "error") -> None:
        super().__init__(message)
        self.wait = wait
        self.reason = reason  # the ``reason`` label of txnpipe_api_retries_total


@dataclass
class RetryPolicy:
    """Capped exponential backoff with full jitter, bounded by ``max_retry_time``."""

    max_retry_time: float = 300.0
    base: float = 0.2
    cap: float = 10.0
    max_retry_after: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.cap, self.base * 2.0**attempt))


class TransactionsClient:
    """Fetches pages of ``GET {api_url}/transactions``; one kept-alive connection."""

    def __init__(
        self,
        api_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        stop: threading.Event | None = None,
        rng: random.Random | None = None,
        metrics: PollerMetrics | None = None,
    ) -> None:
        parts = urlsplit(api_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/transactions"
        self.api_url = mask_url(api_url)  # for messages: never a password
        self._headers = {"Accept": "application/json", "User-Agent": "txnpipe-poller/0.1"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = timeout
        self.retry = retry or RetryPolicy()
        self._stop = stop or threading.Event()
        self._rng = rng or random.Random()
        self._conn: http.client.HTTPConnection | None = None
        self.retries = 0  # transient failures survived, for logs and tests
        self.metrics = metrics

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def abort(self) -> None:
        """Cut a request in flight in another thread short (it then fails as transient)."""
        conn = self._conn
        sock = getattr(conn, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _target(self, updated_since: str | None, cursor: str | None, limit: int) -> str:
        params: dict[str, str | int] = {"limit": limit}
        if updated_since:
            params["updated_since"] = updated_since
        if cursor:
            params["cursor"] = cursor
        return f"{self._path}?{urlencode(params)}"

    def fetch(
        self,
        updated_since: str | None,
        cursor: str | None,
        limit: int,
        first_body: bytes | None = None,
    ) -> Page:
        """One page; retries transient failures; raises AuthError, StoppedError or after
        ``max_retry_time`` ServiceUnavailableError.

        ``first_body``: a body already fetched for exactly this request (by
        ``fetch_body``); it is parsed first, and fetched again only if unreadable.
        """
        target = self._target(updated_since, cursor, limit)

        def attempt() -> Page:
            nonlocal first_body
            body, first_body = first_body, None
            if body is None:
                body = self._get_body(target)
            try:
                return parse_page(body)
            except PageFormatError as exc:
                raise _Transient(
                    f"unreadable page ({len(body)} bytes): {exc}", reason="unreadable"
                ) from None

        return self._retrying(attempt)

    def fetch_body(self, updated_since: str | None, cursor: str | None, limit: int) -> bytes:
        """The raw 200 body of one request (not parsed), retried like ``fetch``."""
        target = self._target(updated_since, cursor, limit)
        return self._retrying(lambda: self._get_body(target))

    def _retrying(self, attempt_once: Callable[[], T]) -> T:
        first_failure: float | None = None
        attempt = 0
        while True:
            if self._stop.is_set():
                raise StoppedError("stopping")
            try:
                return attempt_once()
            except _Transient as exc:
                if self._stop.is_set():  # e.g. cut short by abort(): not worth a retry
                    raise StoppedError("stopping") from None
                now = time.monotonic()
                first_failure = now if first_failure is None else first_failure
                wait = exc.wait if exc.wait is not None else self.retry.delay(attempt, self._rng)
                wait = min(wait, self.retry.max_retry_after)
                elapsed = now - first_failure
                if elapsed + wait > self.retry.max_retry_time:
                    raise ServiceUnavailableError(
                        f"the API at url={self.api_url} kept failing for {elapsed:.0f}s "
                        f"(last: {exc}); check it, or raise --max-retry-time"
                    ) from None
                attempt += 1
                self.retries += 1
                if self.metrics is not None:
                    self.metrics.retries.inc(1, exc.reason)
                log.warning("API request failed (%s); retry %d in %.2fs", exc, attempt, wait)
                if self._stop.wait(wait):
                    raise StoppedError("stopping") from None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
        return self._conn

    def _get_body(self, target: str) -> bytes:
        started = time.perf_counter()
        metrics = self.metrics
        try:
            conn = self._connection()
            conn.request("GET", target, headers=self._headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:  # resets, timeouts, short reads
            self.close()
            timeout = isinstance(exc, socket.timeout | TimeoutError)
            kind = "timeout" if timeout else type(exc).__name__
            if metrics is not None:
                metrics.requests.inc(1, "timeout" if timeout else "error")
            raise _Transient(
                f"{kind}: {exc}"[:200], reason="timeout" if timeout else "connection"
            ) from None
        status = response.status
        if metrics is not None:
            metrics.requests.inc(1, str(status))
            metrics.request_seconds.observe(time.perf_counter() - started)
        if response.will_close:
            self.close()
        if status == 200:
            return body
        if status in (401, 403):
            self.close()
            raise AuthError(
                f"the API at url={self.api_url} refused the key (HTTP {status}); "
                "set TXNPIPE_API_KEY or --api-key"
            )
        if status == 429:
            wait = retry_after_seconds(response.getheader("Retry-After"))
            raise _Transient("HTTP 429 too many requests", wait, reason="429")
        if status >= 500 or status == 408:
            raise _Transient(f"HTTP {status}", reason="5xx" if status >= 500 else "408")
        detail = body[:200].decode("utf-8", "replace")
        raise TxnpipeError(f"the API at url={self.api_url} answered HTTP {status}: {detail}")
