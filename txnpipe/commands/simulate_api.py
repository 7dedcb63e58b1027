"""``txnpipe simulate-api [--port P] [--seed S] ...``: the reference API of CONTRACT §1."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from common.errors import ConfigError
from common.settings import Settings
from txnpipe import metrics

HELP = "serve the reference transactions API (deterministic for a seed)"
log = logging.getLogger(__name__)


def _rate(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("a rate is between 0 and 1")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument(
        "--port", type=int, default=None, help="port (default: the port of --api-url; 0 = any free)"
    )
    parser.add_argument("--seed", type=int, default=42, help="same seed and --now, same bytes")
    parser.add_argument("--history-days", type=int, default=540, help="backfill length (540)")
    parser.add_argument(
        "--transactions-per-day", type=float, default=100.0, help="backfill volume (100)"
    )
    parser.add_argument("--rate", type=float, default=5.0, help="new transactions per second (5)")
    parser.add_argument("--customers", type=int, default=5000, help="customer population (5000)")
    parser.add_argument(
        "--now",
        default=None,
        help="freeze the clock at this ISO-8601 time (end of the backfill); default: live clock",
    )
    parser.add_argument("--dirty-rate", type=_rate, default=0.35)
    parser.add_argument("--invalid-rate", type=_rate, default=0.02)
    parser.add_argument("--repeat-rate", type=_rate, default=0.03)
    parser.add_argument("--late-rate", type=_rate, default=0.02)
    faults = parser.add_argument_group("faults (probability per request)")
    faults.add_argument("--faults", type=_rate, default=None, help="set all four fault rates")
    faults.add_argument("--fault-429", type=_rate, default=0.01)
    faults.add_argument("--fault-5xx", type=_rate, default=0.01)
    faults.add_argument("--fault-slow", type=_rate, default=0.01)
    faults.add_argument("--fault-truncated", type=_rate, default=0.01)
    faults.add_argument("--slow-seconds", type=float, default=1.0)
    faults.add_argument("--retry-after", type=int, default=1, help="Retry-After of a 429 (s)")
    metrics.add_arguments(parser)


def _port(args: argparse.Namespace, settings: Settings) -> int:
    if args.port is not None:
        return int(args.port)
    return urlsplit(settings.api_url).port or 8080


def run(args: argparse.Namespace, settings: Settings) -> int:
    from producers.simulator import FaultConfig, Simulator, SimulatorConfig, serve

    metrics.endpoint(args, settings)  # usage errors first
    now = None
    if args.now:
        try:
            now = datetime.fromisoformat(args.now)
        except ValueError:
            raise ConfigError(f"--now: not ISO-8601: {args.now!r}") from None
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
    if args.history_days < 0 or args.transactions_per_day < 0 or args.rate < 0:
        raise ConfigError("--history-days, --transactions-per-day and --rate must be >= 0")
    start = (now or datetime.now(UTC)) - timedelta(days=args.history_days + 60)
    if start.year < 2000:
        raise ConfigError("--now minus --history-days must stay after 2000 (CONTRACT §1 dates)")
    if args.customers < 1:
        raise ConfigError("--customers must be at least 1")
    config = SimulatorConfig(
        seed=args.seed,
        history_days=args.history_days,
        transactions_per_day=args.transactions_per_day,
        rate=args.rate,
        customers=args.customers,
        dirty_rate=args.dirty_rate,
        invalid_rate=args.invalid_rate,
        repeat_rate=args.repeat_rate,
        late_rate=args.late_rate,
    )
    if args.faults is not None:
        faults = FaultConfig.uniform(
            args.faults, slow_seconds=args.slow_seconds, retry_after=args.retry_after
        )
    else:
        faults = FaultConfig(
            rate_429=args.fault_429,
            rate_5xx=args.fault_5xx,
            rate_slow=args.fault_slow,
            rate_truncated=args.fault_truncated,
            slow_seconds=args.slow_seconds,
            retry_after=args.retry_after,
        )
    api_key = settings.api_key.get_secret_value()
    if not api_key:
        log.warning("no API key configured (TXNPIPE_API_KEY / --api-key): accepting any request")
    simulator = Simulator(config, faults, api_key, now, counted=settings.counted)
    from producers.metrics import SimulatorMetrics

    simulator.metrics = SimulatorMetrics(settings.namespace)
    metrics.serve(simulator.metrics, args, settings)

    def ready(url: str) -> None:
        log.info("simulator listening on %s", url)
        print(f"listening on {url}", flush=True)

    try:
        serve(simulator, args.host, _port(args, settings), ready)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {args.host}:{_port(args, settings)}: {exc}") from None
    sys.stdout.flush()
    return 0
