"""`txnpipe stream` argument checks fail fast with exit 2 and one line, before any service."""

from __future__ import annotations

import socket

import pytest

from txnpipe.cli import main


@pytest.mark.parametrize(
    "argv",
    [["--batch-size", "0"], ["--batch-wait", "0"], ["--web-port", "70000"]],
    ids=["batch-size", "batch-wait", "web-port"],
)
def test_bad_flags_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stream", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("txnpipe stream: ") and err.count("\n") == 1


def test_busy_web_port_is_a_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert main(["stream", "--web-port", str(port)]) == 2
    assert f"--web-port {port} is in use" in capsys.readouterr().err
