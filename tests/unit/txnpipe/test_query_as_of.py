"""`txnpipe query --as-of` and `txnpipe restatements`: parsing and usage errors, no services."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.errors import ConfigError
from txnpipe.cli import main
from txnpipe.commands.query import parse_instant


@pytest.mark.parametrize(
    ("text", "moment"),
    [
        ("2026-11-05", datetime(2026, 11, 5, tzinfo=UTC)),
        ("2026-11-05T00:00:00Z", datetime(2026, 11, 5, tzinfo=UTC)),
        ("2026-11-05T02:30:00+02:00", datetime(2026, 11, 5, 0, 30, tzinfo=UTC)),
        ("2026-11-05 12:00:00.123456", datetime(2026, 11, 5, 12, 0, 0, 123456, tzinfo=UTC)),
    ],
    ids=["date", "zulu", "offset", "naive-is-utc"],
)
def test_instants_are_read_as_utc(text: str, moment: datetime) -> None:
    assert parse_instant(text) == moment


def test_an_unreadable_instant_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="--as-of='last tuesday' is not an ISO-8601"):
        parse_instant("last tuesday")


@pytest.mark.parametrize(
    "argv",
    [
        ["query", "monthly", "--as-of", "2026-11-05", "--source", "redis"],
        ["query", "monthly", "--as-of", "soon"],
        ["restatements", "--close-day", "0"],
        ["restatements", "--months", "121"],
    ],
    ids=["redis-has-no-past", "bad-instant", "close-day", "months"],
)
def test_usage_errors_exit_2_with_one_line_before_any_connection(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    # an unreachable MySQL: the usage error must come first
    assert main([*argv, "--mysql-port", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("txnpipe")
