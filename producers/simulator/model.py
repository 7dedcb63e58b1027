"""The simulator's clean model: a transaction history that is a pure function of (config, time).

Each backfill day and each block of live arrivals is generated from its own RNG, seeded
by ``(seed, chunk)``, so the history never depends on who asked for what first. A
transaction is a list of clean ``Version``s (creation, then changes); the *feed* is every
version rendered as a dirty record, plus noise: exact repeats, late replicas of older
versions, and invalid records. Feed entries are ordered by ``(feed_ms, transaction_id,
chunk, index)``; an entry becomes visible once the clock reaches its ``feed_ms``.

This module never imports ``schemas``: the ground truth is computed from the model, so
end-to-end tests compare the pipeline against an independent answer. Nor does it import
the renderer (``render`` depends on the model, not back): the generator is handed one,
and ``feed.Feed`` wires the two together.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Protocol

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
LIVE_CHUNK = 256  # live arrivals generated per block
LIVE_CHUNK_BASE = 10_000_000  # chunk numbers of live blocks start here (backfill days below)
BACKFILL_ID_BASE = 1_000_000_000_000
LIVE_ID_BASE = 2_000_000_000_000

# (clean name, median amount in cents, log-normal sigma, relative frequency)
CATEGORIES: tuple[tuple[str, int, float, float], ...] = (
    ("groceries", 6_400, 0.6, 22.0),
    ("restaurants", 3_800, 0.7, 16.0),
    ("electronics", 24_000, 1.0, 8.0),
    ("apparel", 7_900, 0.8, 10.0),
    ("home & garden", 11_500, 0.9, 7.0),
    ("health & beauty", 3_300, 0.7, 8.0),
    ("books", 2_100, 0.5, 4.0),
    ("sports & outdoors", 8_800, 0.9, 4.0),
    ("toys & games", 4_400, 0.7, 4.0),
    ("automotive", 16_000, 1.1, 3.0),
    ("travel", 62_000, 1.0, 3.0),
    ("digital services", 1_500, 0.6, 8.0),
    ("uncategorized", 5_000, 1.0, 3.0),
)
MAX_AMOUNT_CENTS = 99_000_000  # the model stays below the contract's 1,000,000.00 ceiling


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything the history depends on; same config and clock, same bytes."""

    seed: int = 42
    history_days: int = 540
    transactions_per_day: float = 100.0
    rate: float = 5.0  # live arrivals per second after the anchor
    customers: int = 5_000
    dirty_rate: float = 0.35  # share of records with at least one dirty-but-accepted field
    invalid_rate: float = 0.02  # invalid records per version
    repeat_rate: float = 0.03  # exact repeats per version
    late_rate: float = 0.02  # late replicas of the previous version, per change
    # change probabilities per transaction
    approve_rate: float = 0.88  # pending → approved (else declined)
    reverse_rate: float = 0.03
    amount_correction_rate: float = 0.04
    backdate_rate: float = 0.03
    category_correction_rate: float = 0.02
    customer_correction_rate: float = 0.015


@dataclass(frozen=True, slots=True)
class Version:
    """One clean version of a transaction (what the cleaning rules must arrive at)."""

    transaction_id: str
    customer_id: str
    category: str
    amount_cents: int
    transaction_date: date
    status: str
    updated_ms: int


FeedKey = tuple[int, str, int, int]  # (feed_ms, transaction_id, chunk, index)


class Renderer(Protocol):
    """Clean versions → feed bytes (``producers.simulator.render`` is the one in use)."""

    def record(self, rng: random.Random, version: Version, dirty_rate: float) -> bytes: ...

    def invalid(
        self, rng: random.Random, version: Version, feed_ms: int
    ) -> tuple[str, bytes, str]: ...


@dataclass(slots=True)
class Entry:
    """One record of the feed: its rendered bytes and the clean version it stands for."""

    key: FeedKey
    body: bytes
    version: Version | None  # None: an invalid record (changes nothing)
    kind: str  # "version", "repeat", "late" or the invalid kind

    def __lt__(self, other: Entry) -> bool:
        return self.key < other.key


def _chunk_rng(seed: int, chunk: int) -> random.Random:
    digest = hashlib.blake2b(f"{seed}:{chunk}".encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: str
    spend: float  # multiplier on amounts: a few heavy spenders, a long tail


def make_customers(config: SimulatorConfig) -> tuple[list[Customer], list[float]]:
    """Customers and cumulative weights: Zipf-like frequency, log-normal spend."""
    rng = _chunk_rng(config.seed, -1)
    count = max(1, config.customers)
    ids = rng.sample(range(100_000, 100_000 + count * 9), count)
    customers = [Customer(str(i), math.exp(rng.gauss(0.0, 0.5))) for i in ids]
    weights = [1.0 / (rank + 1) ** 0.9 for rank in range(count)]
    cumulative: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    return customers, cumulative


def ms_to_date(ms: int) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + ms // DAY_MS)


class HistoryGenerator:
    """Generates the chunks of the history (pure functions of config and chunk number)."""

    def __init__(self, config: SimulatorConfig, anchor_ms: int, renderer: Renderer) -> None:
        self.config = config
        self.render = renderer  # draws from the same RNG, in turn with the model's choices
        self.anchor_ms = anchor_ms
        self.start_ms = anchor_ms - config.history_days * DAY_MS
        self.customers, self._cum_weights = make_customers(config)
        self._cat_cum: list[float] = []
        total = 0.0
        for _, _, _, freq in CATEGORIES:
            total += freq
            self._cat_cum.append(total)

    # -- chunks ---------------------------------------------------------------
    def backfill_day(self, day: int) -> list[Entry]:
        """Transactions created in backfill day ``day`` (0 = oldest) and all their changes."""
        cfg = self.config
        rng = _chunk_rng(cfg.seed, day)
        day_start = self.start_ms + day * DAY_MS
        # weekly rhythm and slow growth, so months differ and the trend has a shape
        weekday = ms_to_date(day_start).weekday()
        growth = 0.75 + 0.5 * day / max(1, cfg.history_days)
        mean = cfg.transactions_per_day * growth * (1.15 if weekday >= 4 else 0.95)
        count = max(0, round(rng.gauss(mean, math.sqrt(max(mean, 1.0)))))
        times = sorted(day_start + rng.randrange(DAY_MS) for _ in range(count))
        entries: list[Entry] = []
        for n, t0 in enumerate(times):
            tid = str(BACKFILL_ID_BASE + day * 100_000 + n)
            self._transaction(rng, tid, t0, day, entries)
        return entries

    def _slot(self, k: int) -> int:
        """Start of live arrival ``k``'s time slot (``1/rate`` seconds wide)."""
        return self.anchor_ms + 1 + math.ceil(k * 1000 / self.config.rate)

    def live_chunk_start(self, chunk: int) -> int:
        """No arrival of block ``chunk`` is created before this time."""
        return self._slot(chunk * LIVE_CHUNK)

    def live_chunk(self, chunk: int) -> list[Entry]:
        """Live arrivals ``[chunk*LIVE_CHUNK, (chunk+1)*LIVE_CHUNK)`` after the anchor."""
        rng = _chunk_rng(self.config.seed, LIVE_CHUNK_BASE + chunk)
        entries: list[Entry] = []
        for n in range(LIVE_CHUNK):
            k = chunk * LIVE_CHUNK + n
            slot = self._slot(k)
            t0 = slot + rng.randrange(max(1, self._slot(k + 1) - slot))  # random within its slot
            self._transaction(rng, str(LIVE_ID_BASE + k), t0, LIVE_CHUNK_BASE + chunk, entries)
        return entries

    # -- one transaction --------------------------------------------------------
    def _customer(self, rng: random.Random) -> Customer:
        x = rng.random() * self._cum_weights[-1]
        return self.customers[bisect.bisect_left(self._cum_weights, x)]

    def _category(self, rng: random.Random) -> int:
        x = rng.random() * self._cat_cum[-1]
        return bisect.bisect_left(self._cat_cum, x)

    def _amount(self, rng: random.Random, category: int, customer: Customer) -> int:
        _, median, sigma, _ = CATEGORIES[category]
        cents = int(median * customer.spend * math.exp(rng.gauss(0.0, sigma)))
        if rng.random() < 0.3:  # prices end in .99 / .00 / .50 often
            cents = (cents // 100) * 100 + rng.choice((99, 0, 50, 95))
        return min(max(cents, 1), MAX_AMOUNT_CENTS)

    def _transaction(
        self, rng: random.Random, tid: str, t0: int, chunk: int, out: list[Entry]
    ) -> None:
        cfg = self.config
        customer = self._customer(rng)
        category = self._category(rng)
        day = ms_to_date(t0)
        if rng.random() < 0.1:  # posted the day after it happened
            day = date.fromordinal(day.toordinal() - 1)
        roll = rng.random()
        status = "pending" if roll < 0.75 else ("approved" if roll < 0.95 else "declined")
        first = Version(
            tid,
            customer.customer_id,
            CATEGORIES[category][0],
            self._amount(rng, category, customer),
            day,
            status,
            t0,
        )
        versions = [first]
        events: list[tuple[int, str]] = []
        if status == "pending":
            events.append((t0 + rng.randrange(MINUTE_MS, 48 * HOUR_MS), "settle"))
        if rng.random() < cfg.reverse_rate:
            events.append((t0 + rng.randrange(DAY_MS, 30 * DAY_MS), "reverse"))
        if rng.random() < cfg.amount_correction_rate:
            events.append((t0 + rng.randrange(HOUR_MS, 10 * DAY_MS), "amount"))
        if rng.random() < cfg.backdate_rate:
            events.append((t0 + rng.randrange(HOUR_MS, 5 * DAY_MS), "backdate"))
        if rng.random() < cfg.category_correction_rate:
            events.append((t0 + rng.randrange(HOUR_MS, 3 * DAY_MS), "category"))
        if rng.random() < cfg.customer_correction_rate:
            events.append((t0 + rng.randrange(HOUR_MS, 3 * DAY_MS), "customer"))
        events.sort()
        for when, what in events:
            cur = versions[-1]
            when = max(when, cur.updated_ms + 1)
            nxt: Version | None = None
            if what == "settle" and cur.status == "pending":
                new_status = "approved" if rng.random() < cfg.approve_rate else "declined"
                nxt = _replace(cur, status=new_status, updated_ms=when)
            elif what == "reverse" and cur.status == "approved":
                nxt = _replace(cur, status="reversed", updated_ms=when)
            elif cur.status in ("pending", "approved"):
                if what == "amount":
                    factor = rng.choice((0.5, 0.9, 0.99, 1.01, 1.1, 1.25, 2.0))
                    cents = min(max(1, round(cur.amount_cents * factor)), MAX_AMOUNT_CENTS)
                    if cents == cur.amount_cents:
                        cents = cur.amount_cents + 1
                    nxt = _replace(cur, amount_cents=cents, updated_ms=when)
                elif what == "backdate":
                    back = rng.randrange(1, 46)
                    nxt = _replace(
                        cur,
                        transaction_date=date.fromordinal(cur.transaction_date.toordinal() - back),
                        updated_ms=when,
                    )
                elif what == "category":
                    other = self._category(rng)
                    name = CATEGORIES[other][0]
                    if name == cur.category:
                        name = CATEGORIES[(other + 1) % len(CATEGORIES)][0]
                    nxt = _replace(cur, category=name, updated_ms=when)
                elif what == "customer":
                    new_customer = self._customer(rng).customer_id
                    if new_customer == cur.customer_id:
                        new_customer = self.customers[0].customer_id
                    if new_customer != cur.customer_id:
                        nxt = _replace(cur, customer_id=new_customer, updated_ms=when)
            if nxt is not None:
                versions.append(nxt)
        index = len(out)

        def add(feed_ms: int, body: bytes, version: Version | None, kind: str, key_id: str) -> None:
            nonlocal index
            out.append(Entry((feed_ms, key_id, chunk, index), body, version, kind))
            index += 1

        for i, version in enumerate(versions):
            body = self.render.record(rng, version, cfg.dirty_rate)
            add(version.updated_ms, body, version, "version", tid)
            if rng.random() < cfg.repeat_rate:
                lag = 0 if rng.random() < 0.5 else rng.randrange(1, 2 * HOUR_MS)
                add(version.updated_ms + lag, body, version, "repeat", tid)
            if i > 0 and rng.random() < cfg.late_rate:
                older = versions[i - 1]
                late_body = self.render.record(rng, older, cfg.dirty_rate)
                add(
                    version.updated_ms + rng.randrange(1_000, 6 * HOUR_MS),
                    late_body,
                    older,
                    "late",
                    tid,
                )
            if rng.random() < cfg.invalid_rate:
                feed_ms = version.updated_ms + rng.randrange(1, HOUR_MS)
                kind, body_bad, key_id = self.render.invalid(rng, version, feed_ms)
                add(feed_ms, body_bad, None, kind, key_id)


def _replace(v: Version, **changes: object) -> Version:
    fields = {
        "transaction_id": v.transaction_id,
        "customer_id": v.customer_id,
        "category": v.category,
        "amount_cents": v.amount_cents,
        "transaction_date": v.transaction_date,
        "status": v.status,
        "updated_ms": v.updated_ms,
    }
    fields.update(changes)
    return Version(**fields)  # type: ignore[arg-type]


def now_ms() -> int:
    """Wall clock in whole milliseconds (UTC)."""
    return int(datetime.now(UTC).timestamp() * 1000)


def anchor_from(now: datetime | None) -> int:
    """The end of the backfill in ms: ``now`` if given, else the wall clock (whole seconds)."""
    if now is None:
        return (now_ms() // 1000) * 1000
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return int(now.timestamp() * 1000)
