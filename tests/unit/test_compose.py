"""docker-compose.yml cannot run here (no Docker engine): keep it honest by parsing it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from common.settings import ENV_PREFIX, Settings
from txnpipe.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_infrastructure_services_and_healthchecks() -> None:
    services = load()["services"]
    assert services["kafka"]["image"].startswith("apache/kafka:")
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]  # KRaft
    assert services["mysql"]["image"] == "mysql:8.4"
    assert services["redis"]["image"].startswith("redis:7")
    assert "--appendonly" in services["redis"]["command"]
    for name in ("kafka", "mysql", "redis"):
        assert services[name]["healthcheck"]["test"], name
    ports = {name: [str(p) for p in s.get("ports", [])] for name, s in services.items()}
    assert (
        "9092:9092" in ports["kafka"]
        and "3306:3306" in ports["mysql"]
        and "6379:6379" in ports["redis"]
    )


def test_stages_use_the_settings_env_vars_and_real_commands() -> None:
    services = load()["services"]
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    for name in ("poller", "stream", "sink", "simulator"):
        service = services[name]
        assert service["image"] == "txnpipe:latest" and service["build"] == "."
        env = service["environment"]
        assert set(env) <= known, set(env) - known
        assert {"TXNPIPE_KAFKA_BOOTSTRAP", "TXNPIPE_MYSQL_HOST", "TXNPIPE_REDIS_URL"} <= set(env)
        assert service["command"][0] in COMMANDS
    for name in ("poller", "stream", "sink"):
        deps = services[name]["depends_on"]
        assert all(deps[d]["condition"] == "service_healthy" for d in ("kafka", "mysql", "redis"))


def test_bootstrap_and_hosts_point_at_compose_services() -> None:
    env = load()["services"]["sink"]["environment"]
    host, port = env["TXNPIPE_KAFKA_BOOTSTRAP"].split(":")
    assert host in load()["services"] and port == "9092"
    assert env["TXNPIPE_MYSQL_HOST"] in load()["services"]
    assert re.match(r"redis://redis:6379/\d+", env["TXNPIPE_REDIS_URL"])


def test_dockerfile_installs_every_package() -> None:
    text = (ROOT / "Dockerfile").read_text()
    for package in ("common", "schemas", "producers", "stream_app", "sinks", "clv", "txnpipe"):
        assert f"COPY {package} " in text, package


def test_stream_and_sink_scale_out_with_replicas_within_the_partition_count() -> None:
    services = load()["services"]
    partitions = Settings().partitions  # the compose file leaves TXNPIPE_PARTITIONS at its default
    for name in ("stream", "sink"):
        replicas = services[name]["deploy"]["replicas"]
        assert isinstance(replicas, int) and 2 <= replicas <= partitions, (name, replicas)
        assert "container_name" not in services[name]  # a fixed name allows one replica only
    # replicas must not fight over one host port: a range with room for every replica
    (mapping,) = services["stream"]["ports"]
    host, container = str(mapping).rsplit(":", 1)
    first, _, last = host.partition("-")
    assert (
        container == "6066"
        and int(last or first) - int(first) + 1 >= services["stream"]["deploy"]["replicas"]
    )
    # the workers' HTTP answers must be reachable through the published port
    command = services["stream"]["command"]
    assert command[command.index("--web-bind") + 1] == "0.0.0.0"
    for name in ("poller", "simulator"):
        assert services[name].get("deploy", {}).get("replicas", 1) == 1, name  # one cursor
