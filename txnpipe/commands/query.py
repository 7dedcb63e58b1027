"""``txnpipe query categories|top-customers|monthly [--source S] [--limit N] [--json]``."""

from __future__ import annotations

import argparse
import json
import sys

from common.settings import Settings
from schemas.answers import QUESTIONS, Answer, CategoryRow, CustomerRow, MonthRow

HELP = "the three seed questions from live Redis aggregates (default) or MySQL"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("question", choices=QUESTIONS)
    parser.add_argument("--source", choices=("redis", "mysql"), default="redis")
    parser.add_argument("--limit", type=int, default=None, help="rows (top-customers: default 5)")
    parser.add_argument("--json", action="store_true", help="machine-readable rows (CONTRACT §6)")


def fetch(settings: Settings, question: str, source: str, limit: int | None) -> Answer:
    """Ask the store; the composition root is the only place that knows both stores."""
    if source == "redis":
        from stream_app.lookups import answer as redis_answer

        return redis_answer(settings, question, limit)
    from sinks.lookups import answer as mysql_answer

    return mysql_answer(settings, question, limit)


def render(answer: Answer) -> str:
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
    fresh = answer.as_of.isoformat() if answer.as_of else "unknown"
    lines.append(f"-- source={answer.source} as_of={fresh}")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.limit is not None and args.limit < 1:
        sys.stderr.write("txnpipe query: --limit must be at least 1\n")
        return 2
    answer = fetch(settings, args.question, args.source, args.limit)
    if args.json:
        print(json.dumps(answer.to_json()))
    else:
        print(render(answer))
    return 0
