"""How many messages a sink batch holds: adapted to how long the last write took.

A batch whose write is slow (a slow or busy database) halves the size, a quick full one
doubles it again, between ``MIN_BATCH`` and the configured maximum: so commits stay under
a second apart under steady load while a fast database still gets big batches.
"""

from __future__ import annotations

SLOW_BATCH = 0.8  # seconds: a batch whose write takes longer halves the batch size
MIN_BATCH = 1000


class BatchSizer:
    """The batch size now (``limit``), updated after each written batch."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self.limit = min(maximum, 5 * MIN_BATCH)  # small first: fills the pipeline sooner

    def observe(self, seconds: float, messages: int) -> None:
        """A batch of ``messages`` took ``seconds`` to write."""
        if seconds > SLOW_BATCH and self.limit > MIN_BATCH:
            self.limit = max(MIN_BATCH, self.limit // 2)
        elif seconds < SLOW_BATCH / 2 and messages >= self.limit:
            self.limit = min(self.maximum, self.limit * 2)
