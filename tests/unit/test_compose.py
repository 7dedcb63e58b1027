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


# -- the `monitoring` profile (issue 11) ---------------------------------------------------

STAGE_SERVICES = ("simulator", "poller", "stream", "sink")


def _flag(command: list[str], flag: str) -> str | None:
    return command[command.index(flag) + 1] if flag in command else None


def test_every_stage_serves_metrics_on_its_own_port_reachable_from_prometheus() -> None:
    services = load()["services"]
    ports = [_flag(services[name]["command"], "--metrics-port") for name in STAGE_SERVICES]
    assert all(p is not None and p.isdigit() and int(p) > 0 for p in ports), ports
    assert len(set(ports)) == len(ports)
    for name in STAGE_SERVICES:
        env = services[name]["environment"]
        assert env["TXNPIPE_METRICS_BIND"] == "0.0.0.0", name  # not only the container's loopback


def test_the_monitoring_profile_runs_prometheus_and_grafana_only_when_asked() -> None:
    services = load()["services"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    assert services["grafana"]["profiles"] == ["monitoring"]
    assert all("profiles" not in services[n] for n in (*STAGE_SERVICES, "kafka", "mysql", "redis"))
    mounts = {v.split(":")[0]: v.split(":")[1] for v in services["prometheus"]["volumes"]}
    assert mounts["./deploy/prometheus.yml"] == "/etc/prometheus/prometheus.yml"
    grafana = {v.split(":")[0]: v.split(":")[1] for v in services["grafana"]["volumes"]}
    for source in grafana:
        assert not source.startswith("./") or (ROOT / source).exists(), source
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/txnpipe.yml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == grafana["./deploy/grafana/dashboards"]
    datasource = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090" and datasource["type"] == "prometheus"


def test_prometheus_scrapes_every_stage_at_the_port_compose_gives_it() -> None:
    services = load()["services"]
    config = yaml.safe_load((ROOT / "deploy/prometheus.yml").read_text())
    scraped: dict[str, int] = {}
    for job in config["scrape_configs"]:
        for sd in job.get("dns_sd_configs", []):
            for name in sd["names"]:
                scraped[name] = int(sd["port"])
    want = {n: int(_flag(services[n]["command"], "--metrics-port") or 0) for n in STAGE_SERVICES}
    assert scraped == want


def test_promtool_accepts_the_prometheus_config() -> None:
    import subprocess

    from tests.unit.common.promtool import binary

    proc = subprocess.run(
        [binary("promtool"), "check", "config", str(ROOT / "deploy/prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_dashboard_queries_only_metrics_the_stages_export() -> None:
    import json

    from prometheus_client.parser import text_string_to_metric_families

    from tests.unit.common.test_metrics import exercised

    exported: set[str] = {"process_start_time_seconds"}
    for metrics in exercised():
        for family in text_string_to_metric_families(metrics.exposition().decode()):
            exported.update(s.name for s in family.samples)
            exported.add(family.name)
    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/txnpipe.json").read_text())
    datasource_uid = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]["uid"]
    exprs = []
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == datasource_uid, panel["title"]
        exprs += [t["expr"] for t in panel["targets"]]
    assert len(exprs) >= 10
    used = {m for e in exprs for m in re.findall(r"\b((?:txnpipe|process)_[a-z_]+)\b", e)}
    assert used and used <= exported, used - exported
    # the list is on the dashboard: lag, freshness, latency, dead letters, errors
    for name in ("consumer_lag", "freshness_seconds", "publish_to_apply", "dead_letters", "errors"):
        assert any(name in m for m in used), name
