"""MySQL connections for the sink: C extension, UTC sessions, strict mode, error classes.

Every session runs with ``time_zone='+00:00'`` (the seed's ``NOW()`` is UTC) and a strict
``sql_mode`` so a value the table cannot hold is an error (sent to the DLQ), never a
silent truncation.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import mysql.connector
from mysql.connector import errorcode
from mysql.connector.errors import Error as MySQLError

from common.errors import ServiceUnavailableError
from common.settings import Settings
from sinks.dialect import Dialect

try:  # the C extension raises its own error class on some paths (e.g. a killed connection)
    from _mysql_connector import MySQLInterfaceError
except ImportError:  # pragma: no cover - pure-Python connector only

    class MySQLInterfaceError(Exception):  # type: ignore[no-redef]
        """Stand-in when the C extension is absent."""


# Every error a MySQL call can raise, whichever connector implementation is loaded.
DB_ERRORS: tuple[type[Exception], ...] = (MySQLError, MySQLInterfaceError)

log = logging.getLogger(__name__)

SQL_MODE = (
    "STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,"
    "NO_ENGINE_SUBSTITUTION"
)

# Errors after which the same batch may succeed on a fresh connection: the connection or
# the server went away, the session was killed, or InnoDB chose us as a deadlock victim.
TRANSIENT_ERRNOS = frozenset(
    {
        errorcode.CR_SERVER_GONE_ERROR,  # 2006
        errorcode.CR_SERVER_LOST,  # 2013
        errorcode.CR_CONNECTION_ERROR,  # 2002
        errorcode.CR_CONN_HOST_ERROR,  # 2003
        errorcode.CR_SERVER_LOST_EXTENDED,  # 2055
        errorcode.ER_LOCK_DEADLOCK,  # 1213
        errorcode.ER_LOCK_WAIT_TIMEOUT,  # 1205
        errorcode.ER_QUERY_INTERRUPTED,  # 1317
        errorcode.ER_SERVER_SHUTDOWN,  # 1053
        errorcode.ER_CON_COUNT_ERROR,  # 1040 too many connections
        1927,  # MariaDB ER_CONNECTION_KILLED (KILL CONNECTION from another session)
        4031,  # MySQL 8 ER_CLIENT_INTERACTION_TIMEOUT
        1614,  # ER_XA_RBDEADLOCK
        1180,  # ER_ERROR_DURING_COMMIT
    }
)


def is_transient(exc: BaseException, conn: Any = None) -> bool:
    """True when retrying the whole batch on a new connection can succeed.

    Besides the error codes above, any error on a connection that is no longer alive
    counts: the connector sometimes wraps a lost connection in another error (e.g.
    ``ProgrammingError(-1, 'Failed processing format-parameters; 2013: Lost connection')``).
    """
    errno = getattr(exc, "errno", None)
    if isinstance(exc, MySQLInterfaceError):  # raw C-extension error: a connection problem
        return True
    if isinstance(
        exc, mysql.connector.errors.OperationalError | mysql.connector.errors.InterfaceError
    ):
        if errno is None or errno in TRANSIENT_ERRNOS or errno >= 2000:
            return True
    elif isinstance(exc, MySQLError) and errno in TRANSIENT_ERRNOS:
        return True
    if not isinstance(exc, MySQLError):
        return False
    if any(mark in str(exc) for mark in _LOST):
        return True
    if conn is not None:
        try:
            return not conn.is_connected()
        except Exception:
            return True
    return False


_LOST = ("Lost connection", "gone away", "2013:", "2006:", "2055:", "Connection was killed")


def connect(
    settings: Settings,
    *,
    database: bool = True,
    autocommit: bool = False,
    infile_dir: str | None = None,
) -> Any:
    """A C-extension connection in UTC and strict mode; ServiceUnavailableError when down.

    ``infile_dir``: the only directory ``LOAD DATA LOCAL INFILE`` may read from (the
    server cannot ask this client for any other file).
    """
    extra: dict[str, Any] = {}
    if infile_dir is not None:
        extra["allow_local_infile_in_path"] = infile_dir
    try:
        conn = mysql.connector.connect(
            host=settings.mysql_host,
            port=settings.mysql_port,
            user=settings.mysql_user,
            password=settings.mysql_password.get_secret_value(),
            database=settings.mysql_database if database else None,
            autocommit=autocommit,
            charset="utf8mb4",
            collation="utf8mb4_bin",
            allow_local_infile=False,
            connection_timeout=10,
            **extra,
        )
    except MySQLError as exc:
        if getattr(exc, "errno", None) == errorcode.ER_BAD_DB_ERROR and database:
            raise
        raise ServiceUnavailableError(
            f"MySQL at {settings.mysql_host}:{settings.mysql_port} did not accept a connection "
            f"(user={settings.mysql_user}): {exc.msg if hasattr(exc, 'msg') else exc}"
        ) from None
    _check_c_extension(conn)
    cur = conn.cursor()
    cur.execute(f"SET time_zone = '+00:00', sql_mode = '{SQL_MODE}'")
    cur.close()
    return conn


_warned = False


def _check_c_extension(conn: Any) -> None:
    """Say loudly (once) when the connector fell back to pure Python (half the speed)."""
    global _warned
    if type(conn).__name__ != "CMySQLConnection" and not _warned:
        _warned = True
        log.warning(
            "mysql-connector runs in pure Python (its C extension did not load: something "
            "imported ssl/hashlib first); the sink works at about half speed"
        )


def escaper(conn: Any) -> Callable[[Sequence[Any]], Sequence[bytes]]:
    """Row of Python values → SQL literals (quoted, escaped) for a multi-row INSERT.

    The C extension escapes a whole row in one C call; the pure-Python connection has
    no such method, so its converter is used value by value.
    """
    prepare = getattr(conn, "prepare_for_mysql", None)
    if prepare is not None:
        return prepare  # type: ignore[no-any-return]
    converter = conn.converter

    def pure(row: Sequence[Any]) -> Sequence[bytes]:
        out = []
        for value in row:
            literal = converter.quote(converter.escape(converter.to_mysql(value)))
            out.append(
                bytes(literal) if isinstance(literal, bytes | bytearray) else str(literal).encode()
            )
        return out

    return pure


def ensure_database(settings: Settings) -> None:
    """Create the configured database if it is missing (utf8mb4, binary collation)."""
    conn = connect(settings, database=False, autocommit=True)
    try:
        cur = conn.cursor()
        name = settings.mysql_database.replace("`", "``")
        cur.execute(
            f"CREATE DATABASE IF NOT EXISTS `{name}` "
            "DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )
        cur.close()
    finally:
        conn.close()


def local_infile_enabled(conn: Any) -> bool:
    """Whether the server accepts ``LOAD DATA LOCAL INFILE`` (MySQL 8 ships with it OFF)."""
    cur = conn.cursor()
    cur.execute("SELECT @@GLOBAL.local_infile")
    row = cur.fetchone()
    cur.close()
    return bool(row and int(row[0]))


def dialect_of(conn: Any) -> Dialect:
    cur = conn.cursor()
    cur.execute("SELECT VERSION()")
    row = cur.fetchone()
    cur.close()
    return Dialect.from_version(str(row[0]))


def close_quietly(conn: Any) -> None:
    """Close a connection that may already be dead."""
    if conn is None:
        return
    try:
        conn.close()
    except Exception:  # the server may have killed it already
        log.debug("closing a dead MySQL connection", exc_info=True)
