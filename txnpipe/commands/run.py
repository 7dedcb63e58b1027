"""``txnpipe run``: the main job — every stage in one supervised process tree, with a live view.

Starts the bundled broker when nothing answers at the bootstrap address, the reference API
unless ``--api-url`` (or ``TXNPIPE_API_URL``) is given, the poller, ``--workers`` stream
workers and ``--sinks`` sinks. A crashed stage is restarted with backoff. Ctrl-C (or
``--duration``) stops every child cleanly and leaves nothing running.

Workers share the raw topic's partitions (one consumer group), sinks the ledger topic's
(another group; exactly once comes from the offsets stored with each batch in MySQL and the
fencing on them, not from the number of sinks). Partitions are the unit of parallelism:
members beyond the partition count stay idle (docs/SCALING.md).
"""

from __future__ import annotations

import argparse
import logging
import signal
import socket
import sys
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from common.errors import ConfigError
from common.services import (
    MYSQL_HINT,
    REDIS_HINT,
    answers,
    bootstrap_endpoint,
    ensure_broker,
    mysql_answers,
    redis_answers,
    stop_broker,
)
from common.settings import Settings
from txnpipe import metrics
from txnpipe.supervisor import Stage, Supervisor

HELP = "the main job: every stage in one supervised process tree"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=1, help="stream workers (default 1)")
    parser.add_argument(
        "--sinks", type=int, default=1, help="MySQL sinks sharing the ledger topic (default 1)"
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--seed", type=int, default=42, help="simulator seed (built-in API only)")
    parser.add_argument(
        "--sim-port", type=int, default=0, help="simulator port (default: a free one)"
    )
    parser.add_argument(
        "--rate", type=float, default=5.0, help="simulator: new transactions per second"
    )
    parser.add_argument("--history-days", type=int, default=None, help="simulator: backfill days")
    parser.add_argument(
        "--web-port", type=int, default=6066, help="first stream worker's HTTP port"
    )
    parser.add_argument("--refresh", type=float, default=2.0, help="seconds between view updates")
    parser.add_argument(
        "--dashboard-port", type=int, default=8088, help="web dashboard port (0 = off)"
    )
    parser.add_argument(
        "--no-view", action="store_true", help="progress lines instead of the live view"
    )
    parser.add_argument(
        "--reset-namespace",
        action="store_true",
        help="when the raw topic is new but Redis/MySQL hold positions, delete the namespace's "
        "Redis keys and sink tables (automatic only on the bundled broker txnpipe started)",
    )
    metrics.add_arguments(parser)  # run's own port; each child gets a free one


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def child_env(settings: Settings) -> dict[str, str]:
    """The children's environment: our resolved settings as TXNPIPE_* variables."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("TXNPIPE_")}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        raw = value.get_secret_value() if hasattr(value, "get_secret_value") else str(value)
        env[f"TXNPIPE_{name.upper()}"] = raw
    return env


def plan(args: argparse.Namespace, settings: Settings) -> tuple[list[Stage], Settings]:
    """The stages to run, in start order (stop order is the same: poller first, sink last)."""
    run_dir = settings.state_dir / "run" / settings.namespace
    stages: list[Stage] = []
    simulated = "api_url" not in settings.model_fields_set
    if simulated:
        port = args.sim_port or _free_port()
        settings = settings.model_copy(update={"api_url": f"http://127.0.0.1:{port}"})
        sim = [
            "simulate-api",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--seed",
            str(args.seed),
            "--rate",
            str(args.rate),
        ]
        if args.history_days is not None:
            sim += ["--history-days", str(args.history_days)]
        if not settings.api_key.get_secret_value():
            settings = settings.model_copy(
                update={"api_key": type(settings.api_key)("local-demo-key")}
            )
        sim += ["--api-key", settings.api_key.get_secret_value()]
        stages.append(Stage("simulator", sim, run_dir / "simulator.log", stop_rank=1))
    stages.append(Stage("poller", ["poll", "--interval", "1"], run_dir / "poller.log"))
    for i in range(args.workers):
        stages.append(
            Stage(
                f"stream-{i + 1}",
                ["stream", "--web-port", str(args.web_port + i if args.web_port else 0)],
                run_dir / f"stream-{i + 1}.log",
                group=stream_group(settings),
            )
        )
    for i in range(args.sinks):
        name = "sink" if args.sinks == 1 else f"sink-{i + 1}"
        stages.append(Stage(name, ["sink"], run_dir / f"{name}.log", group=sink_group(settings)))
    return stages, settings


def stream_group(settings: Settings) -> str:
    """The stream workers' consumer group: Faust's group id is its app id."""
    return f"{settings.namespace}-stream"


def sink_group(settings: Settings) -> str:
    from sinks.consumer import group_id

    return group_id(settings)


def idle_members(workers: int, sinks: int, partitions: int) -> str | None:
    """A one-line notice when more workers or sinks are asked for than there are partitions
    (a partition has one owner in its group: the rest stand by as spares)."""
    extra = [
        f"{n - partitions} of {n} {what} will stand by"
        for n, what in ((workers, "stream workers"), (sinks, "sinks"))
        if n > partitions
    ]
    if not extra:
        return None
    return f"{' and '.join(extra)}: the topics have {partitions} partitions (docs/SCALING.md)"


def _partitions(settings: Settings) -> int:
    """The raw topic's partition count, or what txnpipe will create it with."""
    from common.kafka import partition_counts

    raw = settings.topic("transactions.raw")
    return partition_counts(settings.kafka_bootstrap, [raw]).get(raw, settings.partitions)


def settled_check(settings: Settings) -> Callable[[str], bool]:
    """``group -> True unless it is rebalancing``, for the supervisor's stops."""
    from common.kafka import admin_client, group_settled

    admin = admin_client(settings.kafka_bootstrap)
    return lambda group: group_settled(admin, group, timeout=2.0)


def forget_stale_state(settings: Settings, *, reset: bool = False) -> bool:
    """When the broker has no raw topic but Redis or MySQL hold positions in it, the broker
    lost its data or is not the one those positions came from. For the bundled in-memory
    broker that txnpipe started (it keeps nothing across restarts) start the namespace
    afresh — the API is read again from the start, so nothing is lost. Anywhere else (a
    real cluster whose topics were recreated, a mistyped bootstrap address) deleting would
    destroy the audit trail, so only ``reset`` (``--reset-namespace``) allows it; without it
    this raises ConfigError. Returns True when something was reset."""
    import redis

    from common.kafka import partition_counts
    from common.services import bundled_broker_answers
    from sinks.replay import drop_tables, held_positions

    raw = settings.topic("transactions.raw")
    if partition_counts(settings.kafka_bootstrap, [raw]):
        return False
    client = redis.Redis.from_url(settings.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{settings.namespace}:*", count=1000))
        held = held_positions(settings)
        if not keys and not held:
            return False
        if not reset and not bundled_broker_answers(settings):
            raise ConfigError(
                f"topic {raw} is new at {settings.kafka_bootstrap} (not the bundled broker "
                f"txnpipe started) but namespace {settings.namespace!r} holds positions "
                f"(Redis: {len(keys)} keys; MySQL database {settings.mysql_database!r}: "
                f"{held} partition offsets); nothing deleted — pass --reset-namespace to "
                "start the namespace afresh on purpose"
            )
        for start in range(0, len(keys), 1000):
            client.unlink(*keys[start : start + 1000])
    finally:
        client.close()
    drop_tables(settings)
    print(
        f"txnpipe run: topic {raw} is new but Redis/MySQL held positions in an older one "
        f"({'--reset-namespace' if reset else 'a restarted bundled broker'}); "
        f"starting namespace {settings.namespace!r} afresh",
        file=sys.stderr,
    )
    return True


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.workers < 1 or args.sinks < 1:
        raise ConfigError("--workers and --sinks must be at least 1")
    if not 0 <= args.dashboard_port <= 65535:
        raise ConfigError("--dashboard-port must be between 0 and 65535 (0 = off)")
    missing = [
        hint
        for ok, hint in (
            (mysql_answers(settings), MYSQL_HINT),
            (redis_answers(settings), REDIS_HINT),
        )
        if not ok
    ]
    if missing:
        raise ConfigError("; ".join(f"not answering — {hint}" for hint in missing))
    broker_was_up = answers(bootstrap_endpoint(settings.kafka_bootstrap))
    ensure_broker(settings)
    try:
        forget_stale_state(settings, reset=args.reset_namespace)
    except BaseException:
        if not broker_was_up:
            stop_broker(settings)
        raise
    notice = idle_members(args.workers, args.sinks, _partitions(settings))
    if notice:
        print(f"txnpipe run: {notice}", file=sys.stderr)
    stages, settings = plan(args, settings)
    supervisor = Supervisor(stages, child_env(settings), settled=settled_check(settings))
    run_dir = settings.state_dir / "run" / settings.namespace
    run_metrics = metrics.start_run_metrics(args, settings, supervisor, run_dir)
    dashboard = _dashboard(args, settings)
    stop_requested: list[str] = []

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        stop_requested.append(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    deadline = time.monotonic() + args.duration if args.duration else None
    from txnpipe.view import ProgressView

    view = ProgressView(settings, supervisor, live=sys.stdout.isatty() and not args.no_view)
    try:
        supervisor.start()
        with view:
            while not stop_requested and (deadline is None or time.monotonic() < deadline):
                for event in supervisor.poll():
                    view.event(event)
                view.update()
                _wait(args.refresh, stop_requested, deadline)
        reason = stop_requested[0] if stop_requested else "duration reached"
        print(f"txnpipe run: stopping ({reason})", file=sys.stderr)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        # a second Ctrl-C while stopping must not leave children behind
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if dashboard is not None:
            dashboard.stop()
        supervisor.stop()
        if run_metrics is not None:
            run_metrics.close()
        if not broker_was_up:
            stop_broker(settings)
        signal.signal(signal.SIGINT, previous.get(signal.SIGINT, signal.SIG_DFL))
    view.final()
    return 0


def _dashboard(args: argparse.Namespace, settings: Settings) -> Any:
    """The web dashboard (docs/dashboard.md) in threads of this process, or None when off.
    A busy port costs the page, not the pipeline."""
    if not args.dashboard_port:
        return None
    from txnpipe.dashboard import serve

    try:
        server = serve(settings, port=args.dashboard_port)
    except ConfigError as exc:
        print(f"txnpipe run: no dashboard: {exc}", file=sys.stderr, flush=True)
        return None
    print(f"txnpipe run: dashboard at {server.url}", file=sys.stderr, flush=True)
    return server


def _wait(seconds: float, stop: list[Any], deadline: float | None) -> None:
    end = time.monotonic() + seconds
    if deadline is not None:
        end = min(end, deadline)
    while not stop and time.monotonic() < end:
        time.sleep(0.1)
