"""``txnpipe restatements [--months N] [--close-day D] [--json]``: per closed month, the amount
as it stood at its close, now, the difference, and the transactions that moved it
(docs/as-of.md). The close of month M is day D of the following month, 00:00 UTC.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from common.settings import Settings

HELP = "how much each closed month moved since its close, and which transactions moved it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--months", type=int, default=3, metavar="N", help="closed months to show (default 3)"
    )
    parser.add_argument(
        "--close-day",
        type=int,
        default=5,
        metavar="D",
        help="month M closes on day D of M+1, 00:00 UTC (1-28, default 5)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def render(months: list[dict[str, Any]]) -> str:
    """Per month a line of figures, then its largest movers and what changed in them."""
    lines: list[str] = []
    for m in months:
        lines.append(
            f"{m['month']}  closed {m['closed_at']}  at close {m['amount_at_close']}  "
            f"now {m['amount_now']}  difference {m['difference']}  "
            f"moved by {m['transactions_moved']} transactions"
        )
        for t in m["top"]:
            lines.append(
                f"  {t['transaction_id']:<18} {t['change']:>12}  ({t['at_close']} → {t['now']})"
            )
            for i, v in enumerate(t["versions"]):
                if v["known_at_close"]:
                    what = "known at close"
                elif v["changed"]:
                    what = ", ".join(f"{f} → {v[f]}" for f in v["changed"])
                else:
                    what = "first version" if i == 0 else "no field changed"
                lines.append(f"    {v['updated_at']}  {what}")
    if not lines:
        lines.append("(no closed month)")
    lines.append("-- source=mysql; amounts as known at each close (updated_at <= close) and now")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.months <= 120:
        sys.stderr.write("txnpipe restatements: --months must be between 1 and 120\n")
        return 2
    if not 1 <= args.close_day <= 28:
        sys.stderr.write("txnpipe restatements: --close-day must be between 1 and 28\n")
        return 2
    from sinks.asof import restate

    now = datetime.now(UTC)
    months = [m.to_json() for m in restate(settings, args.months, args.close_day, now)]
    if args.json:
        doc = {"now": now.isoformat().replace("+00:00", "Z"), "close_day": args.close_day}
        print(json.dumps({**doc, "months": months}))
    else:
        print(render(months))
    return 0
