"""``txnpipe clv fit --transactions FILE ... --json`` prints exactly the CONTRACT §6 shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from txnpipe.cli import main

CUSTOMER_KEYS = {
    "customer_id",
    "frequency",
    "recency",
    "T",
    "monetary",
    "expected_purchases",
    "p_alive",
    "clv",
}


def test_json_contract_on_cdnow(
    cdnow_csv: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    report = tmp_path / "clv.html"
    code = main(
        [
            "clv",
            "fit",
            "--transactions",
            str(cdnow_csv),
            "--calibration-end",
            "1997-09-30",
            "--horizon-days",
            "273",
            "--json",
            "--report",
            str(report),
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"bgnbd", "gamma_gamma", "customers"}
    assert set(out["bgnbd"]) == {"r", "alpha", "a", "b", "log_likelihood"}
    assert set(out["gamma_gamma"]) == {"p", "q", "v", "log_likelihood"}
    assert round(out["bgnbd"]["r"], 3) == 0.243 and round(out["gamma_gamma"]["p"], 2) == 6.25
    assert len(out["customers"]) == 2357
    assert all(set(c) == CUSTOMER_KEYS for c in out["customers"])
    first = next(c for c in out["customers"] if c["customer_id"] == "0001")
    assert (first["frequency"], round(first["recency"], 2), round(first["T"], 2)) == (
        2,
        30.43,
        38.86,
    )
    assert first["monetary"] == 22.35  # (29.73 + 14.96) / 2, half up
    # 273 days = the 39-week holdout: FHL's customer 0001 expects ~1.23 purchases
    assert round(first["expected_purchases"], 2) == 1.23
    assert 0 < first["p_alive"] < 1 and first["clv"] > 0
    assert report.exists() and report.stat().st_size > 5_000


def test_text_output_lists_segments_and_top_customers(
    cdnow_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "clv",
                "fit",
                "--transactions",
                str(cdnow_csv),
                "--calibration-end",
                "1997-09-30",
                "--top",
                "3",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "BG/NBD" in text and "champions" in text
    assert len(re.findall(r"^\d{4} ", text, flags=re.M)) == 3


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--margin", "1.5"], "margin"),
        (["--discount-rate", "-0.1"], "discount"),
        (["--as-of", "2024-01-01"], "--as-of applies to the MySQL source"),
        (["--calibration-end", "1990-01-01"], "no customer purchased"),
    ],
    ids=["margin", "discount", "as-of-with-file", "calibration-before-data"],
)
def test_bad_usage_is_one_line(
    cdnow_csv: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    code = main(["clv", "fit", "--transactions", str(cdnow_csv), *extra])
    err = capsys.readouterr().err.strip()
    assert code in (1, 2) and message in err and "\n" not in err
