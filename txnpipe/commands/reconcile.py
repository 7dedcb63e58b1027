"""``txnpipe reconcile [--since T] [--json] [--repair]``: prove the API, Kafka, MySQL and Redis
agree, or say exactly where they differ (``txnpipe.reconciler``; docs/reconcile.md).

Exit 0 when everything agrees (work in flight allowed), 1 when something differs, 2 on
usage. With ``--repair``: 0 when every difference was repaired or handed to the pipeline,
1 when something could only be reported (extra rows, a broken chain of versions, a position
held for an emptied topic partition).
"""

from __future__ import annotations

import argparse
import json
import sys

from common.settings import Settings
from schemas.reconcile import Report, Section
from txnpipe.commands.replay import parse_time

HELP = "compare the API, Kafka, MySQL and Redis; --repair fixes through the pipeline"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="T", help="sweep the API from T (default: the start)")
    parser.add_argument("--json", action="store_true", help="one JSON object, a section each")
    parser.add_argument("--repair", action="store_true", help="repair what differs")


def _line(section: Section) -> str:
    head = f"{section.name:<13} "
    flight = f", {section.in_flight:,} in flight" if section.in_flight else ""
    if not section.differences:
        return head + f"agree ({section.checked:,} checked{flight})"
    kinds = " ".join(f"{k}={n:,}" for k, n in sorted(section.counts.items()))
    lines = [head + f"DIFFER: {kinds} ({section.checked:,} checked{flight})"]
    for month, counts in sorted(section.by_month.items()):
        lines.append(f"  {month}: " + " ".join(f"{k}={n:,}" for k, n in sorted(counts.items())))
    for kind, ids in sorted(section.examples.items()):
        lines.append(f"  e.g. {kind}: " + ", ".join(sorted(ids)))
    lines += [f"  note: {n}" for n in section.notes]
    return "\n".join(lines)


def render(report: Report) -> str:
    verdict = "everything agrees" if report.agree else "DIFFERENCES FOUND"
    lines = [f"reconcile {report.namespace}: {verdict} in {report.seconds:.1f}s"]
    lines += [_line(s) for s in report.sections]
    for action, value in report.repairs.items():
        lines.append(f"repair: {action} = {value}")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    since = parse_time(args.since, "--since") if args.since else None
    from txnpipe.reconciler import reconcile

    def progress(text: str) -> None:
        print(f"reconcile: {text}", file=sys.stderr, flush=True)

    report = reconcile(settings, since, repair=args.repair, progress=progress)
    print(json.dumps(report.to_json(), indent=2) if args.json else render(report))
    if report.agree:
        return 0
    if args.repair:
        left = [k for k in report.repairs if k == "not_repairable" or k.endswith("_reported_only")]
        return 1 if left else 0
    return 1
