"""``txnpipe reconcile``: read every layer, compare (``txnpipe.reconcile``), and repair.

Reading: one API sweep first (the long part), then a *settled* snapshot of the rest: the
topics' ends, the stream's watermarks and the sink's offsets are read, and when nothing is
in flight MySQL (one consistent snapshot) and Redis (one MULTI) are read and the positions
checked again; unchanged positions mean both views describe the same instant. A pipeline
that never settles within ``settle`` seconds is compared as found (and says so).

Repair, through the pipeline's own paths and in this order: (1) transactions missing or
behind are re-published to the raw topic as the API serves them now (the stream's dedup
makes it idempotent); (2) when MySQL lacks versions the stream already has, the sink
replays the ledger (``txnpipe replay --target mysql``); (3) ledger/current disagreements
are rewritten by the sink from ``transaction_versions`` where the versions say what the
state must be (``sinks.repair``), reported otherwise; (4) once MySQL is right, Redis
aggregates that still differ are rebuilt by the restore from the ledger. Extra rows are
only reported: reconcile never deletes what the API does not know.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from common.kafka import committed_offsets, end_offsets, partition_counts
from common.settings import Settings
from producers.checkpoint import checkpoint_info
from producers.murmur2 import partition_for
from producers.publisher import parse_updated_at
from producers.sweep import Swept, republish, subset, sweep
from schemas.reconcile import Report
from sinks.audit import MySQLView
from sinks.audit import read_view as read_mysql
from sinks.replay import stored_offsets
from stream_app.audit import RedisView, positions
from stream_app.audit import read_view as read_redis
from txnpipe import reconcile as compare

Progress = Callable[[str], None]


@dataclass
class Snapshot:
    """Everything the comparisons read besides the API: one settled instant."""

    partitions: int
    mysql: MySQLView
    redis: RedisView
    raw_ends: dict[int, int]
    ledger_ends: dict[int, int]
    stream_next: dict[int, int]
    settled: bool
    polled_upto: datetime | None


def _quiet(text: str) -> None:
    del text


def snapshot(settings: Settings, settle: float, progress: Progress) -> Snapshot:
    """A settled, consistent read of Kafka positions, MySQL and Redis (see module doc)."""
    raw, ledger = settings.topic("transactions.raw"), settings.topic("transactions.ledger")
    partitions = partition_counts(settings.kafka_bootstrap, [raw]).get(raw, 0)
    deadline = time.monotonic() + settle
    said = False
    pause = 0.2
    group = f"{settings.namespace}-stream"
    while True:
        since = checkpoint_info(settings).get("updated_since")
        raw_ends = end_offsets(settings.kafka_bootstrap, raw)
        ledger_ends = end_offsets(settings.kafka_bootstrap, ledger)
        wm, outbox = positions(settings, partitions)
        committed = committed_offsets(settings.kafka_bootstrap, group, raw)
        stream_next = compare.stream_positions(wm, committed)
        offsets = stored_offsets(settings)
        quiet = compare.settled(raw_ends, ledger_ends, stream_next, offsets, outbox)
        last = time.monotonic() >= deadline
        if quiet or last:
            mysql = read_mysql(settings)
            redis = read_redis(settings, partitions)
            if last or (mysql.offsets == offsets and redis.watermarks == wm):
                polled = parse_updated_at(since) if since else None
                return Snapshot(
                    partitions, mysql, redis, raw_ends, ledger_ends, stream_next, quiet, polled
                )
        if not said:
            progress("waiting for the pipeline to settle (work in flight)")
            said = True
        time.sleep(pause)  # polling a condition with a deadline; each try opens clients
        pause = min(pause * 1.5, 2.0)


def compare_all(
    settings: Settings, swept: Swept, snap: Snapshot, since: datetime | None
) -> dict[str, compare.Found]:
    found = {
        "api_mysql": compare.api_mysql(
            swept.newest, snap.mysql, settings.counted, since, snap.polled_upto, swept.upto
        ),
        "ledger_mysql": compare.ledger_mysql(snap.mysql),
        "redis_mysql": compare.redis_mysql(snap.redis, snap.mysql, snap.partitions),
        "kafka_mysql": compare.kafka_mysql(
            snap.raw_ends, snap.ledger_ends, snap.stream_next, snap.mysql.offsets
        ),
    }
    if not snap.settled:
        for f in found.values():
            f.section.notes.append("the pipeline did not settle: compared while work was in flight")
    if not snap.mysql.tables:
        found["api_mysql"].section.notes.append("the sink has not created its tables yet")
    return found


def reconcile(
    settings: Settings,
    since: datetime | None,
    *,
    repair: bool = False,
    settle: float = 60.0,
    progress: Progress = _quiet,
) -> Report:
    started = time.monotonic()
    progress("sweeping the API")
    swept = sweep(settings, since, progress)
    progress(
        f"api: {swept.records:,} records, {len(swept.newest):,} transactions "
        f"in {swept.seconds:.1f}s; reading Kafka, MySQL and Redis"
    )
    t1 = time.monotonic()
    snap = snapshot(settings, settle, progress)
    t2 = time.monotonic()
    found = compare_all(settings, swept, snap, since)
    report = Report(settings.namespace, [f.section for f in found.values()])
    report.timings = {"api_sweep": swept.seconds, "snapshot": t2 - t1,
                      "compare": time.monotonic() - t2}  # fmt: skip
    if repair and not report.agree:
        t3 = time.monotonic()
        report.repairs = _repair(settings, swept, snap, found, since, settle, progress)
        report.timings["repair"] = time.monotonic() - t3
    report.seconds = time.monotonic() - started
    return report


def _repair(
    settings: Settings,
    swept: Swept,
    snap: Snapshot,
    found: dict[str, compare.Found],
    since: datetime | None,
    settle: float,
    progress: Progress,
) -> dict[str, Any]:
    from sinks.repair import repair_from_versions
    from stream_app.current import current_updated_at
    from stream_app.replay import rebuild_all
    from txnpipe.commands.replay import replay_mysql

    done: dict[str, Any] = {}
    api_ids = found["api_mysql"].ids
    lacking = sorted(set(api_ids.get("missing", [])) | set(api_ids.get("behind", [])))
    if lacking:
        progress(f"repair: re-publishing {len(lacking):,} transactions to the raw topic")
        done["republished"] = republish(settings, subset(swept, lacking))
        by_partition: dict[int, list[str]] = {}
        for tid in lacking:
            by_partition.setdefault(partition_for(tid.encode(), snap.partitions), []).append(tid)
        streamed = current_updated_at(settings, by_partition)
        lost = {p for p in by_partition if p not in snap.redis.watermarks}  # restored from it
        known = [
            t
            for t in lacking
            if partition_for(t.encode(), snap.partitions) in lost
            or (t in streamed and streamed[t] >= swept.newest[t].updated_at)
        ]
        if known:  # the stream has these versions already: the sink must read the ledger again
            progress(f"repair: {len(known):,} versions are in the ledger but not in MySQL: "
                     "the sink replays the ledger")  # fmt: skip
            replay_mysql(settings, None)
            done["sink_replayed"] = True
    if any(found[name].section.differences for name in ("api_mysql", "ledger_mysql")):
        progress("repair: re-reading MySQL after the pipeline settles")
        snap = snapshot(settings, settle, progress)
        mismatched = compare.ledger_mysql(snap.mysql).ids.get("mismatch", [])
        fixed, broken = repair_from_versions(settings, mismatched)
        done["rewritten_from_versions"] = len(fixed)
        if broken:
            done["not_repairable"] = {"count": len(broken), "examples": broken[:20]}
    extra = api_ids.get("extra", [])
    if extra:
        done["extra_reported_only"] = len(extra)
    lost_topics = found["kafka_mysql"].section.differences
    if lost_topics:  # positions held for emptied partitions: an operator's decision
        done["kafka_reported_only"] = lost_topics
    snap = snapshot(settings, settle, progress)
    if compare.redis_mysql(snap.redis, snap.mysql, snap.partitions).section.differences:
        progress("repair: rebuilding the Redis aggregates from the ledger (restore)")
        done["redis_rebuilt_partitions"] = rebuild_all(settings)
    return done
