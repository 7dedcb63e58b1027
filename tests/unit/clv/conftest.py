"""CDNOW fixtures shared by the CLV unit tests (the sample file, its summary, the fits)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from clv import bgnbd, gamma_gamma
from clv.data import CustomerSummary, PurchaseLog, read_cdnow, summarise

CDNOW = Path(__file__).resolve().parents[2] / "data" / "cdnow" / "CDNOW_sample.txt"
CALIBRATION_END = dt.date(1997, 9, 30)  # 39 weeks from 1997-01-01
HOLDOUT_END = dt.date(1998, 6, 30)  # 39 more weeks


@pytest.fixture(scope="session")
def cdnow_log() -> PurchaseLog:
    return read_cdnow(CDNOW)


@pytest.fixture(scope="session")
def cdnow(cdnow_log: PurchaseLog) -> CustomerSummary:
    return summarise(cdnow_log, CALIBRATION_END, HOLDOUT_END)


@pytest.fixture(scope="session")
def cdnow_bgnbd(cdnow: CustomerSummary) -> bgnbd.BetaGeoFit:
    return bgnbd.fit(cdnow.frequency, cdnow.recency, cdnow.T)


@pytest.fixture(scope="session")
def cdnow_gg(cdnow: CustomerSummary) -> gamma_gamma.GammaGammaFit:
    return gamma_gamma.fit(cdnow.frequency, cdnow.monetary)


@pytest.fixture(scope="session")
def cdnow_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample as the CONTRACT §6 CSV (customer_id,date,amount)."""
    out = tmp_path_factory.mktemp("cdnow") / "cdnow.csv"
    lines = ["customer_id,date,amount"]
    for raw in CDNOW.read_text(encoding="ascii").splitlines():
        if raw.strip():
            _, cid, ymd, _, amount = raw.split()
            lines.append(f"{cid},{ymd[:4]}-{ymd[4:6]}-{ymd[6:]},{amount}")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out
