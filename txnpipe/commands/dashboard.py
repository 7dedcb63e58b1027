"""``txnpipe dashboard [--port P]``: the live web dashboard against a running pipeline (the same
page ``txnpipe run`` serves), read from the stores with the same settings as ``status``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from common.errors import ConfigError
from common.settings import Settings

HELP = "the live web dashboard (charts of the answers, lag, dead letters, freshness)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=8088, help="HTTP port (default 8088; 0 = free)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument(
        "--interval", type=float, default=5.0, help="seconds between samples (default 5)"
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from txnpipe.dashboard import serve

    if not 0 <= args.port <= 65535:
        raise ConfigError("--port must be between 0 and 65535")
    if args.interval < 0.5:
        raise ConfigError("--interval must be at least 0.5 seconds")
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    server = serve(settings, args.host, args.port, args.interval)
    try:
        print(f"txnpipe dashboard: {server.url} (namespace {settings.namespace}; Ctrl-C stops)",
              file=sys.stderr, flush=True)  # fmt: skip
        while not stop.wait(1.0):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
