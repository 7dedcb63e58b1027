"""The stream's side of ``txnpipe reconcile``: its Redis aggregates and positions, read in one
MULTI/EXEC (a worker's Lua apply is wholly before or after it).

The answers (``stream_app.lookups``) read the same keys; this reads *all* of them, key by
key, for a comparison with MySQL rather than a top-N. Repairs go through
``stream_app.replay.rebuild_all`` (the restore from the ledger), never by writing sums here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from common.errors import ServiceUnavailableError
from common.settings import Settings, mask_url
from stream_app.keys import RedisKeys


@dataclass
class RedisView:
    """Aggregates (cents), watermarks and per-partition sizes of one namespace."""

    category: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (count, cents)
    customer: dict[str, int] = field(default_factory=dict)
    day: dict[str, int] = field(default_factory=dict)
    watermarks: dict[int, int] = field(default_factory=dict)  # raw partition -> last applied
    states: dict[int, int] = field(default_factory=dict)  # raw partition -> transactions held
    outbox: dict[int, int] = field(default_factory=dict)  # batches not yet known published


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def read_view(settings: Settings, partitions: int) -> RedisView:
    """Every aggregate key and position of the namespace, one consistent snapshot."""
    keys = RedisKeys.of(settings)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=60, socket_connect_timeout=5)
    try:
        pipe = client.pipeline(transaction=True)
        pipe.hgetall(keys.category_count)
        pipe.hgetall(keys.category_cents)
        pipe.zrange(keys.customer, 0, -1, withscores=True)
        pipe.hgetall(keys.day)
        pipe.hgetall(keys.watermark)
        for p in range(partitions):
            pipe.hlen(keys.state(p))
            pipe.scard(keys.outbox(p))
        replies = pipe.execute()
    except redis.exceptions.ConnectionError as exc:
        raise ServiceUnavailableError(
            f"Redis does not answer at url={mask_url(settings.redis_url)} ({exc})"
        ) from None
    finally:
        client.close()
    counts, cents, customers, days, wm = replies[:5]
    view = RedisView()
    for name in set(counts) | set(cents):
        view.category[_text(name)] = (int(counts.get(name, 0)), int(cents.get(name, 0)))
    view.customer = {_text(m): int(s) for m, s in customers}
    view.day = {_text(d): int(c) for d, c in days.items()}
    view.watermarks = {int(p): int(o) for p, o in wm.items()}
    sizes = replies[5:]
    for p in range(partitions):
        view.states[p] = int(sizes[2 * p])
        view.outbox[p] = int(sizes[2 * p + 1])
    return view


def positions(settings: Settings, partitions: int) -> tuple[dict[int, int], dict[int, int]]:
    """Only the watermarks and outbox sizes (cheap: read before and after a snapshot)."""
    keys = RedisKeys.of(settings)
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
    try:
        pipe = client.pipeline(transaction=True)
        pipe.hgetall(keys.watermark)
        for p in range(partitions):
            pipe.scard(keys.outbox(p))
        replies = pipe.execute()
    except redis.exceptions.ConnectionError as exc:
        raise ServiceUnavailableError(
            f"Redis does not answer at url={mask_url(settings.redis_url)} ({exc})"
        ) from None
    finally:
        client.close()
    wm = {int(p): int(o) for p, o in replies[0].items()}
    return wm, {p: int(n) for p, n in enumerate(replies[1:])}
