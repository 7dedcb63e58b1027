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
