"""The feed the simulated API serves: the model's history rendered, revealed as the clock moves.

Here the clean model (``model``) meets the renderer (``render``), so that neither imports
the other's consumer: the renderer depends on the model, the model on nothing, and this
module on both.
"""

from __future__ import annotations

import bisect
import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from producers.simulator import render
from producers.simulator.model import Entry, FeedKey, HistoryGenerator, SimulatorConfig


@dataclass
class Feed:
    """The visible feed: entries with ``feed_ms <= clock``, in feed order, append-only.

    Entries generated but not yet due wait in a heap; the clock only moves forward.
    Not thread-safe: the server serialises access with a lock.
    """

    config: SimulatorConfig
    anchor_ms: int
    clock: Callable[[], int]
    generator: HistoryGenerator = field(init=False)
    entries: list[Entry] = field(default_factory=list)
    keys: list[FeedKey] = field(default_factory=list)
    served: bytearray = field(default_factory=bytearray)
    max_served: int = -1  # index of the furthest entry served in a complete response
    _pending: list[Entry] = field(default_factory=list)
    _next_live_chunk: int = 0
    _now: int = 0

    def __post_init__(self) -> None:
        self.generator = HistoryGenerator(self.config, self.anchor_ms, render)
        backfill: list[Entry] = []
        for day in range(self.config.history_days):
            backfill.extend(self.generator.backfill_day(day))
        backfill.sort()
        self._pending = backfill[::-1]  # popped from the end, oldest first
        self._heap: list[Entry] = []
        self._now = self.anchor_ms - 1
        self.advance()

    def advance(self) -> int:
        """Bring the visible feed up to the clock; returns the clock in ms."""
        now = max(self.clock(), self._now)
        self._now = now
        if self.config.rate > 0:
            while self.generator.live_chunk_start(self._next_live_chunk) <= now:
                for entry in self.generator.live_chunk(self._next_live_chunk):
                    heapq.heappush(self._heap, entry)
                self._next_live_chunk += 1
        pending = self._pending
        heap = self._heap
        while True:
            a = pending[-1] if pending else None
            b = heap[0] if heap else None
            if a is not None and (b is None or a.key < b.key):
                if a.key[0] > now:
                    break
                pending.pop()
                self._append(a)
            elif b is not None:
                if b.key[0] > now:
                    break
                heapq.heappop(heap)
                self._append(b)
            else:
                break
        return now

    def _append(self, entry: Entry) -> None:
        self.entries.append(entry)
        self.keys.append(entry.key)
        self.served.append(0)

    def start_index(self, updated_since_ms: int | None, cursor: FeedKey | None) -> int:
        if cursor is not None:
            return bisect.bisect_right(self.keys, cursor)
        if updated_since_ms is not None:
            return bisect.bisect_left(self.keys, (updated_since_ms,))
        return 0

    def mark_served(self, start: int, end: int) -> None:
        """Entries ``[start, end)`` went out in a complete response."""
        if end > start:
            self.served[start:end] = b"\x01" * (end - start)
            self.max_served = max(self.max_served, end - 1)
