"""``txnpipe query categories|top-customers|monthly [--source S] [--limit N] [--as-of T]
[--json]``; ``--as-of`` answers as known at T from MySQL (CONTRACT §7, docs/as-of.md)."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from common.errors import ConfigError
from common.settings import Settings
from schemas.answers import QUESTIONS, Answer, CategoryRow, CustomerRow, MonthRow

HELP = "the three seed questions from live Redis aggregates (default) or MySQL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", choices=QUESTIONS)
    parser.add_argument(
        "--source", choices=("redis", "mysql"), default=None, help="default redis (--as-of: mysql)"
    )
    parser.add_argument("--limit", type=int, default=None, help="rows (top-customers: default 5)")
    parser.add_argument(
        "--as-of",
        metavar="T",
        default=None,
        help="answer as known at instant T (ISO-8601, UTC if no offset; MySQL only)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable rows (CONTRACT §6)")


def parse_instant(text: str, flag: str = "--as-of") -> datetime:
    """ISO-8601 date or date-time (``Z`` or an offset; none = UTC) → aware UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"{flag}={text!r} is not an ISO-8601 instant (e.g. 2026-11-05T00:00:00Z)"
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def fetch(
    settings: Settings, question: str, source: str, limit: int | None, at: datetime | None = None
) -> Answer:
    """Ask the store; the composition root is the only place that knows both stores."""
    if at is not None:
        from sinks.asof import answer as as_of_answer

        return as_of_answer(settings, question, at, limit)
    if source == "redis":
        from stream_app.lookups import answer as redis_answer

        return redis_answer(settings, question, limit)
    from sinks.lookups import answer as mysql_answer

    return mysql_answer(settings, question, limit)


def render(answer: Answer, at: datetime | None = None, implied: bool = False) -> str:
    """A small aligned table for people, with the answer's freshness underneath."""
    lines: list[str] = []
    for row in answer.rows:
        if isinstance(row, CategoryRow):
            amount = row.to_json()["total_amount"]
            lines.append(f"{row.product_category:<32} {row.total_transactions:>10} {amount:>16}")
        elif isinstance(row, CustomerRow):
            lines.append(f"{row.customer_id:<32} {row.to_json()['total_amount']:>16}")
        elif isinstance(row, MonthRow):
            lines.append(f"{row.month:<10} {row.to_json()['total_amount']:>16}")
    if not lines:
        lines.append("(no data)")
    if at is not None:
        why = " (--as-of reads MySQL: Redis holds only the present)" if implied else ""
        lines.append(
            f"-- source=mysql{why}; as of {at.isoformat().replace('+00:00', 'Z')}: per "
            "transaction its version with the greatest updated_at <= T"
        )
        return "\n".join(lines)
    fresh = answer.as_of.isoformat() if answer.as_of else "unknown"
    lines.append(f"-- source={answer.source} as_of={fresh}")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit is not None and args.limit < 1:
        sys.stderr.write("txnpipe query: --limit must be at least 1\n")
        return 2
    at: datetime | None = None
    if args.as_of is not None:
        if args.source == "redis":
            sys.stderr.write(
                "txnpipe query: --as-of needs --source mysql (Redis holds only the present)\n"
            )
            return 2
        at = parse_instant(args.as_of)
    answer = fetch(settings, args.question, args.source or "redis", args.limit, at)
    if args.json:
        print(json.dumps(answer.to_json()))
    else:
        print(render(answer, at, implied=args.source is None))
    return 0
