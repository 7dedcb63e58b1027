"""The three seed questions answered from MySQL (``txnpipe query ... --source mysql``).

``categories`` and ``monthly`` are the seed's queries on ``transactions`` with the money
total added; ``monthly`` keeps the seed's ``WHERE transaction_date >=
DATE_SUB(NOW(), INTERVAL 1 YEAR)`` verbatim (sessions run in UTC).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mysql.connector.errors import Error as MySQLError

from common.errors import TxnpipeError
from common.settings import Settings
from schemas.answers import (
    Answer,
    CategoryRow,
    CustomerRow,
    MonthRow,
    Question,
    sort_categories,
    sort_months,
    top_customers,
)
from sinks import db, schema

CATEGORIES_SQL = f"""
SELECT product_category, COUNT(*) AS total_transactions, SUM(transaction_amount)
FROM {schema.CURRENT}
GROUP BY product_category
"""

TOP_CUSTOMERS_SQL = f"""
SELECT customer_id, SUM(transaction_amount) AS total
FROM {schema.CURRENT}
GROUP BY customer_id
ORDER BY total DESC, customer_id
LIMIT %s
"""

MONTHLY_SQL = f"""
SELECT DATE_FORMAT(transaction_date, '%Y-%m') AS month, SUM(transaction_amount)
FROM {schema.CURRENT}
WHERE transaction_date >= DATE_SUB(NOW(), INTERVAL 1 YEAR)
GROUP BY month
ORDER BY month
"""


def to_cents(amount: Decimal | int | None) -> int:
    """DECIMAL(…,2) → integer cents, exactly."""
    if amount is None:
        return 0
    return int(Decimal(amount).scaleb(2).to_integral_exact())


def answer(settings: Settings, question: Question | str, limit: int | None) -> Answer:
    """Rows for ``question`` from the sink's tables, in the contract's order."""
    try:
        conn = db.connect(settings, autocommit=True)
    except MySQLError as exc:
        raise _no_tables(settings, exc) from None
    try:
        cur = conn.cursor()
        try:
            rows = _rows(cur, question, limit)
        except MySQLError as exc:
            raise _no_tables(settings, exc) from None
        # when the newest version was accepted upstream (indexed; MAX(updated_at) is not)
        cur.execute(f"SELECT MAX(accepted_at) FROM {schema.VERSIONS}")
        newest = cur.fetchone()
        cur.execute(f"SELECT raw_partition, last_source_offset FROM {schema.RAW_POSITIONS}")
        offsets = {int(p): int(o) for p, o in cur.fetchall()}
        cur.close()
    finally:
        db.close_quietly(conn)
    as_of = newest[0] if newest and newest[0] is not None else None
    if as_of is not None:
        from datetime import UTC

        as_of = as_of.replace(tzinfo=UTC)
    return Answer(question, rows, "mysql", as_of, offsets)  # type: ignore[arg-type]


def _no_tables(settings: Settings, exc: MySQLError) -> Exception:
    if getattr(exc, "errno", None) in (1049, 1146):  # no such database / table
        return TxnpipeError(
            f"MySQL database={settings.mysql_database} has no sink tables yet; "
            "run `txnpipe sink` (or `txnpipe run`) first"
        )
    return exc


def _rows(cur: Any, question: str, limit: int | None) -> Any:
    if question == "categories":
        cur.execute(CATEGORIES_SQL)
        rows = [CategoryRow(str(c), int(n), to_cents(s)) for c, n, s in cur.fetchall()]
        return sort_categories(rows)[: limit or None]
    if question == "top-customers":
        cur.execute(TOP_CUSTOMERS_SQL, (limit or 5,))
        return top_customers(
            [CustomerRow(str(c), to_cents(s)) for c, s in cur.fetchall()], limit or 5
        )
    if question == "monthly":
        cur.execute(MONTHLY_SQL)
        return sort_months([MonthRow(str(m), to_cents(s)) for m, s in cur.fetchall()])
    raise ValueError(f"question={question!r} is not one of categories, top-customers, monthly")
