"""Shared fixtures: one per service, and an isolated namespace per test.

Services are real: the Kafka-compatible broker (the bundled one is started when nothing
answers), MariaDB/MySQL and Redis. With ``CI=true`` a missing service fails the run.
"""

from __future__ import annotations

# mysql-connector's C extension must load before anything imports ssl (see txnpipe.cli).
import contextlib

with contextlib.suppress(ImportError):
    import _mysql_connector  # noqa: F401

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.services import ensure_broker, mysql_answers, redis_answers, stop_broker
from common.settings import Settings, load_settings
from tests import parallel

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _missing(what: str) -> None:
    if IN_CI:
        pytest.fail(
            f"{what} is not available and CI=true: integration tests must run", pytrace=False
        )
    pytest.skip(f"{what} is not available")


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return load_settings()


@contextlib.contextmanager
def _broker_lock(settings: Settings) -> Iterator[None]:
    """One broker start at a time: parallel workers (pytest -n) must not race to start two."""
    import fcntl

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.state_dir / "broker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _broker_answers(settings: Settings) -> bool:
    from common.services import answers, bootstrap_endpoint

    return answers(bootstrap_endpoint(settings.kafka_bootstrap))


_BROKER_WAS_UP = pytest.StashKey[bool]()
_GROUPS_DIR = pytest.StashKey[Path]()


def _controller(config: pytest.Config) -> bool:
    """The controller of a parallel run (pytest -n N, N > 0)."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if _controller(config):
        # Whether a broker answered before any worker ran: only then may the controller
        # stop the one a worker started (pytest_sessionfinish), once every worker is done.
        config.stash[_BROKER_WAS_UP] = _broker_answers(load_settings())
        config.stash[_GROUPS_DIR] = Path(tempfile.mkdtemp(prefix="txnpipe-xdist-"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    node.workerinput[parallel.GROUPS_DIR] = str(node.config.stash[_GROUPS_DIR])


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None
    return parallel.make_scheduler(config, log, config.stash[_GROUPS_DIR])


@pytest.hookimpl(trylast=True)  # the final list of items, as this worker will run them
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    parallel.report_groups(config, items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if _GROUPS_DIR in config.stash:
        shutil.rmtree(config.stash[_GROUPS_DIR], ignore_errors=True)
    if config.stash.get(_BROKER_WAS_UP, True):
        return  # not the controller of a parallel run, or the broker was there before it
    from common.services import bundled_broker_answers

    settings = load_settings()
    if bundled_broker_answers(settings):
        stop_broker(settings)


@pytest.fixture(scope="session")
def kafka(base_settings: Settings, pytestconfig: pytest.Config) -> Iterator[str]:
    """Bootstrap address of a broker that answers; starts the bundled one if needed.

    A broker this session started is stopped at its end; under pytest -n the controller
    stops it after every worker is done (pytest_sessionfinish), never a worker."""
    started: int | None = None
    try:
        with _broker_lock(base_settings):
            was_up = _broker_answers(base_settings)
            pid = ensure_broker(base_settings)
        started = None if was_up else pid
    except Exception as exc:
        _missing(f"Kafka broker at {base_settings.kafka_bootstrap} ({exc})")
    yield base_settings.kafka_bootstrap
    if started is not None and not hasattr(pytestconfig, "workerinput"):
        stop_broker(base_settings)


@pytest.fixture(scope="session")
def mysql_server(base_settings: Settings) -> Settings:
    if not mysql_answers(base_settings):
        _missing(f"MySQL at {base_settings.mysql_host}:{base_settings.mysql_port}")
    return base_settings


@pytest.fixture(scope="session")
def redis_server(base_settings: Settings) -> Settings:
    if not redis_answers(base_settings):
        _missing(f"Redis at {base_settings.redis_url}")
    return base_settings


@pytest.fixture
def namespace() -> str:
    """A fresh namespace: topics, consumer groups, Redis keys and the database hang off it."""
    return f"t{uuid.uuid4().hex[:10]}"


def _mysql_connect(settings: Settings, database: str | None = None) -> Any:
    import mysql.connector

    return mysql.connector.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.mysql_user,
        password=settings.mysql_password.get_secret_value(),
        database=database,
        autocommit=True,
    )


@pytest.fixture
def settings(namespace: str, base_settings: Settings, tmp_path: Any) -> Settings:
    """Settings for this test only (no services touched; use the service fixtures for that)."""
    return load_settings(
        {
            **base_settings.model_dump(),
            "namespace": namespace,
            "mysql_database": f"txnpipe_{namespace}",
            "state_dir": tmp_path / "state",
        }
    )


@pytest.fixture
def mysql_db(settings: Settings, mysql_server: Settings) -> Iterator[Settings]:
    """A database of this test's own, dropped afterwards."""
    conn = _mysql_connect(settings)
    conn.cursor().execute(f"CREATE DATABASE `{settings.mysql_database}`")
    conn.close()
    yield settings
    conn = _mysql_connect(settings)
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{settings.mysql_database}`")
    conn.close()


@pytest.fixture
def redis_ns(settings: Settings, redis_server: Settings) -> Iterator[Settings]:
    """Redis reachable; every key under this test's namespace is deleted afterwards."""
    import redis

    yield settings
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=f"{settings.namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def topics(settings: Settings, kafka: str) -> Iterator[Settings]:
    """The broker reachable; this test's topics are deleted afterwards."""
    yield settings
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": kafka})
    with contextlib.suppress(Exception):
        names = [
            t for t in admin.list_topics(timeout=5).topics if t.startswith(f"{settings.namespace}.")
        ]
        if names:
            for future in admin.delete_topics(names, operation_timeout=5).values():
                with contextlib.suppress(Exception):
                    future.result(5)


@pytest.fixture
def services(topics: Settings, mysql_db: Settings, redis_ns: Settings) -> Settings:
    """All three services, isolated for this test."""
    return topics
