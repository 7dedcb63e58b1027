"""``txnpipe stream``: one stream processor worker (Faust); several may run at once."""

from __future__ import annotations

import argparse
import logging

from common.settings import Settings
from txnpipe import metrics

HELP = "the stream processor worker (Faust); several may run at once"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--batch-size",
        type=int,
        default=1000,
        help="Kafka messages per batch (a poller message holds many records)",
    )
    parser.add_argument(
        "--batch-wait",
        type=float,
        default=0.05,
        help="seconds to wait for a batch to fill (bounds freshness)",
    )
    parser.add_argument(
        "--web-port",
        type=int,
        default=6066,
        help="HTTP port of /categories, /top-customers, /monthly (0: no web server)",
    )
    parser.add_argument("--web-bind", default="127.0.0.1", help="address the web server binds")
    parser.add_argument(
        "--session-timeout",
        type=float,
        default=10.0,
        help="consumer group session timeout, seconds",
    )
    parser.add_argument("--no-broker", action="store_true",
                        help="never start the bundled broker")  # fmt: skip
    metrics.add_arguments(parser)


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def run(args: argparse.Namespace, settings: Settings) -> int:
    from common.errors import ConfigError
    from common.services import ensure_broker

    if args.batch_size < 1 or args.batch_wait <= 0 or not 0 <= args.web_port < 65536:
        raise ConfigError("--batch-size must be >= 1, --batch-wait > 0, --web-port in 0..65535")
    if args.web_port and not _port_free(args.web_bind, args.web_port):
        raise ConfigError(
            f"--web-port {args.web_port} is in use on {args.web_bind} (another worker?); "
            "give each worker its own port, or 0 for none"
        )
    metrics_port, metrics_bind = metrics.endpoint(args, settings)
    if not args.no_broker:
        ensure_broker(settings)
    from stream_app.app import WorkerOptions, run_worker
    from stream_app.topics import ensure_topics

    ensure_topics(settings)
    options = WorkerOptions(
        batch_size=args.batch_size,
        within=args.batch_wait,
        web_port=args.web_port,
        web_bind=args.web_bind,
        session_timeout=args.session_timeout,
        metrics_port=metrics_port,
        metrics_bind=metrics_bind,
    )
    log.info("stream worker namespace=%s options=%s", settings.namespace, options)
    return run_worker(settings, options, loglevel=args.log_level)
