"""MySQL edge of the CLV stage: point-in-time purchases in, ``customer_clv`` rows out.

Input is the sink's audit table ``transaction_versions`` (CONTRACT §4): for every
transaction, the version *known at* the as-of instant T — its greatest ``updated_at <= T``,
the same definition as ``txnpipe query --as-of`` (CONTRACT §7; late replicas included, as
the source knew them then) — kept only if its status is counted. That is the corrected
purchase history as it was known then — reversals and declines removed, backdated dates
used — so a later correction, a replay or a late arrival cannot change a past model.
"""

from __future__ import annotations

# mysql-connector's C extension must load before anything imports ssl (see txnpipe.cli).
import contextlib

with contextlib.suppress(ImportError):  # pragma: no cover - import-order guard
    import _mysql_connector  # noqa: F401

import datetime as dt
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import mysql.connector
from mysql.connector.errors import Error as MySQLError

from clv.data import PurchaseLog, purchases_from_rows
from clv.pipeline import ClvResult
from common.errors import ConfigError, ServiceUnavailableError
from common.settings import Settings

log = logging.getLogger(__name__)

_ER_BAD_DB = 1049
_ER_NO_SUCH_TABLE = 1146

POINT_IN_TIME_SQL = """
SELECT customer_id, transaction_date, transaction_amount
FROM (
    SELECT customer_id, transaction_date, transaction_amount, status,
           ROW_NUMBER() OVER (
               PARTITION BY transaction_id ORDER BY updated_at DESC
           ) AS rn
    FROM transaction_versions
    WHERE updated_at <= %s
) AS known
WHERE rn = 1 AND status IN ({placeholders})
"""

CREATE_CUSTOMER_CLV = """
CREATE TABLE IF NOT EXISTS customer_clv (
    customer_id VARCHAR(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    model_version VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    segment VARCHAR(32) NOT NULL,
    frequency INT NOT NULL COMMENT 'repeat purchase days in the calibration period',
    recency DOUBLE NOT NULL COMMENT 'weeks from first to last purchase day',
    `T` DOUBLE NOT NULL COMMENT 'weeks from first purchase day to calibration end',
    monetary DECIMAL(14,2) NOT NULL COMMENT 'average repeat purchase value',
    expected_purchases DOUBLE NOT NULL COMMENT 'repeat purchases expected in the horizon',
    p_alive DOUBLE NOT NULL,
    clv DECIMAL(16,2) NOT NULL COMMENT 'margin x expected spend x discounted purchases',
    horizon_days INT NOT NULL,
    calibration_end DATE NOT NULL,
    as_of DATETIME(6) NULL COMMENT 'versions known at this instant (updated_at <= as_of)',
    computed_at DATETIME(6) NOT NULL,
    PRIMARY KEY (model_version, customer_id),
    KEY customer_clv_customer (customer_id),
    KEY customer_clv_value (model_version, clv)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
"""

INSERT_CUSTOMER_CLV = """
INSERT INTO customer_clv (customer_id, model_version, segment, frequency, recency, `T`,
    monetary, expected_purchases, p_alive, clv, horizon_days, calibration_end, as_of,
    computed_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
"""


@contextmanager
def connection(settings: Settings) -> Iterator[Any]:
    """A UTC, strict-mode connection; one-line errors for a missing server or database."""
    try:
        conn = mysql.connector.connect(
            host=settings.mysql_host,
            port=settings.mysql_port,
            user=settings.mysql_user,
            password=settings.mysql_password.get_secret_value(),
            database=settings.mysql_database,
            charset="utf8mb4",
            collation="utf8mb4_bin",
            autocommit=False,
            connection_timeout=10,
        )
    except MySQLError as exc:
        if getattr(exc, "errno", None) == _ER_BAD_DB:
            raise ConfigError(
                f"MySQL database={settings.mysql_database} does not exist; run the sink first "
                "or pass --transactions FILE"
            ) from None
        raise ServiceUnavailableError(
            f"MySQL at {settings.mysql_host}:{settings.mysql_port} did not accept a connection "
            f"(user={settings.mysql_user}): {getattr(exc, 'msg', exc)}"
        ) from None
    try:
        cur = conn.cursor()
        cur.execute("SET time_zone = '+00:00'")
        cur.execute("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION'")
        cur.close()
        yield conn
    finally:
        conn.close()


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _batches(cur: Any, size: int = 50_000) -> Iterator[tuple[Any, ...]]:
    """Rows in batches, so a large history is never held twice (rows and columns)."""
    while rows := cur.fetchmany(size):
        yield from rows


def read_purchases(settings: Settings, as_of: dt.datetime) -> PurchaseLog:
    """Counted purchases as known at ``as_of`` (``updated_at <= as_of``; aware or naive UTC)."""
    statuses = sorted(settings.counted)
    sql = POINT_IN_TIME_SQL.format(placeholders=", ".join(["%s"] * len(statuses)))
    with connection(settings) as conn:
        cur = conn.cursor()
        try:
            cur.execute(sql, (_naive_utc(as_of), *statuses))
        except MySQLError as exc:
            if getattr(exc, "errno", None) == _ER_NO_SUCH_TABLE:
                raise ConfigError(
                    f"table transaction_versions missing in database={settings.mysql_database}; "
                    "run the sink first or pass --transactions FILE"
                ) from None
            raise
        purchases = purchases_from_rows(
            (str(cid), day, Decimal(amount)) for cid, day, amount in _batches(cur)
        )
        cur.close()
    log.info("CLV input: %d counted purchases known at %s", purchases.size, as_of.isoformat())
    return purchases


def _dec(value: float, places: str) -> Decimal:
    return Decimal(repr(float(value))).quantize(Decimal(places), rounding=ROUND_HALF_UP)


def write_results(settings: Settings, result: ClvResult, batch: int = 5000) -> int:
    """Replace this model version's rows in ``customer_clv`` in one transaction."""
    s = result.summary
    computed = _naive_utc(result.computed_at)
    as_of = result.options.as_of
    rows = [
        (
            s.customer_ids[i],
            result.model_version,
            result.segment[i],
            int(s.frequency[i]),
            float(s.recency[i]),
            float(s.T[i]),
            s.monetary_decimal(i),
            float(result.expected_purchases[i]),
            float(result.p_alive[i]),
            _dec(result.clv[i], "0.01"),
            int(result.options.horizon_days),
            result.options.calibration_end,
            _naive_utc(as_of) if as_of is not None else None,
            computed,
        )
        for i in range(s.size)
    ]
    with connection(settings) as conn:
        cur = conn.cursor()
        cur.execute(CREATE_CUSTOMER_CLV)
        cur.execute("DELETE FROM customer_clv WHERE model_version = %s", (result.model_version,))
        for start in range(0, len(rows), batch):
            cur.executemany(INSERT_CUSTOMER_CLV, rows[start : start + batch])
        conn.commit()
        cur.close()
    log.info("customer_clv: %d rows for model_version=%s", len(rows), result.model_version)
    return len(rows)
