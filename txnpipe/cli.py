"""``txnpipe`` command line (CONTRACT §6): global flags, settings, exit codes.

Exit codes: 0 success, 2 bad usage or configuration, 1 any other failure, each with
one line on stderr; a traceback only with ``--debug``.
"""

from __future__ import annotations

# mysql-connector's C extension fails to load once ``ssl`` is imported (confluent-kafka,
# aiokafka and redis all import it) and silently falls back to pure Python: load it first.
import contextlib

with contextlib.suppress(ImportError):  # pragma: no cover - import-order guard
    import _mysql_connector  # noqa: F401

import argparse
import faulthandler
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from importlib.util import find_spec
from types import FrameType
from typing import Any, Protocol

from common.errors import TxnpipeError
from common.logging import configure_logging
from common.settings import Settings, load_settings

log = logging.getLogger(__name__)

# name -> (module under txnpipe.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "the main job: every stage in one supervised process tree"),
    "poll": ("poll", "poll the transactions API into the raw topic"),
    "stream": ("stream", "the stream processor worker (Faust)"),
    "sink": ("sink", "write the ledger, versions and current state to MySQL"),
    "simulate-api": ("simulate_api", "serve the reference transactions API"),
    "query": ("query", "the three seed questions from Redis or MySQL"),
    "replay": ("replay", "reprocess the topics to rebuild aggregates and tables"),
    "restatements": ("restatements", "how much each closed month moved since its close"),
    "reconcile": ("reconcile", "compare the API, Kafka, MySQL and Redis; --repair"),
    "status": ("status", "lag, dead letters, poll position and freshness"),
    "dlq": ("dlq", "dead letters: stats, list, show, export, redrive exactly once"),
    "clv": ("clv", "customer lifetime value: segments and predictions"),
    "dashboard": ("dashboard", "the live web dashboard against a running pipeline"),
    "services": ("services", "start, stop or check the local broker, MySQL and Redis"),
}

# flag -> settings field; every subcommand accepts these and they override TXNPIPE_* env vars.
SETTING_FLAGS = {
    "--namespace": "namespace",
    "--kafka-bootstrap": "kafka_bootstrap",
    "--mysql-host": "mysql_host",
    "--mysql-port": "mysql_port",
    "--mysql-user": "mysql_user",
    "--mysql-password": "mysql_password",
    "--mysql-database": "mysql_database",
    "--redis-url": "redis_url",
    "--api-url": "api_url",
    "--api-key": "api_key",
    "--counted-statuses": "counted_statuses",
    "--cleaning-rules": "cleaning_rules",
}


class _StoppedEarly(BaseException):
    """SIGTERM arrived before the command installed its own handlers: nothing was started."""


def _early_sigterm(signum: int, frame: FrameType | None) -> None:
    raise _StoppedEarly


class CommandModule(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace, settings: Settings) -> int: ...


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors and exit code 2."""

    def error(self, message: str) -> Any:
        sys.stderr.write(f"txnpipe: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _common_parser() -> _Parser:
    common = _Parser(add_help=False)
    group = common.add_argument_group("connection (override TXNPIPE_* env vars)")
    for flag, field in SETTING_FLAGS.items():
        group.add_argument(flag, dest=f"setting_{field}", default=None, metavar=field.upper())
    common.add_argument("--debug", action="store_true", help="show tracebacks")
    common.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    return common


def _available() -> dict[str, tuple[str, str]]:
    return {
        name: spec
        for name, spec in COMMANDS.items()
        if find_spec(f"txnpipe.commands.{spec[0]}") is not None
    }


def build_parser() -> argparse.ArgumentParser:
    """The full parser; command modules are imported to add their own arguments."""
    parser = _Parser(
        prog="txnpipe",
        description="txnpipe: a streaming change-data pipeline for financial transactions.",
        epilog="Configuration: TXNPIPE_* environment variables; each has a flag that overrides it.",
    )
    parser.add_argument("--version", action="version", version="txnpipe 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    common = _common_parser()
    for name, (module, help_text) in _available().items():
        cmd_parser = sub.add_parser(name, help=help_text, parents=[common], description=help_text)
        cmd_parser.set_defaults(_module=module)
        _load(module).add_arguments(cmd_parser)
    return parser


def _load(module: str) -> CommandModule:
    loaded: Any = importlib.import_module(f"txnpipe.commands.{module}")
    return loaded  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``txnpipe`` console script."""
    # A crash in a C extension (librdkafka, mysql-connector, hiredis, msgspec) kills the
    # process with a signal and no word: print the Python stack of every thread on stderr.
    with contextlib.suppress(ValueError, OSError):  # stderr is no file (captured, closed)
        faulthandler.enable()
    # A supervisor may stop us while we still import (seconds on a busy machine): until the
    # command installs its own handlers, SIGTERM means "stop cleanly", not a kill.
    signal.signal(signal.SIGTERM, _early_sigterm)
    try:
        args = build_parser().parse_args(argv)
    except _StoppedEarly:
        return 0
    debug = bool(getattr(args, "debug", False))
    try:
        configure_logging(args.log_level)
        overrides = {
            key.removeprefix("setting_"): value
            for key, value in vars(args).items()
            if key.startswith("setting_")
        }
        settings = load_settings(overrides)
        return _load(args._module).run(args, settings)
    except KeyboardInterrupt:
        sys.stderr.write("txnpipe: interrupted\n")
        return 130
    except _StoppedEarly:
        sys.stderr.write(f"txnpipe {args.command}: stopped (SIGTERM)\n")
        return 0
    except TxnpipeError as exc:
        if debug:
            log.exception("failed")
        sys.stderr.write(f"txnpipe {args.command}: {exc}\n")
        return exc.exit_code
    except Exception as exc:
        if debug:
            raise
        sys.stderr.write(
            f"txnpipe {args.command}: {type(exc).__name__}: {exc} (rerun with --debug)\n"
        )
        return 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
