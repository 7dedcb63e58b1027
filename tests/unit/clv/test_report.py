"""The HTML report is one self-contained file: inline SVG, no scripts, no external URLs."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from clv.data import PurchaseLog
from clv.pipeline import ClvOptions, run
from clv.report import write_report


def test_report_is_self_contained_and_has_every_chart(
    cdnow_log: PurchaseLog, tmp_path: Path
) -> None:
    result = run(cdnow_log, ClvOptions(calibration_end=dt.date(1997, 9, 30), horizon_days=365))
    page = write_report(result, tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert not re.search(r"(src|href)\s*=", page, flags=re.I)  # nothing to fetch
    assert "<script" not in page.lower()
    assert page.count("<svg") == 6
    for title in (
        "Customers per segment",
        "Total CLV per segment",
        "CLV distribution",
        "Top 15 customers by CLV",
        "Holdout purchases per customer by calibration frequency",
        "Cumulative repeat purchases",
    ):
        assert title in page
    assert "1,882 actual repeat purchases" in page  # the 39-week CDNOW holdout


def test_customer_ids_are_escaped(tmp_path: Path) -> None:
    from decimal import Decimal

    from clv.data import purchases_from_rows

    rows = []
    for i in range(30):
        cid = f"<b>{i}</b>" if i == 0 else f"c{i}"
        for k in range(1 + i % 4):
            rows.append(
                (cid, dt.date(2024, 1, 1) + dt.timedelta(days=7 * k + i), Decimal("10.00") + k)
            )
    result = run(purchases_from_rows(rows), ClvOptions(calibration_end=dt.date(2024, 3, 31)))
    page = write_report(result, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<b>0</b>" not in page and "&lt;b&gt;0&lt;/b&gt;" in page


def test_a_holdout_shorter_than_a_week_is_left_out(cdnow_log: PurchaseLog, tmp_path: Path) -> None:
    options = ClvOptions(
        calibration_end=dt.date(1997, 9, 30), holdout_end=dt.date(1997, 10, 3), horizon_days=30
    )
    page = write_report(run(cdnow_log, options), tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Holdout purchases per customer" not in page and "actual repeat purchases" not in page
    assert page.count("<svg") == 5  # the cumulative tracking chart still shows
