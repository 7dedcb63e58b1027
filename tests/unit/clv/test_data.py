"""BTYD preparation: same-day merge, weeks, cohort, exact money, CSV errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest

from clv.data import TransactionsFileError, purchases_from_rows, read_purchases_csv, summarise

D = dt.date


def test_same_day_purchases_merge_and_time_is_in_weeks() -> None:
    log = purchases_from_rows(
        [
            ("a", D(2024, 1, 1), Decimal("10.00")),
            ("a", D(2024, 1, 1), Decimal("5.00")),  # same day: one purchase of 15.00
            ("a", D(2024, 1, 8), Decimal("20.005")),  # rounds half up to 20.01
            ("a", D(2024, 1, 15), Decimal("30.00")),
            ("a", D(2024, 1, 22), Decimal("7.00")),  # after calibration: holdout
            ("b", D(2024, 1, 10), Decimal("1.00")),
            ("c", D(2024, 1, 20), Decimal("9.99")),  # first purchase after calibration end
        ]
    )
    s = summarise(log, calibration_end=D(2024, 1, 15), holdout_end=D(2024, 1, 31))
    assert s.customer_ids == ("a", "b")
    assert s.frequency.tolist() == [2, 0]
    assert s.recency.tolist() == [2.0, 0.0]
    assert s.T.tolist() == [2.0, 5 / 7]
    assert s.repeat_cents.tolist() == [5001, 0]
    assert s.total_cents.tolist() == [6501, 100]
    assert s.monetary_decimal(0) == Decimal("25.01")  # 50.01 / 2, half up
    assert s.monetary_decimal(1) == Decimal("0.00")
    assert s.holdout_frequency.tolist() == [1, 0]
    assert s.excluded_later_customers == 1
    assert s.holdout_weeks == pytest.approx(16 / 7)


def test_csv_reads_contract_columns_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        "amount,customer_id,date,note\n12.50,c1,2024-03-01,x\n7,c1,2024-03-05T23:30:00-02:00,y\n"
    )
    log = read_purchases_csv(path)
    assert log.customer_ids == ("c1",)
    assert log.cents.tolist() == [1250, 700]
    assert [dt.date.fromordinal(int(d)) for d in log.day] == [D(2024, 3, 1), D(2024, 3, 6)]  # UTC


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("customer,date,amount\n", "lacks column(s) customer_id"),
        ("customer_id,date,amount\nc1,2024-02-30,1.00\n", "line=2"),
        ("customer_id,date,amount\nc1,2024-02-01,abc\n", "line=2"),
        ("customer_id,date,amount\nc1,2024-02-01,-3.00\n", "negative amount"),
        ("customer_id,date,amount\n,2024-02-01,3.00\n", "empty customer_id"),
    ],
    ids=["no-customer-column", "bad-date", "bad-amount", "negative", "empty-id"],
)
def test_csv_errors_name_file_and_line(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(body)
    with pytest.raises(
        TransactionsFileError, match=needle.replace("(", r"\(").replace(")", r"\)")
    ) as err:
        read_purchases_csv(path)
    assert err.value.exit_code == 2


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(TransactionsFileError, match="cannot open"):
        read_purchases_csv(tmp_path / "nope.csv")
