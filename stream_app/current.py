"""What the stream app holds now, for ``txnpipe dlq``: current versions and records read.

A redrive's report says, for each record, what the stream will do with it (a new version,
a duplicate, stale: older than the current version); it is decided against the same Redis
state the stream decides against. Reads only; nothing here changes state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

import redis

from common.errors import ServiceUnavailableError
from common.settings import Settings, mask_url
from stream_app.fold import decode_state
from stream_app.keys import RedisKeys


def _client(settings: Settings) -> redis.Redis:
    return redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=3)


def current_updated_at(
    settings: Settings, ids_by_partition: Mapping[int, Collection[str]]
) -> dict[str, datetime]:
    """``updated_at`` of the current version of each id that has one (by raw partition)."""
    keys = RedisKeys.of(settings)
    client = _client(settings)
    try:
        pipe = client.pipeline(transaction=False)
        asked = [(p, list(ids)) for p, ids in ids_by_partition.items() if ids]
        for p, ids in asked:
            pipe.hmget(keys.state(p), ids)
        out: dict[str, datetime] = {}
        for (_, ids), values in zip(asked, pipe.execute(), strict=True):
            for tid, raw in zip(ids, values, strict=True):
                if raw is not None:
                    out[tid] = decode_state(tid, raw).updated_at
        return out
    except redis.exceptions.ConnectionError as exc:
        raise ServiceUnavailableError(
            f"Redis does not answer at url={mask_url(settings.redis_url)} ({exc})"
        ) from None
    finally:
        client.close()


def records_read(settings: Settings) -> int | None:
    """Records the stream has decided so far (accepted, duplicates, stale, invalid)."""
    client = _client(settings)
    try:
        stats = client.hgetall(RedisKeys.of(settings).stats)
    except redis.exceptions.ConnectionError:
        return None
    finally:
        client.close()
    if not stats:
        return None
    names = (b"accepted", b"duplicates", b"stale", b"invalid")
    return sum(int(stats.get(n, 0)) for n in names)
