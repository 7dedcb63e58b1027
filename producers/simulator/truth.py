"""Ground truth for what has been served: folds the simulator's clean model, never ``schemas``.

The answer covers every feed entry up to the furthest one served in a complete response
(``Feed.max_served``), read in feed order as the pipeline reads it: a valid version
newer than the current one replaces it, an equal one is a duplicate, an older one is
stale, an invalid record changes nothing. The three seed answers are computed here
independently, including the third query's ``DATE_SUB(NOW(), INTERVAL 1 YEAR)`` boundary.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import date, datetime, time, timedelta
from typing import Any

from producers.simulator.model import Entry, Version
from producers.simulator.render import iso_ms


def money(cents: int) -> str:
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}"


def first_month_day(now: datetime) -> date:
    """First date ``transaction_date >= DATE_SUB(NOW(), INTERVAL 1 YEAR)`` keeps.

    MySQL subtracts a year keeping the time (Feb 29 → Feb 28), then compares the DATE as
    midnight of that day: so the boundary day itself is kept only when NOW() is midnight.
    """
    today = now.date()
    if today.month == 2 and today.day == 29:
        year_ago = date(today.year - 1, 2, 28)
    else:
        year_ago = date(today.year - 1, today.month, today.day)
    if now.time().replace(microsecond=0) == time(0, 0, 0):
        return year_ago
    return year_ago + timedelta(days=1)


def current_versions(
    entries: Sequence[Entry], upto: int
) -> tuple[dict[str, Version], Counter[str]]:
    """Current version of every transaction after reading entries ``[0, upto]``."""
    current: dict[str, Version] = {}
    counts: Counter[str] = Counter()
    for entry in entries[: upto + 1]:
        version = entry.version
        if version is None:
            counts["invalid"] += 1
            continue
        cur = current.get(version.transaction_id)
        if cur is None or version.updated_ms > cur.updated_ms:
            current[version.transaction_id] = version
            counts["accepted"] += 1
        elif version.updated_ms == cur.updated_ms:
            counts["duplicate"] += 1
        else:
            counts["stale"] += 1
    return current, counts


def compute(
    entries: Sequence[Entry],
    served: bytes | bytearray,
    upto: int,
    counted: Collection[str],
    now: datetime,
    include_transactions: bool = True,
) -> dict[str, Any]:
    """The /_truth document (CONTRACT §6 shapes for the three answers)."""
    current, counts = current_versions(entries, upto)
    live = [v for v in current.values() if v.status in counted]
    categories: dict[str, list[int]] = {}
    customers: dict[str, int] = {}
    months: dict[str, int] = {}
    first_day = first_month_day(now)
    for v in live:
        cat = categories.setdefault(v.category, [0, 0])
        cat[0] += 1
        cat[1] += v.amount_cents
        customers[v.customer_id] = customers.get(v.customer_id, 0) + v.amount_cents
        if v.transaction_date >= first_day:
            month = v.transaction_date.strftime("%Y-%m")
            months[month] = months.get(month, 0) + v.amount_cents
    invalid_kinds: Counter[str] = Counter()
    served_total = 0
    for index, flag in enumerate(served):
        if flag:
            served_total += 1
            if entries[index].version is None:
                invalid_kinds[entries[index].kind] += 1
    doc: dict[str, Any] = {
        "as_of": {
            "entries": upto + 1,
            "updated_at": iso_ms(entries[upto].key[0]) if upto >= 0 else None,
        },
        "counted_statuses": sorted(counted),
        "now": now.isoformat(),
        "served": {
            "distinct_records": served_total,
            "invalid_distinct": sum(invalid_kinds.values()),
            "invalid_by_kind": dict(sorted(invalid_kinds.items())),
        },
        # one pass over the feed in order; a poller that re-reads pages sees more duplicates
        "feed_counts": {k: counts[k] for k in ("accepted", "duplicate", "stale", "invalid")},
        "transaction_count": len(current),
        "counted_transaction_count": len(live),
        "categories": [
            {"product_category": name, "total_transactions": n, "total_amount": money(c)}
            for name, (n, c) in sorted(categories.items(), key=lambda kv: kv[0].encode("utf-8"))
        ],
        "top_customers": [
            {"customer_id": cid, "total_amount": money(c)}
            for cid, c in sorted(customers.items(), key=lambda kv: (-kv[1], kv[0].encode("utf-8")))
        ],
        "monthly": [
            {"month": month, "total_amount": money(c)} for month, c in sorted(months.items())
        ],
    }
    if include_transactions:
        doc["transactions"] = [
            {
                "transaction_id": v.transaction_id,
                "customer_id": v.customer_id,
                "product_category": v.category,
                "transaction_amount": money(v.amount_cents),
                "transaction_date": v.transaction_date.isoformat(),
                "status": v.status,
                "updated_at": iso_ms(v.updated_ms),
            }
            for v in sorted(live, key=lambda v: v.transaction_id)
        ]
    return doc
