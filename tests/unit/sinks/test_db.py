"""Which MySQL errors make the sink retry the batch, and which bisect it to the DLQ."""

from __future__ import annotations

import pytest
from mysql.connector import errors

from sinks.db import is_transient


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (
            errors.OperationalError(msg="Lost connection to MySQL server during query", errno=2013),
            True,
        ),
        (errors.OperationalError(msg="MySQL server has gone away", errno=2006), True),
        (errors.DatabaseError(msg="Connection was killed", errno=1927), True),
        (errors.InternalError(msg="Deadlock found when trying to get lock", errno=1213), True),
        (errors.DatabaseError(msg="Lock wait timeout exceeded", errno=1205), True),
        (
            errors.ProgrammingError(
                msg="Failed processing format-parameters; 2013: Lost connection"
            ),
            True,
        ),
        (errors.DataError(msg="Data too long for column 'customer_id'", errno=1406), False),
        (errors.DataError(msg="Out of range value for column 'amount'", errno=1264), False),
        (errors.IntegrityError(msg="Check constraint 'ck_ledger_count' failed", errno=4025), False),
        (ValueError("not a database error"), False),
    ],
    ids=[
        "lost-connection",
        "gone-away",
        "killed",
        "deadlock",
        "lock-wait",
        "wrapped-lost",
        "too-long",
        "out-of-range",
        "check-constraint",
        "not-mysql",
    ],
)
def test_transient_or_permanent(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


class _Dead:
    def is_connected(self) -> bool:
        return False


def test_any_error_on_a_dead_connection_is_transient() -> None:
    error = errors.DatabaseError(msg="something odd", errno=1105)
    assert is_transient(error) is False
    assert is_transient(error, _Dead()) is True


def test_the_c_extensions_own_error_class_is_transient() -> None:
    """With the C extension loaded, a killed connection can surface as its raw
    ``MySQLInterfaceError`` (not a mysql.connector error): the batch must be retried."""
    from sinks.db import DB_ERRORS, MySQLInterfaceError, is_transient

    exc = MySQLInterfaceError("Lost connection to MySQL server during query")
    assert isinstance(exc, DB_ERRORS)
    assert is_transient(exc)
