"""``txnpipe clv fit`` against MariaDB/MySQL: point-in-time input, ``customer_clv`` output.

The sink that owns ``transaction_versions`` is built separately; this test creates that
table itself, in its own database, with the columns CONTRACT §4 and the sink's brief name
(transaction_id, updated_at, customer_id, product_category, transaction_amount,
transaction_date, status, counted, accepted_at), and writes versions the way the sink does.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from clv.store import read_purchases
from common.settings import Settings
from txnpipe.cli import main

DDL = """
CREATE TABLE transaction_versions (
    transaction_id VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    updated_at DATETIME(6) NOT NULL,
    customer_id VARCHAR(64) COLLATE utf8mb4_bin NOT NULL,
    product_category VARCHAR(128) NOT NULL,
    transaction_amount DECIMAL(12,2) NOT NULL,
    transaction_date DATE NOT NULL,
    status VARCHAR(16) NOT NULL,
    counted TINYINT(1) NOT NULL,
    accepted_at DATETIME(6) NOT NULL,
    PRIMARY KEY (transaction_id, updated_at)
) DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin
"""
INSERT = "INSERT INTO transaction_versions VALUES (%s, %s, %s, 'music', %s, %s, %s, %s, %s)"

AS_OF = dt.datetime(2024, 7, 1, tzinfo=dt.UTC)
LATER = dt.datetime(2024, 9, 1, tzinfo=dt.UTC)


def _connect(settings: Settings) -> Any:
    import mysql.connector

    return mysql.connector.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.mysql_user,
        password=settings.mysql_password.get_secret_value(),
        database=settings.mysql_database,
        autocommit=True,
    )


def _version(
    tid: str, cust: str, amount: str, day: dt.date, status: str, accepted: dt.datetime
) -> tuple[object, ...]:
    naive = accepted.replace(tzinfo=None)
    return (
        tid,
        naive - dt.timedelta(seconds=1),
        cust,
        Decimal(amount),
        day,
        status,
        int(status in ("pending", "approved")),
        naive,
    )


def _history() -> list[tuple[object, ...]]:
    """120 ordinary customers, plus the corrections the point-in-time read must honour."""
    rng = np.random.default_rng(42)
    rows: list[tuple[object, ...]] = []
    start = dt.date(2024, 1, 1)
    for c in range(120):
        day = start + dt.timedelta(days=int(rng.integers(0, 60)))
        k = 0
        while day < dt.date(2024, 8, 31):
            accepted = dt.datetime.combine(day, dt.time(12), dt.UTC)
            rows.append(
                _version(
                    f"t{c}-{k}", f"cust{c:03d}", f"{rng.gamma(4, 8):.2f}", day, "approved", accepted
                )
            )
            day += dt.timedelta(days=int(rng.exponential(25 + 10 * (c % 4))) + 1)
            k += 1
            if rng.random() < 0.15:
                break
    at = lambda d: dt.datetime.combine(d, dt.time(9), dt.UTC)  # noqa: E731
    special = [
        # alice: a purchase later reversed (before AS_OF): gone
        _version("a1", "alice", "50.00", dt.date(2024, 2, 1), "approved", at(dt.date(2024, 2, 1))),
        _version("a1", "alice", "50.00", dt.date(2024, 2, 1), "reversed", at(dt.date(2024, 2, 3))),
        # alice: pending then approved with a corrected amount: the last version counts
        _version("a2", "alice", "20.00", dt.date(2024, 1, 5), "pending", at(dt.date(2024, 1, 5))),
        _version("a2", "alice", "25.50", dt.date(2024, 1, 5), "approved", at(dt.date(2024, 1, 6))),
        _version("a3", "alice", "10.00", dt.date(2024, 3, 1), "approved", at(dt.date(2024, 3, 1))),
        # bob: declined never counts; a backdated date is used
        _version("b1", "bob", "99.00", dt.date(2024, 1, 10), "declined", at(dt.date(2024, 1, 10))),
        _version("b2", "bob", "30.00", dt.date(2024, 6, 10), "approved", at(dt.date(2024, 6, 10))),
        _version("b2", "bob", "30.00", dt.date(2024, 2, 1), "approved", at(dt.date(2024, 6, 12))),
        _version("b3", "bob", "12.00", dt.date(2024, 4, 1), "approved", at(dt.date(2024, 4, 1))),
        # carol: approved before AS_OF, reversed after it -> in the AS_OF model, not later
        _version("c1", "carol", "40.00", dt.date(2024, 3, 3), "approved", at(dt.date(2024, 3, 3))),
        _version("c1", "carol", "40.00", dt.date(2024, 3, 3), "reversed", at(dt.date(2024, 8, 1))),
        _version(
            "c2", "carol", "15.00", dt.date(2024, 1, 20), "approved", at(dt.date(2024, 1, 20))
        ),
        # dave: only known after AS_OF
        _version("d1", "dave", "70.00", dt.date(2024, 6, 20), "approved", at(dt.date(2024, 7, 2))),
        # erin: updated at the source before AS_OF, received after it (a late replica): known
        # at AS_OF, as `query --as-of` has it (knowledge time is updated_at, not accepted_at)
        ("e1", dt.datetime(2024, 6, 30, 9), "erin", Decimal("18.00"), dt.date(2024, 6, 30),
         "approved", 1, dt.datetime(2024, 7, 5, 9)),
    ]  # fmt: skip
    return rows + special


@pytest.fixture
def versions_db(mysql_db: Settings) -> Iterator[Settings]:
    conn = _connect(mysql_db)
    cur = conn.cursor()
    cur.execute(DDL)
    cur.executemany(INSERT, _history())
    conn.close()
    yield mysql_db


def _customer_rows(
    settings: Settings, as_of: dt.datetime, customer: str
) -> list[tuple[dt.date, Decimal]]:
    log = read_purchases(settings, as_of)
    idx = log.customer_ids.index(customer) if customer in log.customer_ids else -1
    mask = log.customer == idx
    return sorted(
        (dt.date.fromordinal(int(d)), Decimal(int(c)) / 100)
        for d, c in zip(log.day[mask], log.cents[mask], strict=True)
    )


def test_point_in_time_purchases(versions_db: Settings) -> None:
    assert _customer_rows(versions_db, AS_OF, "alice") == [
        (dt.date(2024, 1, 5), Decimal("25.5")),
        (dt.date(2024, 3, 1), Decimal("10")),
    ]
    assert _customer_rows(versions_db, AS_OF, "bob") == [
        (dt.date(2024, 2, 1), Decimal("30")),
        (dt.date(2024, 4, 1), Decimal("12")),
    ]
    assert _customer_rows(versions_db, AS_OF, "carol") == [
        (dt.date(2024, 1, 20), Decimal("15")),
        (dt.date(2024, 3, 3), Decimal("40")),
    ]
    assert _customer_rows(versions_db, AS_OF, "dave") == []
    assert _customer_rows(versions_db, AS_OF, "erin") == [(dt.date(2024, 6, 30), Decimal("18"))]
    # later: carol's reversal and dave's purchase are known
    assert _customer_rows(versions_db, LATER, "carol") == [(dt.date(2024, 1, 20), Decimal("15"))]
    assert _customer_rows(versions_db, LATER, "dave") == [(dt.date(2024, 6, 20), Decimal("70"))]


def _cli(settings: Settings, *extra: str) -> int:
    flags = [
        "--mysql-host",
        settings.mysql_host,
        "--mysql-port",
        str(settings.mysql_port),
        "--mysql-user",
        settings.mysql_user,
        "--mysql-database",
        settings.mysql_database,
    ]
    if settings.mysql_password.get_secret_value():
        flags += ["--mysql-password", settings.mysql_password.get_secret_value()]
    return main(["clv", "fit", *flags, *extra])


def test_fit_from_mysql_writes_customer_clv(
    versions_db: Settings, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "clv.html"
    args = ("--as-of", AS_OF.isoformat(), "--calibration-end", "2024-05-31")
    assert _cli(versions_db, *args, "--report", str(report), "--json") == 0
    # the holdout (June, up to the as-of day) is in the report
    assert "Holdout 2024-05-31 → 2024-07-01" in report.read_text(encoding="utf-8")
    out = json.loads(capsys.readouterr().out)
    by_id = {c["customer_id"]: c for c in out["customers"]}
    assert "dave" not in by_id  # not known at AS_OF
    assert (by_id["carol"]["frequency"], by_id["carol"]["monetary"]) == (1, 40.0)
    assert (by_id["alice"]["frequency"], by_id["alice"]["monetary"]) == (1, 10.0)

    conn = _connect(versions_db)
    cur = conn.cursor()
    cur.execute("SELECT model_version, COUNT(*) FROM customer_clv GROUP BY model_version")
    versions = cur.fetchall()
    assert versions == [("bgnbd-gg-v1@2024-05-31/asof=20240701T000000Z", len(out["customers"]))]
    cur.execute(
        "SELECT segment, frequency, monetary, clv, p_alive, expected_purchases, as_of "
        "FROM customer_clv WHERE customer_id = 'carol'"
    )
    segment, frequency, monetary, clv, p_alive, expected, as_of = cur.fetchone()
    assert isinstance(monetary, Decimal) and isinstance(clv, Decimal)  # DECIMAL columns
    assert (frequency, monetary) == (1, Decimal("40.00"))
    assert clv == Decimal(str(by_id["carol"]["clv"])).quantize(Decimal("0.01"))
    assert 0 < p_alive <= 1 and expected > 0 and segment
    assert as_of == AS_OF.replace(tzinfo=None)

    # the same as-of again replaces its rows; a later as-of is a new model version
    assert _cli(versions_db, "--as-of", AS_OF.isoformat(), "--calibration-end", "2024-05-31") == 0
    assert _cli(versions_db, "--as-of", LATER.isoformat(), "--calibration-end", "2024-05-31") == 0
    cur.execute(
        "SELECT model_version, COUNT(*) FROM customer_clv GROUP BY model_version ORDER BY 1"
    )
    counts = dict(cur.fetchall())
    assert counts["bgnbd-gg-v1@2024-05-31/asof=20240701T000000Z"] == len(out["customers"])
    assert len(counts) == 2
    cur.execute(
        "SELECT monetary FROM customer_clv WHERE customer_id = 'carol' AND model_version LIKE %s",
        ("%asof=20240901T000000Z",),
    )
    assert cur.fetchone() == (Decimal("0.00"),)  # the reversal is known by then: no repeat
    conn.close()


def test_missing_versions_table_is_a_clear_error(
    mysql_db: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(mysql_db) == 2
    assert "transaction_versions missing" in capsys.readouterr().err
