"""The poller's durable position: Redis key ``{ns}:poller:checkpoint``.

The value is JSON ``{"updated_since": ISO-8601, "api_url": ..., "saved_at": ...,
"records_published": N}`` (N over all runs, re-reads included). It is written only with
a value the broker has acknowledged everything up to (``RawPublisher.acked``), so a
poller killed at any instant resumes from a point at or before what is safely in Kafka;
the inclusive ``updated_since`` re-reads the boundary, and the repeats are dropped
downstream.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from common.errors import ServiceUnavailableError
from common.settings import Settings, mask_url

log = logging.getLogger(__name__)


class CheckpointStore:
    """Load and save the poller checkpoint in Redis."""

    def __init__(self, settings: Settings) -> None:
        import redis

        self.key = settings.redis_key("poller", "checkpoint")
        self._api_url = mask_url(settings.api_url)
        self._where = mask_url(settings.redis_url)
        self._client: Any = redis.Redis.from_url(
            settings.redis_url, socket_timeout=5, socket_connect_timeout=5
        )
        self._published_before = 0  # by earlier runs, from the checkpoint we resumed at

    def load(self) -> str | None:
        """The saved ``updated_since``, or None when the poller never checkpointed."""
        try:
            raw = self._client.get(self.key)
        except Exception as exc:
            raise ServiceUnavailableError(
                f"cannot read the poller checkpoint from Redis at {self._where}: {exc}"
            ) from None
        if raw is None:
            return None
        try:
            doc = json.loads(raw)
            since = doc["updated_since"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable checkpoint at key %s", self.key)
            return None
        published = doc.get("records_published")
        self._published_before = published if isinstance(published, int) else 0
        if doc.get("api_url") not in (None, self._api_url):
            log.warning(
                "checkpoint %s was written for another API (%s); resuming from it anyway",
                self.key,
                doc.get("api_url"),
            )
        return str(since) if since else None

    def save(self, updated_since: str, records_published: int) -> None:
        """``records_published``: by this run; the saved count adds the earlier runs'."""
        doc = {
            "updated_since": updated_since,
            "api_url": self._api_url,
            "saved_at": datetime.now(UTC).isoformat(),
            "records_published": self._published_before + records_published,
        }
        try:
            self._client.set(self.key, json.dumps(doc))
        except Exception as exc:
            raise ServiceUnavailableError(
                f"cannot save the poller checkpoint to Redis at {self._where}: {exc}"
            ) from None

    def close(self) -> None:
        self._client.close()


def checkpoint_info(settings: Settings) -> dict[str, Any]:
    """The saved poll position for ``txnpipe status``: ``updated_since`` (None if never
    polled), ``saved_at``, ``records_published`` (all runs; a record polled twice counts
    twice), ``api_url``."""
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
    try:
        raw = client.get(settings.redis_key("poller", "checkpoint"))
    finally:
        client.close()
    info: dict[str, Any] = {"updated_since": None}
    if raw is not None:
        try:
            doc = json.loads(raw)
        except ValueError:
            return {"updated_since": None, "error": "unreadable checkpoint"}
        if isinstance(doc, dict):
            for key in ("updated_since", "saved_at", "records_published", "api_url"):
                if key in doc:
                    info[key] = doc[key]
    return info
