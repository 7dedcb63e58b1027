"""What a benchmark needs before it measures: its services, and failures in one line.

``make bench`` must work on a fresh clone with only MariaDB and Redis running, as the
tests do: the bundled broker is started when nothing answers at the bootstrap address
(``common.services.ensure_broker``) and stopped afterwards only if this run started it;
a missing MySQL or Redis is one line on stderr and exit 1, never a traceback.

    if __name__ == "__main__":
        harness.run(main, mysql=True)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

# mysql-connector's C extension must load before anything imports ssl (see txnpipe.cli).
with contextlib.suppress(ImportError):
    import _mysql_connector  # noqa: F401

from common.errors import ServiceUnavailableError
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
from common.settings import Settings, load_settings


@contextlib.contextmanager
def services(settings: Settings, *, mysql: bool = False, redis: bool = False) -> Iterator[None]:
    """Check MySQL/Redis, start the bundled broker if none answers; stop it after if ours."""
    if mysql and not mysql_answers(settings):
        raise ServiceUnavailableError(
            f"no MySQL answers at {settings.mysql_host}:{settings.mysql_port}; {MYSQL_HINT}"
        )
    if redis and not redis_answers(settings):
        raise ServiceUnavailableError(f"no Redis answers at {settings.redis_url}; {REDIS_HINT}")
    was_up = answers(bootstrap_endpoint(settings.kafka_bootstrap))
    pid = ensure_broker(settings)
    try:
        yield
    finally:
        if not was_up and pid is not None:
            stop_broker(settings)


def run(main: Callable[[], int], *, mysql: bool = False, redis: bool = False) -> None:
    """Exit with ``main()``'s code, run inside ``services``; a missing service is one line."""
    name = Path(sys.argv[0]).stem
    try:
        with services(load_settings(), mysql=mysql, redis=redis):
            code = main()
    except ServiceUnavailableError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:
        print(f"{name}: interrupted", file=sys.stderr)
        code = 130
    raise SystemExit(code)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat: busy share = Δbusy / Δtotal."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)
