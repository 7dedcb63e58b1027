"""``txnpipe replay``: reprocess the topics to rebuild the Redis aggregates and/or the MySQL
tables, idempotently and safely while the pipeline runs.

- ``--target redis``: the namespace's stream state and aggregates are rebuilt from the ledger
  topic (the stream app's changelog), one raw partition at a time, each swapped in with one
  atomic call. A running worker that touches a partition meanwhile finds it missing, waits
  for the rebuilt one (or rebuilds it itself: the first swap wins, the other is dropped).
  The counted statuses in force now (``TXNPIPE_COUNTED_STATUSES``) decide every
  transaction's contribution, so a change of that rule takes effect through this replay.
- ``--target mysql``: the sink's stored offsets move back to the start (or to the first
  ledger record at ``--from-time``) in one MySQL transaction; a running sink is fenced by
  its next batch and re-seeks; this command then drains the ledger itself. Every row is
  written with unique keys (entry id, transaction + version) and the current-state table
  only moves forward in ``updated_at``, so rewriting a range changes nothing that was right.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import UTC, datetime

from common.errors import ConfigError
from common.kafka import end_offsets, offsets_for_time
from common.settings import Settings

HELP = "reprocess the topics (from the beginning or a time) to rebuild aggregates and tables"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    start = parser.add_mutually_exclusive_group(required=True)
    start.add_argument("--from-beginning", action="store_true", help="replay every record")
    start.add_argument("--from-time", metavar="T", help="ISO-8601 time (UTC if no offset)")
    parser.add_argument("--target", choices=("redis", "mysql", "all"), default="all")


def parse_time(text: str, flag: str = "--from-time") -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{flag}={text!r} is not an ISO-8601 time (e.g. 2026-11-01T00:00:00Z)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def replay_redis(settings: Settings) -> int:
    """Rebuild every raw partition's state and aggregates from the ledger; return partitions."""
    from stream_app.replay import rebuild_all

    return rebuild_all(settings)


def replay_mysql(settings: Settings, since: datetime | None) -> dict[int, int]:
    """Move the sink back to ``since`` (None: the beginning) and drain the ledger again."""
    from sinks.replay import drain, rewind

    ledger = settings.topic("transactions.ledger")
    if since is None:
        targets = {p: 0 for p in end_offsets(settings.kafka_bootstrap, ledger)}
    else:
        targets = offsets_for_time(settings.kafka_bootstrap, ledger, int(since.timestamp() * 1000))
    ends = end_offsets(settings.kafka_bootstrap, ledger)
    rewind(settings, targets)
    drain(settings, until=ends)
    return targets


def run(args: argparse.Namespace, settings: Settings) -> int:
    since = None if args.from_beginning else parse_time(args.from_time)
    started = time.monotonic()
    if args.target in ("redis", "all"):
        # Redis holds running totals: they are rebuilt from the whole ledger whatever the start.
        count = replay_redis(settings)
        print(
            f"replay: redis rebuilt from the ledger ({count} partitions) "
            f"in {time.monotonic() - started:.1f}s",
            file=sys.stderr,
        )
    if args.target in ("mysql", "all"):
        t0 = time.monotonic()
        targets = replay_mysql(settings, since)
        where = "the beginning" if since is None else since.isoformat()
        print(
            f"replay: mysql re-applied the ledger from {where} (offsets {targets}) in "
            f"{time.monotonic() - t0:.1f}s",
            file=sys.stderr,
        )
    return 0
