"""The reference transactions API (CONTRACT §1) over the simulator's feed, with faults.

``GET /transactions`` pages the visible feed; ``GET /_truth`` returns the ground truth for
what has been served; ``GET /_health`` answers ``ok``. Authentication: when an API key is
configured every ``/transactions`` request must carry ``Authorization: Bearer <key>``
(else 401); with no key configured the API is open (a warning is logged at start).
``/_truth`` and ``/_health`` are always open: they are test oracles, not data.

``start_simulator`` runs the server in a background thread on a free port (for tests and
benchmarks); ``serve`` runs it in the foreground until SIGTERM/SIGINT (the CLI).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import email.utils
import hmac
import json
import logging
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiohttp import web

from producers.simulator import truth as truth_mod
from producers.simulator.feed import Feed
from producers.simulator.model import FeedKey, SimulatorConfig, anchor_from, now_ms

if TYPE_CHECKING:
    from producers.metrics import SimulatorMetrics

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class FaultConfig:
    """Per-request fault probabilities (each drawn independently, in this order)."""

    rate_429: float = 0.0
    rate_5xx: float = 0.0
    rate_slow: float = 0.0
    rate_truncated: float = 0.0
    slow_seconds: float = 1.0
    retry_after: int = 1

    @classmethod
    def uniform(cls, rate: float, **kwargs: Any) -> FaultConfig:
        """Every fault at the same rate."""
        return cls(rate_429=rate, rate_5xx=rate, rate_slow=rate, rate_truncated=rate, **kwargs)


class BadRequestError(ValueError):
    """A request parameter the API refuses (400)."""


def encode_cursor(key: FeedKey) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(text: str) -> FeedKey:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        ms, tid, chunk, index = json.loads(raw)
        if not (
            isinstance(ms, int)
            and isinstance(tid, str)
            and isinstance(chunk, int)
            and isinstance(index, int)
        ):
            raise ValueError("cursor fields")
        return (ms, tid, chunk, index)
    except (ValueError, TypeError, binascii.Error):
        raise BadRequestError("cursor is not one this API issued") from None


def parse_since(text: str) -> int:
    """``updated_since`` (ISO-8601 with Z or an offset) → ms since the epoch (floored)."""
    text = text.strip()
    if " " in text and "+" not in text:  # an unescaped "+hh:mm" in a query string
        text = text.replace(" ", "+")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise BadRequestError(f"updated_since is not ISO-8601: {text[:40]!r}") from None
    if moment.tzinfo is None:
        raise BadRequestError("updated_since needs Z or an offset")
    return (moment - _EPOCH) // timedelta(milliseconds=1)


class Simulator:
    """The feed, its clock, a lock, and the HTTP handlers."""

    def __init__(
        self,
        config: SimulatorConfig,
        faults: FaultConfig | None = None,
        api_key: str = "",
        now: datetime | None = None,
        frozen: bool | None = None,
        counted: frozenset[str] = frozenset({"pending", "approved"}),
    ) -> None:
        self.config = config
        self.faults = faults or FaultConfig()
        self._api_key = api_key
        self.counted = counted
        self._anchor = anchor_from(now)
        self.frozen = (now is not None) if frozen is None else frozen
        self._offset_ms = 0
        self.lock = threading.Lock()
        self.metrics: SimulatorMetrics | None = None  # set before app(): GET /metrics counts
        self._fault_rng = random.Random(config.seed ^ 0x5EED)
        started = time.perf_counter()
        self.feed = Feed(config, self._anchor, self._clock)
        log.info(
            "simulator history ready: %d records visible, %d days, seed=%d, %.1fs",
            len(self.feed.entries),
            config.history_days,
            config.seed,
            time.perf_counter() - started,
        )

    def _clock(self) -> int:
        base = self._anchor if self.frozen else now_ms()
        return base + self._offset_ms

    def advance(self, seconds: float) -> None:
        """Move the clock forward (tests): later versions and arrivals become visible."""
        with self.lock:
            self._offset_ms += int(seconds * 1000)
            self.feed.advance()

    # -- Python API for tests ----------------------------------------------------------
    def truth(
        self,
        counted: frozenset[str] | None = None,
        now: datetime | None = None,
        include_transactions: bool = True,
    ) -> dict[str, Any]:
        with self.lock:
            return truth_mod.compute(
                self.feed.entries,
                bytes(self.feed.served),
                self.feed.max_served,
                counted if counted is not None else self.counted,
                now or datetime.now(UTC),
                include_transactions,
            )

    def served_records(self) -> list[bytes]:
        """The bytes of every distinct feed entry served in a complete response."""
        with self.lock:
            return [
                e.body for e, flag in zip(self.feed.entries, self.feed.served, strict=False) if flag
            ]

    # -- HTTP --------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count] if self.metrics is not None else [])
        app.router.add_get("/transactions", self.handle_transactions)
        app.router.add_get("/_truth", self.handle_truth)
        app.router.add_get("/_health", self.handle_health)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        """Requests by path and status (and their duration) for txnpipe_simulator_*."""
        started = time.perf_counter()
        status = 500
        try:
            response: web.StreamResponse = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics = self.metrics
            if metrics is not None:
                resource = request.match_info.route.resource
                path = resource.canonical if resource is not None else "other"
                metrics.requests.inc(1, path, str(status))
                metrics.request_seconds.observe(time.perf_counter() - started)

    def _fault(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.faults.inc(1, kind)

    def _authorised(self, request: web.Request) -> bool:
        if not self._api_key:
            return True
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip(), self._api_key)

    async def handle_health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def handle_truth(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        counted = None
        if "counted" in query:
            counted = frozenset(s.strip() for s in query["counted"].split(",") if s.strip())
        now = None
        if "now" in query:
            try:
                now = datetime.fromtimestamp(parse_since(query["now"]) / 1000, UTC)
            except BadRequestError as exc:
                return _error(400, str(exc))
        include = query.get("transactions", "1") not in ("0", "false", "no")
        doc = await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.truth(counted, now, include)
        )
        return web.Response(body=json.dumps(doc).encode(), content_type="application/json")

    async def handle_transactions(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return _error(401, "missing or wrong API key")
        faults, rng = self.faults, self._fault_rng
        if rng.random() < faults.rate_429:
            retry = str(faults.retry_after)
            if rng.random() < 0.5:
                retry = email.utils.formatdate(time.time() + faults.retry_after, usegmt=True)
            self._fault("429")
            return _error(429, "slow down", {"Retry-After": retry})
        if rng.random() < faults.rate_5xx:
            self._fault("5xx")
            return _error(rng.choice((500, 502, 503, 504)), "simulated server error")
        if rng.random() < faults.rate_slow:
            self._fault("slow")
            await asyncio.sleep(faults.slow_seconds)
        truncate = rng.random() < faults.rate_truncated
        try:
            body, span = self._page(request.rel_url.query)
        except BadRequestError as exc:
            return _error(400, str(exc))
        if truncate:
            self._fault("truncated")
            return await self._truncated(request, body, rng)
        response = web.Response(body=body, content_type="application/json")
        await response.prepare(request)
        await response.write_eof()
        with self.lock:
            self.feed.mark_served(*span)
        if self.metrics is not None:
            self.metrics.records.inc(span[1] - span[0])
        return response

    async def _truncated(
        self, request: web.Request, body: bytes, rng: random.Random
    ) -> web.StreamResponse:
        cut = body[: rng.randrange(1, max(2, len(body) - 1))]
        if rng.random() < 0.5:  # honest length, broken JSON
            return web.Response(body=cut, content_type="application/json")
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = len(body)  # promise the whole body, then hang up
        await response.prepare(request)
        await response.write(cut)
        if request.transport is not None:
            request.transport.close()
        return response

    def _page(self, query: Any) -> tuple[bytes, tuple[int, int]]:
        try:
            limit = int(query.get("limit", DEFAULT_LIMIT))
        except ValueError:
            raise BadRequestError("limit must be an integer") from None
        if not 1 <= limit <= MAX_LIMIT:
            raise BadRequestError(f"limit must be in 1..{MAX_LIMIT}")
        cursor = decode_cursor(query["cursor"]) if query.get("cursor") else None
        since = parse_since(query["updated_since"]) if query.get("updated_since") else None
        with self.lock:
            feed = self.feed
            feed.advance()
            start = feed.start_index(since, cursor)
            end = min(start + limit, len(feed.entries))
            bodies = [e.body for e in feed.entries[start:end]]
            next_cursor = encode_cursor(feed.keys[end - 1]) if end < len(feed.entries) else None
        nxt = "null" if next_cursor is None else f'"{next_cursor}"'
        body = b'{"data":[' + b",".join(bodies) + b'],"next_cursor":' + nxt.encode() + b"}"
        return body, (start, end)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps({"error": message}).encode(),
        content_type="application/json",
        headers=headers,
    )


class RunningSimulator:
    """A simulator serving in a background thread; ``stop()`` (or ``with``) ends it."""

    def __init__(self, simulator: Simulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.simulator = simulator
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._error: BaseException | None = None
        self.url = ""
        self._thread = threading.Thread(
            target=self._run, args=(host, port), name="simulator", daemon=True
        )
        self._thread.start()
        self._ready.wait(60)
        if self._error is not None:
            raise self._error
        if not self.url:
            raise RuntimeError("the simulator did not start within 60 s")

    def _run(self, host: str, port: int) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._runner, self.url = self._loop.run_until_complete(
                _start(self.simulator, host, port)
            )
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    def truth(self, **kwargs: Any) -> dict[str, Any]:
        return self.simulator.truth(**kwargs)

    def served_records(self) -> list[bytes]:
        return self.simulator.served_records()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def _start(simulator: Simulator, host: str, port: int) -> tuple[web.AppRunner, str]:
    # stop() gives requests in flight 2 s, not aiohttp's 60: a slow fault's sleep is cut short
    runner = web.AppRunner(
        simulator.app(), access_log=None, handle_signals=False, shutdown_timeout=2.0
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    shown = f"[{host}]" if ":" in host else host
    return runner, f"http://{shown}:{bound}"


def start_simulator(
    config: SimulatorConfig | None = None,
    *,
    faults: FaultConfig | None = None,
    api_key: str = "",
    now: datetime | None = None,
    frozen: bool | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> RunningSimulator:
    """Start a simulator in this process on a free port; returns once it accepts requests."""
    sim = Simulator(config or SimulatorConfig(), faults, api_key, now, frozen)
    return RunningSimulator(sim, host, port)


def serve(simulator: Simulator, host: str, port: int, on_ready: Callable[[str], None]) -> None:
    """Serve in the foreground until SIGTERM or SIGINT, then shut down cleanly."""

    async def main() -> None:
        runner, url = await _start(simulator, host, port)
        on_ready(url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            log.info("simulator stopping")
            with contextlib.suppress(Exception):
                await runner.cleanup()

    asyncio.run(main())
