"""As-of answers and restatements from MySQL (``txnpipe query --as-of``, ``txnpipe
restatements``): the stored procedures of migration 3 (``sinks/asof_sql.py``), so the CLI
runs exactly the SQL a user can ``CALL`` (docs/as-of.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime
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
from sinks import asof_sql, db, restatements
from sinks.batch import naive_utc
from sinks.lookups import to_cents

_ER_NO_SUCH_DB, _ER_NO_SUCH_TABLE, _ER_NO_SUCH_PROCEDURE = 1049, 1146, 1305


def counted_list(counted: Collection[str]) -> str:
    """The counted statuses as the procedures take them (``FIND_IN_SET``: a comma list)."""
    return ",".join(sorted(counted))


def _missing(settings: Settings, exc: MySQLError) -> Exception:
    errno = getattr(exc, "errno", None)
    if errno in (_ER_NO_SUCH_DB, _ER_NO_SUCH_TABLE):
        return TxnpipeError(
            f"MySQL database={settings.mysql_database} has no sink tables yet; "
            "run `txnpipe sink` (or `txnpipe run`) first"
        )
    if errno == _ER_NO_SUCH_PROCEDURE:
        return TxnpipeError(
            f"MySQL database={settings.mysql_database} lacks the as-of procedures "
            "(migration 3); start `txnpipe sink` once with this version to add them"
        )
    return exc


def _call(cur: Any, name: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    cur.callproc(name, tuple(args))
    rows: list[tuple[Any, ...]] = []
    with warnings.catch_warnings():  # connector 9: "stored_results() becomes a property"
        warnings.simplefilter("ignore", DeprecationWarning)
        for result in cur.stored_results():
            rows.extend(result.fetchall())
    return rows


def rows_as_of(
    cur: Any, question: str, at: datetime, counted: Collection[str], limit: int | None
) -> tuple[CategoryRow, ...] | tuple[CustomerRow, ...] | tuple[MonthRow, ...]:
    """The answer to ``question`` as known at ``at``, in the contract's order."""
    args = (naive_utc(at), counted_list(counted))
    if question == "categories":
        rows = _call(cur, "txnpipe_as_of_categories", args)
        cats = [CategoryRow(_text(c), int(n), to_cents(s)) for c, n, s in rows]
        return sort_categories(cats)[: limit or None]
    if question == "top-customers":
        rows = _call(cur, "txnpipe_as_of_top_customers", (*args, limit or 5))
        return top_customers([CustomerRow(_text(c), to_cents(s)) for c, s in rows], limit or 5)
    if question == "monthly":
        rows = _call(cur, "txnpipe_as_of_monthly", args)
        return sort_months([MonthRow(_text(m), to_cents(s)) for m, s in rows])
    raise ValueError(f"question={question!r} is not one of categories, top-customers, monthly")


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes | bytearray) else str(value)


def answer(settings: Settings, question: Question | str, at: datetime, limit: int | None) -> Answer:
    """``question`` as known at ``at`` (CONTRACT §7); ``Answer.as_of`` is ``at``."""
    conn = _connect(settings)
    try:
        cur = conn.cursor()
        try:
            rows = rows_as_of(cur, question, at, settings.counted, limit)
        except MySQLError as exc:
            raise _missing(settings, exc) from None
        cur.close()
    finally:
        db.close_quietly(conn)
    return Answer(question, rows, "mysql", at.astimezone(UTC))  # type: ignore[arg-type]


def _connect(settings: Settings) -> Any:
    try:
        return db.connect(settings, autocommit=True)
    except MySQLError as exc:
        raise _missing(settings, exc) from None


# -- restatements ------------------------------------------------------------------------

_MONTH_SUMS = f"""
SELECT LEFT(SUBSTRING(w, 41), 7) AS month, SUM({asof_sql.AMOUNT})
FROM {asof_sql.known("transaction_date", asof_sql.CATEGORY_INDEX, at="%s", counted="%s")}
WHERE {asof_sql.COUNTED} AND SUBSTRING(w, 41) >= %s AND SUBSTRING(w, 41) < %s
GROUP BY month
"""

# Every version (up to now) of each transaction with a version updated after ``since``.
_CANDIDATES = f"""
SELECT v.transaction_id, v.updated_at, v.customer_id, v.product_category,
       v.transaction_amount, v.transaction_date, v.status
FROM {asof_sql.VERSIONS} v
JOIN (SELECT DISTINCT transaction_id FROM {asof_sql.VERSIONS}
      FORCE INDEX ({asof_sql.CATEGORY_INDEX}) WHERE updated_at > %s AND updated_at <= %s) c
  ON c.transaction_id = v.transaction_id
WHERE v.updated_at <= %s
"""


def month_sums(
    cur: Any, at: datetime, counted: Collection[str], first: date, end: date
) -> dict[restatements.Month, int]:
    """Cents per month of ``transaction_date`` in ``[first, end)`` as known at ``at``."""
    cur.execute(
        _MONTH_SUMS,
        # placeholders in text order: the counted list (inside MAX), then T
        (counted_list(counted), naive_utc(at), first.isoformat(), end.isoformat()),
    )
    out: dict[restatements.Month, int] = {}
    for month, cents in cur.fetchall():
        text = _text(month)
        out[(int(text[:4]), int(text[5:7]))] = to_cents(cents)
    return out


def candidates(cur: Any, since: datetime, now: datetime) -> dict[str, list[restatements.Version]]:
    """Versions (up to ``now``) of the transactions with one updated in ``(since, now]``."""
    now_naive = naive_utc(now)
    cur.execute(_CANDIDATES, (naive_utc(since), now_naive, now_naive))
    return restatements.group(
        restatements.Version(
            _text(tid), updated.replace(tzinfo=UTC), _text(customer), _text(category),
            to_cents(amount), day, _text(status),
        )
        for tid, updated, customer, category, amount, day, status in cur.fetchall()
    )  # fmt: skip


def restate(
    settings: Settings, months: int, close_day: int, now: datetime
) -> list[restatements.MonthRestatement]:
    """The last ``months`` closed months: at close, now, and what moved them."""
    chosen = restatements.closed_months(now, months, close_day)
    first = date(chosen[0][0], chosen[0][1], 1)
    after = restatements.next_month(chosen[-1])
    end = date(after[0], after[1], 1)
    conn = _connect(settings)
    try:
        cur = conn.cursor()
        try:
            sums = month_sums(cur, now, settings.counted, first, end)
            moved = candidates(cur, restatements.close_at(chosen[0], close_day), now)
        except MySQLError as exc:
            raise _missing(settings, exc) from None
        cur.close()
    finally:
        db.close_quietly(conn)
    return restatements.restate(chosen, close_day, now, moved, sums, settings.counted)
