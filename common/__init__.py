"""Plumbing every stage shares: settings, logging, errors. No business rules live here."""

from common.errors import (
    AuthError,
    ConfigError,
    ServiceUnavailableError,
    TxnpipeError,
)
from common.settings import Settings, load_settings

__all__ = [
    "AuthError",
    "ConfigError",
    "ServiceUnavailableError",
    "Settings",
    "TxnpipeError",
    "load_settings",
]
