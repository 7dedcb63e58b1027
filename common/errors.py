"""The one error tree of txnpipe.

    TxnpipeError                 root; ``retriable`` and ``exit_code`` say what a caller does
    ├── ConfigError              bad setting or flag            (exit 2, never retried)
    ├── AuthError                the API refused our key        (exit 2, never retried)
    └── ServiceUnavailableError  broker / MySQL / Redis / API down (retriable, exit 1)

Messages name the object ``key=value`` and say what to do; they never carry secrets.
"""

from __future__ import annotations


class TxnpipeError(Exception):
    """Root of every error txnpipe raises on purpose."""

    retriable: bool = False
    exit_code: int = 1


class ConfigError(TxnpipeError):
    """A setting or flag is invalid; the user must fix it."""

    exit_code = 2


class AuthError(TxnpipeError):
    """The source API rejected the key (401/403); retrying cannot help."""

    exit_code = 2


class ServiceUnavailableError(TxnpipeError):
    """A service we depend on did not answer in time."""

    retriable = True
