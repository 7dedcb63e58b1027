"""``txnpipe sink [--until-idle]``: the MySQL sink (ledger topic → MySQL, exactly once),
with the dead-letter index beside it (DLQ topic → ``dead_letters``, docs/dead-letters.md)."""

from __future__ import annotations

import argparse
import logging
import signal

from common.settings import Settings
from txnpipe import metrics

HELP = "write the ledger, versions and current state to MySQL"
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--until-idle",
        action="store_true",
        help="exit 0 once all delivered is committed and nothing new came for --idle-seconds",
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=3.0,
        help="quiet time that counts as caught up (default 3)",
    )
    parser.add_argument(
        "--batch-messages",
        type=int,
        default=20000,
        help="messages per batch at most (default 20000)",
    )
    parser.add_argument(
        "--max-batch-age",
        type=float,
        default=0.5,
        help="seconds a batch may wait before it is written (default 0.5)",
    )
    metrics.add_arguments(parser)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # A stop asked for while the sink is still starting is honoured once it can be.
    early: list[int] = []
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: early.append(number))
    metrics.endpoint(args, settings)
    # sinks loads mysql-connector's C extension before confluent-kafka imports ssl.
    from sinks.dead_letter_index import DeadLetterIndexer
    from sinks.metrics import SinkMetrics
    from sinks.runner import SinkRunner

    sink_metrics = SinkMetrics(settings.namespace)

    runner = SinkRunner(
        settings,
        batch_messages=max(1, args.batch_messages),
        max_batch_age=max(0.01, args.max_batch_age),
        idle_seconds=max(0.1, args.idle_seconds),
        metrics=sink_metrics,
    )
    metrics.serve(sink_metrics, args, settings)
    runner.install_signal_handlers()
    if early:
        runner.stop()
    indexer = DeadLetterIndexer(settings, metrics=sink_metrics)
    indexer.start(on_failure=runner.stop)  # a broken index stops the sink: it is seen
    try:
        code = runner.run(until_idle=args.until_idle)
        # the sink's own dead letters were published before its last COMMIT: index them too
        finished = not args.until_idle or runner.stopping
        if not finished and not indexer.finish(timeout=max(30.0, 10 * args.idle_seconds)):
            log.warning("sink: the dead-letter index did not reach the DLQ's end in time")
    finally:
        indexer.stop()
    if indexer.failure is not None:
        raise indexer.failure
    return code
