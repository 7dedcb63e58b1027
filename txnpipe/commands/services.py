"""``txnpipe services up|down|status``: the local broker, and a check of MySQL and Redis."""

from __future__ import annotations

import argparse

from common.services import (
    MYSQL_HINT,
    REDIS_HINT,
    answers,
    bootstrap_endpoint,
    broker_pid,
    ensure_broker,
    mysql_answers,
    redis_answers,
    redis_endpoint,
    stop_broker,
)
from common.settings import Settings

HELP = "start, stop or check the local broker, MySQL and Redis"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("up", "down", "status"))


def _report(settings: Settings) -> int:
    broker = bootstrap_endpoint(settings.kafka_bootstrap)
    pid = broker_pid(settings)
    missing = 0
    if answers(broker):
        owner = f"bundled broker pid {pid}" if pid else "not started by txnpipe"
        print(f"kafka  {broker}  answers ({owner})")
    else:
        missing += 1
        print(f"kafka  {broker}  not answering (`txnpipe services up` starts the bundled broker)")
    mysql = f"{settings.mysql_host}:{settings.mysql_port}"
    if mysql_answers(settings):
        print(f"mysql  {mysql}  answers")
    else:
        missing += 1
        print(f"mysql  {mysql}  not answering; {MYSQL_HINT}")
    redis = redis_endpoint(settings.redis_url)
    if redis_answers(settings):
        print(f"redis  {redis}  answers")
    else:
        missing += 1
        print(f"redis  {redis}  not answering; {REDIS_HINT}")
    return 1 if missing else 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "up":
        ensure_broker(settings)
        return _report(settings)
    if args.action == "down":
        pid = stop_broker(settings)
        print(f"stopped the bundled broker pid {pid}" if pid else "nothing of ours was running")
        return 0
    return _report(settings)
