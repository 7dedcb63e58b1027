"""Redis as the state store and the aggregate cache, updated atomically per batch.

One Lua call per (batch, raw partition) compares-and-sets the partition's offset
watermark and, only if it still holds the value the batch was computed against, writes
the new states, the aggregate deltas, the counters and the outbox in one step. So a crash
at any moment, a redelivered batch, or two workers briefly owning the same partition
never count anything twice.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import redis

from common.settings import Settings
from schemas import Transaction
from stream_app.fold import Fold, decode_state, encode_state, pack_outbox
from stream_app.keys import RedisKeys

log = logging.getLogger(__name__)
_PACK = msgspec.msgpack.encode

APPLIED = 1
NO_WATERMARK = -1  # the partition has no state in Redis: restore it from the ledger
CONFLICT = -2  # another worker applied a batch meanwhile: re-read and recompute
OUTBOX_LOST = -4  # the outbox blob vanished between its SET and the apply: apply again
STAGING_LOST = -3  # the staging key vanished (Redis wiped during a restore): rebuild

# Shared by apply and restore: merge aggregate deltas, dropping members that reach zero.
_MERGE = """
local function merge(args, i, n_cat, n_cust, n_day)
  for _ = 1, n_cat do
    local name, count, cents = args[i], tonumber(args[i + 1]), args[i + 2]
    if redis.call('HINCRBY', KEYS[3], name, count) == 0 then
      redis.call('HDEL', KEYS[3], name)
      redis.call('HDEL', KEYS[4], name)
    else
      redis.call('HINCRBY', KEYS[4], name, cents)
    end
    i = i + 3
  end
  for _ = 1, n_cust do
    local score = redis.call('ZINCRBY', KEYS[5], args[i + 1], args[i])
    if tonumber(score) == 0 then redis.call('ZREM', KEYS[5], args[i]) end
    i = i + 2
  end
  for _ = 1, n_day do
    if redis.call('HINCRBY', KEYS[6], args[i], args[i + 1]) == 0 then
      redis.call('HDEL', KEYS[6], args[i])
    end
    i = i + 2
  end
  return i
end
"""

# KEYS: wm, state, cat_count, cat_cents, customer, day, stats, outbox index, fresh,
#       pending outbox blob, outbox blob
# ARGV: partition, expected_wm, last_offset, now_ms, has_outbox, then ONE msgpack array of
#       strings: n_state, n_cat, n_cust, n_day, 7 counters (accepted duplicates stale
#       invalid entries versions messages), state pairs, category triples, customer pairs,
#       day pairs. (One argument: redis-py packs each argument in Python, ~0.1 us apiece,
#       two or more per record; numbers as strings, as redis-py sends them: a Lua number
#       would reach HINCRBY as "7e+11".)
APPLY_LUA = (
    _MERGE
    + """
local wm = redis.call('HGET', KEYS[1], ARGV[1])
if (not wm) or wm ~= ARGV[2] then
  if ARGV[5] == '1' then redis.call('DEL', KEYS[10]) end
  if not wm then return -1 end
  return -2
end
local a = cmsgpack.unpack(ARGV[6])
local n_state, n_cat = tonumber(a[1]), tonumber(a[2])
local n_cust, n_day = tonumber(a[3]), tonumber(a[4])
local names = {'accepted', 'duplicates', 'stale', 'invalid', 'entries', 'versions', 'messages'}
for k = 1, 7 do
  local v = tonumber(a[4 + k])
  if v ~= 0 then redis.call('HINCRBY', KEYS[7], names[k], v) end
end
local i = 12
local last = 11 + 2 * n_state
while i <= last do  -- HSET many fields per call (unpack is bounded: chunks of 1000 pairs)
  local j = math.min(i + 1999, last)
  redis.call('HSET', KEYS[2], unpack(a, i, j))
  i = j + 1
end
merge(a, i, n_cat, n_cust, n_day)
if ARGV[5] == '1' then
  -- the blob was SET just before this call (same pipeline): moving it is O(1), copying
  -- tens of MB through a Lua argument is not
  if redis.call('EXISTS', KEYS[10]) == 0 then return -4 end
  redis.call('RENAME', KEYS[10], KEYS[11])
  redis.call('PERSIST', KEYS[11])
  redis.call('SADD', KEYS[8], ARGV[3])
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('HSET', KEYS[9], ARGV[1], ARGV[4])
return 1
"""
)

# KEYS: wm, state, cat_count, cat_cents, customer, day, stats, staging, fresh
# ARGV: partition, wm, now_ms, n_state, n_cat, n_cust, n_day, versions, entries, then deltas.
RESTORE_LUA = (
    _MERGE
    + """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  redis.call('DEL', KEYS[8])
  return 0
end
local n_state = tonumber(ARGV[4])
if n_state > 0 then
  if redis.call('HLEN', KEYS[8]) ~= n_state then
    redis.call('DEL', KEYS[8])
    return -3
  end
  redis.call('RENAME', KEYS[8], KEYS[2])
  redis.call('PERSIST', KEYS[2])
else
  redis.call('DEL', KEYS[2])
end
merge(ARGV, 10, tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]))
if ARGV[8] ~= '0' then
  redis.call('HINCRBY', KEYS[7], 'versions', ARGV[8])
  redis.call('HINCRBY', KEYS[7], 'accepted', ARGV[8])
end
if ARGV[9] ~= '0' then redis.call('HINCRBY', KEYS[7], 'entries', ARGV[9]) end
redis.call('HINCRBY', KEYS[7], 'restores', 1)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[9], ARGV[1], ARGV[3])
return 1
"""
)


@dataclass
class Restored:
    """A raw partition's state and aggregate sums rebuilt from its ledger partition."""

    partition: int
    watermark: int = -1
    states: dict[str, str] = field(default_factory=dict)  # txn id -> encoded state
    category: dict[str, list[int]] = field(default_factory=dict)
    customer: dict[str, int] = field(default_factory=dict)
    day: dict[str, int] = field(default_factory=dict)
    versions: int = 0
    entries: int = 0


def _deltas(
    category: Mapping[str, list[int]], customer: Mapping[str, int], day: Mapping[str, int]
) -> tuple[list[Any], int, int, int]:
    args: list[Any] = []
    n_cat = n_cust = n_day = 0
    for name, (count, cents) in category.items():
        if count or cents:
            args += (name, count, cents)
            n_cat += 1
    for cust, cents in customer.items():
        if cents:
            args += (cust, cents)
            n_cust += 1
    for d, cents in day.items():
        if cents:
            args += (d, cents)
            n_day += 1
    return args, n_cat, n_cust, n_day


class RedisStore:
    """The stream app's Redis: read state, apply a Fold atomically, restore a partition."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.keys = RedisKeys.of(settings)
        self.client: redis.Redis = client or redis.Redis.from_url(
            settings.redis_url, socket_timeout=30, socket_connect_timeout=5
        )
        self._apply = self.client.register_script(APPLY_LUA)
        self._restore = self.client.register_script(RESTORE_LUA)

    def close(self) -> None:
        self.client.close()

    def read(
        self, partition: int, ids: list[str]
    ) -> tuple[int | None, dict[str, Transaction | None]]:
        """The partition's watermark (None: missing) and the current versions of ``ids``."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hget(self.keys.watermark, str(partition))
        if ids:
            pipe.hmget(self.keys.state(partition), ids)
        replies = pipe.execute()
        wm = None if replies[0] is None else int(replies[0])
        current: dict[str, Transaction | None] = {}
        if ids:
            for txn_id, raw in zip(ids, replies[1], strict=True):
                current[txn_id] = None if raw is None else decode_state(txn_id, raw)
        return wm, current

    def watermark(self, partition: int) -> int | None:
        raw = self.client.hget(self.keys.watermark, str(partition))
        return None if raw is None else int(raw)

    def apply(self, fold: Fold, expected_wm: int, now_ms: int | None = None) -> int:
        """Apply ``fold`` iff the watermark is still ``expected_wm``.

        Returns APPLIED, NO_WATERMARK (restore first) or CONFLICT (re-read, recompute)."""
        p = fold.partition
        deltas, n_cat, n_cust, n_day = _deltas(fold.category, fold.customer, fold.day)
        has_outbox = bool(fold.out)
        packed: list[Any] = [
            len(fold.states), n_cat, n_cust, n_day, fold.accepted, fold.duplicates, fold.stale,
            fold.invalid, fold.entries, fold.accepted, fold.messages,
        ]  # fmt: skip
        packed = [str(n) for n in packed]
        for tid, txn in fold.states.items():
            packed += (tid, encode_state(txn))
        packed += [str(x) if type(x) is int else x for x in deltas]
        args: list[Any] = [
            p, expected_wm, fold.last_offset, now_ms if now_ms is not None else _now_ms(),
            1 if has_outbox else 0, _PACK(packed),
        ]  # fmt: skip
        k = self.keys
        token = uuid.uuid4().hex[:12]
        pending = k.outbox_pending(p, token)
        blob_key = k.outbox_blob(p, fold.last_offset)
        keys = [k.watermark, k.state(p), k.category_count, k.category_cents, k.customer, k.day,
                k.stats, k.outbox(p), k.fresh, pending, blob_key]  # fmt: skip
        if not has_outbox:
            return int(self._apply(keys=keys, args=args))
        pipe = self.client.pipeline(transaction=False)
        pipe.set(pending, pack_outbox(fold.out), ex=3600)  # expires if we die before the apply
        self._apply(keys=keys, args=args, client=pipe)
        return int(pipe.execute()[-1])

    def outbox(self, partition: int) -> list[tuple[int, bytes]]:
        """Leftover outbox blobs of ``partition`` (batches applied but maybe not published)."""
        members: set[bytes] = self.client.smembers(self.keys.outbox(partition))  # type: ignore[assignment]
        offsets = sorted(int(m) for m in members)
        if not offsets:
            return []
        blobs: list[bytes | None] = self.client.mget(  # type: ignore[assignment]
            [self.keys.outbox_blob(partition, o) for o in offsets]
        )
        return [(o, b) for o, b in zip(offsets, blobs, strict=True) if b is not None]

    def drop_outbox(self, partition: int, last_offsets: Iterable[int]) -> None:
        offsets = [str(o) for o in last_offsets]
        if offsets:
            pipe = self.client.pipeline(transaction=True)
            pipe.srem(self.keys.outbox(partition), *offsets)
            pipe.delete(*(self.keys.outbox_blob(partition, int(o)) for o in offsets))
            pipe.execute()

    def install(self, restored: Restored, chunk: int = 5000) -> int:
        """Swap a restored partition in with one atomic call.

        Returns 1 (done), 0 (another worker did it first) or STAGING_LOST (rebuild)."""
        p = restored.partition
        staging = self.keys.staging(p, uuid.uuid4().hex[:12])
        items = list(restored.states.items())
        for start in range(0, len(items), chunk):
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(staging, mapping=dict(items[start : start + chunk]))
            pipe.expire(staging, 3600)  # a crash mid-restore leaves no garbage behind for long
            pipe.execute()
        deltas, n_cat, n_cust, n_day = _deltas(restored.category, restored.customer, restored.day)
        args: list[Any] = [
            p, restored.watermark, _now_ms(), len(items), n_cat, n_cust, n_day,
            restored.versions, restored.entries, *deltas,
        ]  # fmt: skip
        k = self.keys
        keys = [k.watermark, k.state(p), k.category_count, k.category_cents, k.customer, k.day,
                k.stats, staging, k.fresh]  # fmt: skip
        return int(self._restore(keys=keys, args=args))


def _now_ms() -> int:
    return int(time.time() * 1000)
