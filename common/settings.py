"""The one settings object (CONTRACT §6): env vars ``TXNPIPE_*``, flags override them.

Nothing else in txnpipe reads ``os.environ`` for configuration. Secrets are
``SecretStr`` and the Redis URL's password is masked wherever settings are shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from common.errors import ConfigError

ENV_PREFIX = "TXNPIPE_"
ALL_STATUSES = ("pending", "approved", "declined", "reversed")
_NAMESPACE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")


def mask_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***`` (for logs and errors)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable url>"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


class Settings(BaseSettings):
    """Connection and behaviour settings shared by every txnpipe command."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    namespace: str = "txnpipe"
    kafka_bootstrap: str = "127.0.0.1:9092"
    mysql_host: str = "127.0.0.1"
    mysql_port: int = Field(default=3306, ge=1, le=65535)
    mysql_user: str = "root"
    mysql_password: SecretStr = SecretStr("")
    mysql_database: str = "txnpipe"
    redis_url: str = "redis://127.0.0.1:6379/0"
    api_url: str = "http://127.0.0.1:8080"
    api_key: SecretStr = SecretStr("")
    # CONTRACT §2: the statuses that contribute to aggregates ("configurable").
    counted_statuses: str = "pending,approved"
    # Opt-in cleaning rules beyond CONTRACT §1 (schemas/rules.py), a comma list; none by default.
    cleaning_rules: str = ""
    # Partitions of the raw and ledger topics when txnpipe creates them.
    partitions: int = Field(default=6, ge=1, le=1024)
    # Where `txnpipe services up` keeps the pid and log of the broker it started.
    state_dir: Path = Path.home() / ".local" / "state" / "txnpipe"
    # GET /metrics of a long-running stage (--metrics-port; 0 = off) and the address it binds.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_bind: str = "127.0.0.1"

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _NAMESPACE_RE.match(value):
            raise ValueError(
                "use 1-63 letters, digits, '_' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("kafka_bootstrap")
    @classmethod
    def _bootstrap(cls, value: str) -> str:
        for server in value.split(","):
            host, sep, port = server.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError("expected host:port[,host:port...]")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if urlsplit(value).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("expected redis://host:port/db")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("expected http(s)://host[:port][/path]")
        return value.rstrip("/")

    @field_validator("counted_statuses")
    @classmethod
    def _counted(cls, value: str) -> str:
        items = [s.strip().lower() for s in value.split(",") if s.strip()]
        unknown = [s for s in items if s not in ALL_STATUSES]
        if unknown or not items:
            raise ValueError(f"expected a comma list of {', '.join(ALL_STATUSES)}")
        return ",".join(items)

    @field_validator("cleaning_rules")
    @classmethod
    def _rules(cls, value: str) -> str:
        items = [s.strip().lower() for s in value.split(",") if s.strip()]
        if any(not re.fullmatch(r"[a-z0-9-]+", s) for s in items):
            raise ValueError("expected a comma list of rule names (see docs/dead-letters.md)")
        return ",".join(sorted(set(items)))

    @property
    def counted(self) -> frozenset[str]:
        """The counted statuses as a set (CONTRACT §2)."""
        return frozenset(self.counted_statuses.split(","))

    def topic(self, name: str) -> str:
        """Full topic name under the namespace, e.g. ``topic("transactions.raw")``."""
        return f"{self.namespace}.{name}"

    def redis_key(self, *parts: str) -> str:
        """Redis key under the namespace, e.g. ``redis_key("agg", "month")``."""
        return ":".join((self.namespace, *parts))

    def display(self) -> dict[str, str]:
        """Settings as shown to people: secrets masked."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown[name] = "***" if value.get_secret_value() else ""
            elif name == "redis_url":
                shown[name] = mask_url(value)
            else:
                shown[name] = str(value)
        return shown

    def __repr_args__(self) -> Any:
        return list(self.display().items())


def load_settings(overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read env vars, apply non-None flag ``overrides``; raise ConfigError naming the variable."""
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return Settings(**given)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        source = f"--{field.replace('_', '-')}" if field in given else ENV_PREFIX + field.upper()
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(f"{source}: {msg}") from None
