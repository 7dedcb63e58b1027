"""``txnpipe replay --target redis``: rebuild the namespace's state and aggregates from the
ledger topic, with the counted statuses in force now.

The wipe is one MULTI/EXEC (a worker's Lua apply runs wholly before or after it); each
partition is then rebuilt from its ledger partition and swapped in atomically. A worker that
meets a wiped partition restores it too: the first swap wins, the other is dropped, and
both compute the same thing (the last version of each transaction under the counted
statuses in force).
"""

from __future__ import annotations

import logging

import redis

from common.kafka import partition_counts
from common.settings import Settings
from stream_app.keys import RedisKeys
from stream_app.restore import restore_partition
from stream_app.store import STAGING_LOST, RedisStore

log = logging.getLogger(__name__)


def wipe(settings: Settings, partitions: int) -> None:
    """Delete state, watermarks, aggregates and freshness at once; keep the outboxes."""
    keys = RedisKeys.of(settings)
    client = redis.Redis.from_url(settings.redis_url)
    try:
        pipe = client.pipeline(transaction=True)
        pipe.delete(
            keys.watermark,
            keys.category_count,
            keys.category_cents,
            keys.customer,
            keys.day,
            keys.fresh,
            *(keys.state(p) for p in range(partitions)),
        )
        # the rebuild counts these again; duplicates, stale, invalid are not in the ledger: kept
        pipe.hdel(keys.stats, "accepted", "versions", "entries")
        pipe.execute()
    finally:
        client.close()


def rebuild_all(settings: Settings) -> int:
    """Wipe and rebuild every raw partition from the ledger; return the partition count."""
    raw = settings.topic("transactions.raw")
    partitions = partition_counts(settings.kafka_bootstrap, [raw]).get(raw, 0)
    if not partitions:
        return 0
    wipe(settings, partitions)
    store = RedisStore(settings)
    try:
        for partition in range(partitions):
            for _attempt in range(5):
                restored = restore_partition(settings, partition, settings.counted)
                outcome = store.install(restored)
                if outcome != STAGING_LOST:  # 1: ours, 0: a worker rebuilt it first
                    break
            log.info("replay: partition=%d rebuilt (install=%d)", partition, outcome)
    finally:
        store.close()
    return partitions
