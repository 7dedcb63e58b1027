"""The reconcile sweep keeps each transaction's newest valid version, cleaned exactly as the
stream cleans it (fast path on decoded values, the served bytes otherwise)."""

from __future__ import annotations

import json

from producers.client import parse_page
from producers.sweep import Swept, fold_page, subset
from schemas import Accepted, parse_message

RECORDS = [
    {"transaction_id": " 7 ", "customer_id": 3, "product_category": " Books  X",
     "transaction_amount": "$1,234.50", "transaction_date": "2026/11/02", "status": "Pending",
     "updated_at": "2026-11-03T10:00:00.000Z"},
    {"transaction_id": 7, "customer_id": 3, "product_category": None,
     "transaction_amount": 12.345, "transaction_date": "2026-11-02", "status": "approved",
     "updated_at": "2026-11-03T11:00:00.000Z"},
    {"transaction_id": "7", "customer_id": 3, "product_category": "x",
     "transaction_amount": -1, "transaction_date": "2026-11-02", "status": "approved",
     "updated_at": "2026-11-03T12:00:00.000Z"},  # invalid: the previous version stays
    {"transaction_id": "8", "customer_id": "c", "product_category": "y",
     "transaction_amount": 10, "transaction_date": 1762000000, "status": "declined",
     "updated_at": "2026-11-03T09:00:00+01:00"},
    "not an object",
]  # fmt: skip


def test_newest_valid_version_per_transaction_as_the_stream_cleans_it() -> None:
    body = json.dumps({"data": RECORDS, "next_cursor": None}).encode()
    page = parse_page(body)
    swept = Swept()
    fold_page(swept, page)
    assert (swept.records, swept.invalid) == (5, 2)
    expect = {}
    for i in range(len(page)):
        result = parse_message(page.record(i))[0]
        if isinstance(result, Accepted):
            t = result.transaction
            if t.transaction_id not in expect or t.updated_at > expect[t.transaction_id].updated_at:
                expect[t.transaction_id] = t
    assert set(swept.newest) == set(expect) == {"7", "8"}
    for tid, t in expect.items():
        v = swept.newest[tid]
        assert (v.amount_cents, v.product_category, v.status, v.updated_at, v.transaction_date) == (
            t.amount_cents,
            t.product_category,
            t.status,
            t.updated_at,
            t.transaction_date,
        )
    assert swept.newest["7"].amount_cents == 1235  # 12.345 read as Decimal, half up
    assert swept.upto == max(t.updated_at for t in expect.values())
    (only,) = subset(swept, ["7"])
    assert json.loads(only.record(0)) == RECORDS[1]  # re-published exactly as served
