"""``txnpipe dlq stats|list|show|export|redrive``: dead-letter triage and redrive.

Every subcommand reads the dead-letter index the sink keeps in MySQL (``dead_letters``),
never the whole DLQ topic; ``redrive`` publishes to the raw topic and journals what it
published (exactly once in effect, see ``txnpipe.redrive``). docs/dead-letters.md has the
design and an example of each.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

from common.errors import ConfigError
from common.settings import Settings

HELP = "dead letters: stats, list, show, export, and redrive exactly once in effect"
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``--since``: ISO-8601 (UTC when it has no offset) or an age such as 90m, 6h, 2d."""
    now = now or datetime.now(UTC)
    relative = _RELATIVE.match(text.strip().lower())
    if relative:
        return now - timedelta(**{_UNITS[relative[2]]: int(relative[1])})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"--since={text!r}: expected an ISO-8601 time (2026-11-30T08:00:00Z) or an age "
            "(90m, 6h, 2d)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _connection_flags(parser: argparse.ArgumentParser) -> None:
    """The global flags again after the subcommand (``dlq stats --namespace x``); SUPPRESS
    keeps a value given before it."""
    from txnpipe.cli import SETTING_FLAGS

    group = parser.add_argument_group("connection (override TXNPIPE_* env vars)")
    for flag, field in SETTING_FLAGS.items():
        group.add_argument(
            flag, dest=f"setting_{field}", default=argparse.SUPPRESS, metavar=field.upper()
        )
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dlq_command", metavar="SUBCOMMAND", parser_class=type(parser))
    sub.required = True

    stats = sub.add_parser("stats", help="counts by reason and stage, per hour, marked when new")
    stats.add_argument("--since", metavar="T", help="ISO-8601 time or an age (6h, 2d)")
    stats.add_argument("--json", action="store_true")

    listing = sub.add_parser("list", help="one line per dead letter, newest first")
    listing.add_argument("--reason", metavar="R")
    listing.add_argument("--since", metavar="T")
    listing.add_argument("--transaction-id", metavar="ID")
    listing.add_argument("--limit", type=int, default=50, metavar="N", help="default 50")
    listing.add_argument("--json", action="store_true")

    show = sub.add_parser("show", help="the whole envelope and record of a dead letter")
    show.add_argument("offset", nargs="?", metavar="OFFSET", help="PARTITION:OFFSET in the DLQ")
    show.add_argument("--transaction-id", metavar="ID", help="every dead letter of a transaction")
    show.add_argument("--json", action="store_true")

    export = sub.add_parser("export", help="raw records, one per line, exactly as received")
    export.add_argument("--reason", metavar="R", required=True)
    export.add_argument("--since", metavar="T")
    export.add_argument("--out", metavar="FILE.jsonl", required=True, type=Path)

    redrive = sub.add_parser("redrive", help="put records back on the raw topic, exactly once")
    redrive.add_argument("--reason", metavar="R")
    redrive.add_argument("--since", metavar="T")
    redrive.add_argument(
        "--from-file", metavar="FILE.jsonl", type=Path, help="corrected copies (from `export`)"
    )
    redrive.add_argument("--dry-run", action="store_true", help="decide and report; write nothing")
    redrive.add_argument(
        "--again", action="store_true", help="also what was redriven before (after a rule change)"
    )
    redrive.add_argument("--json", action="store_true")
    for p in (stats, listing, show, export, redrive):
        _connection_flags(p)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from sinks.dead_letter_queries import DeadLetterIndex

    since = parse_since(args.since) if getattr(args, "since", None) else None
    _check_usage(args, since)  # usage errors (exit 2) before any connection
    index = DeadLetterIndex(settings)
    try:
        handler = {
            "stats": _stats,
            "list": _list,
            "show": _show,
            "export": _export,
            "redrive": _redrive,
        }[args.dlq_command]
        return handler(args, settings, index, since)
    except BrokenPipeError:  # `dlq list | head`: the reader has gone; not a failure
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    finally:
        index.close()


def _check_usage(args: argparse.Namespace, since: datetime | None) -> None:
    from txnpipe.redrive import parse_position

    command = args.dlq_command
    if command == "list" and args.limit < 1:
        raise ConfigError("--limit must be at least 1")
    if command == "show":
        if (args.offset is None) == (args.transaction_id is None):
            raise ConfigError("give a dead letter's PARTITION:OFFSET or --transaction-id, not both")
        if args.offset is not None:
            parse_position(args.offset)
    if command == "redrive" and args.from_file is not None and (args.reason or since):
        raise ConfigError("--from-file redrives the file's records: no --reason or --since")


def _emit(doc: Any) -> None:
    print(json.dumps(doc, indent=2, ensure_ascii=True))


def _stats(args: argparse.Namespace, settings: Settings, index: Any, since: datetime | None) -> int:
    from stream_app.current import records_read
    from txnpipe.dlq_view import build_stats, moment, render_stats

    now = datetime.now(UTC)
    records = records_read(settings)
    stats = build_stats(
        index.reasons(since),
        index.hourly(now),
        index.first_seen(),
        index.oldest(),
        now,
        records,
        index.redriven(),
    )
    behind = index.behind()
    if args.json:
        _emit(
            {
                "as_of": moment(now.replace(tzinfo=None)),
                "since": None if since is None else moment(since.astimezone(UTC)),
                "topic": index.topic,
                "index_behind": behind,
                "records_read": records,
                "total": sum(s.count for s in stats),
                "came_back_after_redrive": sum(s.back for s in stats),
                "reasons": [s.to_json() for s in stats],
            }
        )
    else:
        print(render_stats(stats, records=records, behind=behind, topic=index.topic,
                           since=since, now=now))  # fmt: skip
    return 0


def _list(args: argparse.Namespace, settings: Settings, index: Any, since: datetime | None) -> int:
    from txnpipe.dlq_view import letter_json, list_line

    letters = index.letters(
        reason=args.reason, since=since, transaction_id=args.transaction_id, limit=args.limit
    )
    if args.json:
        _emit([letter_json(letter, preview=100) for letter in letters])
    else:
        for letter in letters:
            print(list_line(letter))
        if not letters:
            print("no dead letters match", file=sys.stderr)
    return 0


def _show(args: argparse.Namespace, settings: Settings, index: Any, since: datetime | None) -> int:
    from txnpipe.dlq_view import letter_json, render_letter
    from txnpipe.redrive import parse_position

    if args.offset is not None:
        partition, offset = parse_position(args.offset)
        letters = index.letter(partition, offset)
        if partition is None and len(letters) > 1:
            names = ", ".join(f"{x.partition}:{x.offset}" for x in letters)
            raise ConfigError(f"offset {offset} is in several DLQ partitions ({names}): use P:O")
        what = args.offset
    else:
        letters = index.by_transaction(args.transaction_id)
        what = f"transaction_id={args.transaction_id}"
    if not letters:
        print(f"txnpipe dlq show: no dead letter at {what}", file=sys.stderr)
        return 1
    if args.json:
        docs = [letter_json(x) for x in letters]
        _emit(docs[0] if args.offset is not None else docs)
    else:
        print("\n\n".join(render_letter(x, index.topic) for x in letters))
    return 0


def _export(
    args: argparse.Namespace, settings: Settings, index: Any, since: datetime | None
) -> int:
    from txnpipe.export import export

    result = export(index, settings.topic("transactions.raw"), args.reason, since, args.out)
    print(result.summary(), file=sys.stderr)
    return 0


def _redrive(
    args: argparse.Namespace, settings: Settings, index: Any, since: datetime | None
) -> int:
    from txnpipe.dlq_view import render_report
    from txnpipe.redrive import Redriver, RedriveReport, from_file, from_index

    stopping: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    redriver = Redriver(settings, index, dry_run=args.dry_run, again=args.again)
    report = redriver.report
    if args.from_file is not None:
        candidates: Any = from_file(index, args.from_file)
    else:
        candidates = from_index(
            index, redriver.raw_topic, reason=args.reason, since=since, report=report
        )

    def progress(r: RedriveReport) -> None:
        verb = "decided" if r.dry_run else "published"
        print(f"redrive: {r.selected:,} dead letters read, {r.published:,} records {verb}, "
              f"{r.already:,} redriven before", file=sys.stderr)  # fmt: skip

    try:
        redriver.run(candidates, progress=progress, stop=lambda: bool(stopping))
    finally:
        redriver.publisher.close()
    if args.json:
        _emit(report.to_json() | {"stopped": bool(stopping)})
    else:
        print(render_report(report, stopped=bool(stopping)))
    return 130 if stopping else 0
