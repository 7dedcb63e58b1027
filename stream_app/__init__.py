"""The stream stage: validate, dedup and version raw records into the ledger, with live
aggregates in Redis. ``lookups.answer`` is the public read side; ``app.run_worker`` the worker."""

from stream_app.keys import RedisKeys
from stream_app.topics import ensure_topics

__all__ = ["RedisKeys", "ensure_topics"]
