"""``txnpipe status [--json]``: lag, throughput, dead letters, poll position, freshness and
MySQL partitions per stage. Exit 1 when something is unhealthy, so it serves as a health check."""

from __future__ import annotations

import argparse
import json

from common.settings import Settings
from txnpipe.observe import Snapshot, snapshot

HELP = "lag of each stage, dead letters, last poll position, freshness"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable report")
    parser.add_argument(
        "--max-lag", type=int, default=None, help="unhealthy when a stage lags more than N records"
    )


def render(snap: Snapshot) -> str:
    lines = [f"txnpipe status at {snap.taken_at}: {'healthy' if snap.healthy else 'UNHEALTHY'}"]
    for stage in snap.stages:
        lag = "?" if stage.lag is None else str(stage.lag)
        rate = "?" if stage.per_minute is None else str(stage.per_minute)
        lines.append(
            f"  {stage.name:<8} lag={lag:<8} last_minute={rate:<8} "
            + (stage.error or " ".join(f"{k}={v}" for k, v in stage.detail.items()))
        )
    reasons = ", ".join(f"{r}={c}" for r, c in snap.dead_letter_reasons) or "-"
    dead = "?" if snap.dead_letters is None else str(snap.dead_letters)
    lines.append(f"  dead letters: {dead} (top reasons: {reasons})")
    lines.append(
        f"  freshness: redis as of {snap.redis_as_of or '-'}, mysql as of {snap.mysql_as_of or '-'}"
    )
    if snap.partitions:
        parts = ", ".join(f"{p['name']}={p['rows']}" for p in snap.partitions if p.get("rows"))
        lines.append(f"  mysql ledger partitions with rows: {parts or '-'}")
        lines.append(f"  rows in the catch-all partition: {snap.catch_all_rows}")
    for problem in snap.problems:
        lines.append(f"  problem: {problem}")
    return "\n".join(lines)


def run(args: argparse.Namespace, settings: Settings) -> int:
    snap = snapshot(settings)
    if args.max_lag is not None:
        for stage in snap.stages:
            if stage.lag is not None and stage.lag > args.max_lag:
                snap.problems.append(f"{stage.name}: lag {stage.lag} > {args.max_lag}")
    print(json.dumps(snap.to_json(), indent=2) if args.json else render(snap))
    return 0 if snap.healthy else 1
