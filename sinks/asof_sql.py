"""Migration 3: what as-of answers need in MySQL — the stale flag, two covering indexes and
the stored procedures that answer the seed's three questions as known at an instant.

*Known at T* (CONTRACT §7): per transaction, its valid version with the greatest
``updated_at <= T`` among every version the sink stored, late replicas included (they are
in ``transaction_versions`` flagged ``stale``). ``updated_at`` is the source's own time, so
the answer does not depend on when or in which order txnpipe received the versions.

How it stays fast (see docs/as-of.md): one ordered pass over a narrow covering index
``(transaction_id, updated_at, status, transaction_amount, transaction_date, X)`` with a
streaming ``GROUP BY transaction_id``; each group keeps ``MAX()`` of one fixed-width packed
string ``updated_at (26) | counted flag (1) | amount (13, zero-padded) | X`` — the packed
value of the newest version at or before T, since ``updated_at`` leads it and is unique per
transaction. ``X`` (category, customer or date) is read back from position 41. InnoDB keys
are at most 3072 bytes, so category and customer (1020 bytes each) need an index each.

Plain SQL common to MySQL 8 and MariaDB 10.11: ``DROP PROCEDURE IF EXISTS`` + ``CREATE
PROCEDURE`` (MySQL has no ``CREATE OR REPLACE PROCEDURE``), ``SQL SECURITY INVOKER`` (a
caller needs SELECT on the table, nothing more), ``LIMIT`` of a procedure parameter.
"""

from __future__ import annotations

VERSIONS = "transaction_versions"
CATEGORY_INDEX = "ix_versions_asof_category"
CUSTOMER_INDEX = "ix_versions_asof_customer"

PROCEDURES = (
    "txnpipe_as_of_categories",
    "txnpipe_as_of_top_customers",
    "txnpipe_as_of_monthly",
)

# A check returning a count > 0 means the statement beside it was applied already
# (MySQL 8 has no ADD COLUMN IF NOT EXISTS / ADD INDEX IF NOT EXISTS).
_HAS_COLUMN = (
    "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
    f"AND TABLE_NAME = '{VERSIONS}' AND COLUMN_NAME = '{{name}}'"
)
_HAS_INDEX = (
    "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
    f"AND TABLE_NAME = '{VERSIONS}' AND INDEX_NAME = '{{name}}'"
)

_KEY = "transaction_id, updated_at, status, transaction_amount, transaction_date"

GUARDED: tuple[tuple[str, str], ...] = (
    (
        _HAS_COLUMN.format(name="stale"),
        f"ALTER TABLE {VERSIONS} ADD COLUMN stale BOOLEAN NOT NULL DEFAULT 0",
    ),
    (
        _HAS_INDEX.format(name=CATEGORY_INDEX),
        f"ALTER TABLE {VERSIONS} ADD INDEX {CATEGORY_INDEX} ({_KEY}, product_category)",
    ),
    (
        _HAS_INDEX.format(name=CUSTOMER_INDEX),
        f"ALTER TABLE {VERSIONS} ADD INDEX {CUSTOMER_INDEX} ({_KEY}, customer_id)",
    ),
)


def known(column: str, index: str, at: str = "p_at", counted: str = "p_counted") -> str:
    """Derived table ``known(w)``: one packed row per transaction known at ``at``."""
    return (
        "(SELECT MAX(CONCAT(updated_at, IF(FIND_IN_SET(status, "
        f"{counted}) > 0, '1', '0'), LPAD(transaction_amount, 13, '0'), {column})) AS w "
        f"FROM {VERSIONS} FORCE INDEX ({index}) WHERE updated_at <= {at} "
        "GROUP BY transaction_id) AS known"
    )


# Read back from the packed value: counted flag, amount, and the grouped column.
COUNTED = "SUBSTRING(w, 27, 1) = '1'"
AMOUNT = "CAST(SUBSTRING(w, 28, 13) AS DECIMAL(14,2))"
VALUE = "CAST(SUBSTRING(w, 41) AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_bin"

CATEGORIES_BODY = f"""
SELECT {VALUE} AS product_category, COUNT(*) AS total_transactions,
       SUM({AMOUNT}) AS total_amount
FROM {known("product_category", CATEGORY_INDEX)}
WHERE {COUNTED}
GROUP BY product_category
ORDER BY product_category"""

TOP_CUSTOMERS_BODY = f"""
SELECT {VALUE} AS customer_id, SUM({AMOUNT}) AS total_amount
FROM {known("customer_id", CUSTOMER_INDEX)}
WHERE {COUNTED}
GROUP BY customer_id
ORDER BY total_amount DESC, customer_id
LIMIT p_limit"""

# The window of the seed's third query at T: transaction_date >= date(T) - 1 year.
MONTHLY_BODY = f"""
SELECT LEFT(SUBSTRING(w, 41), 7) AS month, SUM({AMOUNT}) AS total_amount
FROM {known("transaction_date", CATEGORY_INDEX)}
WHERE {COUNTED}
  AND SUBSTRING(w, 41) >= DATE_FORMAT(DATE_SUB(DATE(p_at), INTERVAL 1 YEAR), '%Y-%m-%d')
GROUP BY month
ORDER BY month"""

_PARAMS = "IN p_at DATETIME(6), IN p_counted VARCHAR(255)"


def _procedure(name: str, params: str, body: str, comment: str) -> list[str]:
    return [
        f"DROP PROCEDURE IF EXISTS {name}",
        f"CREATE PROCEDURE {name}({params}) READS SQL DATA SQL SECURITY INVOKER "
        f"COMMENT '{comment}' {body.strip()}",
    ]


def statements() -> list[str]:
    """The procedures of migration 3 (idempotent: dropped and created again)."""
    return [
        *_procedure(
            "txnpipe_as_of_categories", _PARAMS, CATEGORIES_BODY,
            "txnpipe: seed query 1 as known at p_at (counted statuses: p_counted, comma list)",
        ),
        *_procedure(
            "txnpipe_as_of_top_customers", f"{_PARAMS}, IN p_limit INT", TOP_CUSTOMERS_BODY,
            "txnpipe: seed query 2 as known at p_at, the p_limit largest",
        ),
        *_procedure(
            "txnpipe_as_of_monthly", _PARAMS, MONTHLY_BODY,
            "txnpipe: seed query 3 as known at p_at (transaction_date >= date(p_at) - 1 year)",
        ),
    ]  # fmt: skip
