"""CONTRACT §6 settings: env vars, flag overrides, defaults, masked secrets, one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from common.errors import ConfigError
from common.settings import Settings, load_settings


def test_defaults_reach_local_services(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(f"TXNPIPE_{name.upper()}", raising=False)
    s = load_settings()
    assert (s.namespace, s.kafka_bootstrap) == ("txnpipe", "127.0.0.1:9092")
    assert (s.mysql_host, s.mysql_port, s.mysql_user, s.mysql_database) == (
        "127.0.0.1",
        3306,
        "root",
        "txnpipe",
    )
    assert s.mysql_password.get_secret_value() == ""
    assert s.redis_url.endswith("/0")
    assert s.counted == {"pending", "approved"}


def test_env_then_flags_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TXNPIPE_NAMESPACE", "fromenv")
    monkeypatch.setenv("TXNPIPE_MYSQL_PORT", "3307")
    s = load_settings({"namespace": "fromflag", "mysql_host": None})
    assert s.namespace == "fromflag" and s.mysql_port == 3307


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("TXNPIPE_MYSQL_PORT", "abc"),
        ("TXNPIPE_MYSQL_PORT", "70000"),
        ("TXNPIPE_NAMESPACE", "bad name!"),
        ("TXNPIPE_KAFKA_BOOTSTRAP", "nohostport"),
        ("TXNPIPE_REDIS_URL", "http://x"),
        ("TXNPIPE_API_URL", "ftp://x"),
        ("TXNPIPE_COUNTED_STATUSES", "pending,shipped"),
    ],
)
def test_bad_value_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith(env + ":")
    assert "\n" not in str(err.value)


def test_bad_flag_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"^--mysql-port:"):
        load_settings({"mysql_port": "x"})


def test_secrets_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TXNPIPE_API_KEY", "sk-live-123")
    monkeypatch.setenv("TXNPIPE_MYSQL_PASSWORD", "hunter2")
    monkeypatch.setenv("TXNPIPE_REDIS_URL", "redis://user:s3cret@127.0.0.1:6379/0")
    s = load_settings()
    for shown in (repr(s), str(s), str(s.display())):
        assert "sk-live-123" not in shown and "hunter2" not in shown and "s3cret" not in shown
    assert s.api_key.get_secret_value() == "sk-live-123"


def test_secret_in_a_bad_url_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TXNPIPE_REDIS_URL", "http://user:s3cret@host")
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert "s3cret" not in str(err.value)


def test_cli_bad_env_is_exit_2_one_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "txnpipe", "services", "status"],
        env={"TXNPIPE_MYSQL_PORT": "abc", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "TXNPIPE_MYSQL_PORT" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_cli_unknown_command_is_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "txnpipe", "nope"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_sigterm_while_starting_is_a_clean_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    """A supervisor may stop a stage while it still imports: exit 0, not a kill by signal."""
    import os
    import signal

    import txnpipe.cli as cli

    real = cli.build_parser

    def slow_start() -> object:
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while "importing"
        return real()

    previous = signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "build_parser", slow_start)
    try:
        assert cli.main(["services", "status"]) == 0
    finally:
        signal.signal(signal.SIGTERM, previous)
