"""The Redis key layout of the stream app (README: "Stream app and Redis key layout").

Everything lives under the namespace prefix ``{ns}:``; money is integer cents.
"""

from __future__ import annotations

from dataclasses import dataclass

from common.settings import Settings


@dataclass(frozen=True)
class RedisKeys:
    """Names of every key the stream app reads or writes."""

    namespace: str

    @classmethod
    def of(cls, settings: Settings) -> RedisKeys:
        return cls(settings.namespace)

    def _k(self, *parts: str) -> str:
        return ":".join((self.namespace, *parts))

    @property
    def watermark(self) -> str:
        """Hash: raw partition -> last applied raw offset (-1: none yet). A missing field
        means the partition's state is gone (Redis wiped): the worker restores it."""
        return self._k("wm")

    def state(self, partition: int) -> str:
        """Hash: transaction id -> current version (compact JSON), per raw partition."""
        return self._k("state", str(partition))

    @property
    def category_count(self) -> str:
        """Hash: category -> number of counted transactions."""
        return self._k("agg", "cat", "count")

    @property
    def category_cents(self) -> str:
        """Hash: category -> sum of counted amounts, integer cents."""
        return self._k("agg", "cat", "cents")

    @property
    def customer(self) -> str:
        """Sorted set: customer id -> sum of counted amounts in cents (score)."""
        return self._k("agg", "customer")

    @property
    def day(self) -> str:
        """Hash: transaction_date YYYY-MM-DD -> sum of counted amounts in cents."""
        return self._k("agg", "day")

    @property
    def stats(self) -> str:
        """Hash: accepted, duplicates, stale, invalid, entries, versions, messages."""
        return self._k("stats")

    @property
    def fresh(self) -> str:
        """Hash: raw partition -> epoch milliseconds of the last applied batch."""
        return self._k("fresh")

    def outbox(self, partition: int) -> str:
        """Set: last raw offsets of the batches applied but not yet known to be published."""
        return self._k("outbox", str(partition))

    def outbox_blob(self, partition: int, last_offset: int) -> str:
        """String: that batch's ledger/DLQ messages (length-prefixed frames)."""
        return self._k("outbox", str(partition), str(last_offset))

    def outbox_pending(self, partition: int, token: str) -> str:
        """String: a batch's messages written just before its apply (renamed by the apply)."""
        return self._k("outbox", str(partition), "pending", token)

    def staging(self, partition: int, token: str) -> str:
        """Hash: the state being rebuilt from the ledger, before one atomic swap."""
        return self._k("restore", str(partition), token)
