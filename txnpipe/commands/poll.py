"""``txnpipe poll [--once] [--interval S] ...``: the poller, API into the raw topic."""

from __future__ import annotations

import argparse
import signal
import threading
from types import FrameType

from common.errors import ConfigError
from common.settings import Settings
from txnpipe import metrics

HELP = "poll the transactions API into the raw topic"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--once", action="store_true", help="drain the API to caught-up, exit 0")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between sweeps once caught up (5)"
    )
    parser.add_argument(
        "--max-retry-time",
        type=float,
        default=300.0,
        help="give up on a page the API keeps failing for this many seconds (300)",
    )
    parser.add_argument("--page-size", type=int, default=1000, help="records per request, 1..1000")
    parser.add_argument(
        "--request-timeout", type=float, default=30.0, help="seconds to wait for one response (30)"
    )
    metrics.add_arguments(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if not 1 <= args.page_size <= 1000:
        raise ConfigError("--page-size must be in 1..1000")
    if args.interval < 0 or args.max_retry_time < 0 or args.request_timeout <= 0:
        raise ConfigError("--interval and --max-retry-time must be >= 0, --request-timeout > 0")
    metrics.endpoint(args, settings)  # a bad port is a usage error before anything starts
    from producers.metrics import PollerMetrics
    from producers.poller import PollerOptions, TransactionPoller

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    options = PollerOptions(
        once=args.once,
        interval=args.interval,
        max_retry_time=args.max_retry_time,
        page_size=args.page_size,
        request_timeout=args.request_timeout,
    )
    poller_metrics = PollerMetrics(settings.namespace)
    metrics.serve(poller_metrics, args, settings)
    TransactionPoller(settings, options, stop, metrics=poller_metrics).run()
    return 0
