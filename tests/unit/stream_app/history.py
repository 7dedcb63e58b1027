"""A small deterministic generator of dirty transaction histories, and their truth.

The truth is computed independently of the code under test: the generator knows each
version's clean values and whether it rendered it invalid, and the truth is a plain dict of
last versions summed by question.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from producers.murmur2 import murmur2

CATEGORIES = ["Electronics", "books", "Home Goods", "toys", "grocery", "Garden  Tools", None]
COUNTED = frozenset({"pending", "approved"})


@dataclass(frozen=True)
class Version:
    transaction_id: str
    customer_id: str
    category: str  # clean
    cents: int
    day: date
    status: str
    updated_at: datetime


@dataclass
class History:
    """Served records in order (dict, or raw text for poison), and the truth's inputs."""

    served: list[Any] = field(default_factory=list)  # dict | str (a record rendered as text)
    valid: list[Version] = field(default_factory=list)
    invalid: int = 0  # records the stream must dead-letter

    def last_versions(self) -> dict[str, Version]:
        last: dict[str, Version] = {}
        for v in self.valid:
            cur = last.get(v.transaction_id)
            if cur is None or v.updated_at > cur.updated_at:
                last[v.transaction_id] = v
        return last


def _clean_category(raw: str | None) -> str:
    if raw is None:
        return "uncategorized"
    text = " ".join(raw.split()).lower()
    return text or "uncategorized"


def _render_amount(rng: random.Random, cents: int) -> Any:
    whole, frac = divmod(cents, 100)
    plain = f"{whole}.{frac:02d}"
    choice = rng.randrange(5)
    if choice == 0:
        return json.loads(plain, parse_float=lambda s: __import__("decimal").Decimal(s))
    if choice == 1:
        return f"${whole:,}.{frac:02d}"
    if choice == 2:
        return f"{plain} USD"
    if choice == 3:
        return f" {plain} "
    return plain


def _render_date(rng: random.Random, day: date) -> Any:
    choice = rng.randrange(4)
    if choice == 0:
        return day.isoformat()
    if choice == 1:
        return day.strftime("%Y/%m/%d")
    if choice == 2:
        return f"{day.isoformat()}T12:00:00Z"
    return int(datetime(day.year, day.month, day.day, 6, tzinfo=UTC).timestamp())


def _render_ts(rng: random.Random, ts: datetime) -> str:
    if rng.random() < 0.3:
        return ts.astimezone(UTC).replace(tzinfo=None).isoformat() + "+00:00"
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


def render(rng: random.Random, v: Version, raw_category: str | None) -> dict[str, Any]:
    status = v.status
    if rng.random() < 0.3:
        status = f" {status.upper()} "
    tid: Any = v.transaction_id
    return {
        "transaction_id": tid,
        "customer_id": v.customer_id,
        "product_category": raw_category,
        "transaction_amount": _render_amount(rng, v.cents),
        "transaction_date": _render_date(rng, v.day),
        "status": status,
        "updated_at": _render_ts(rng, v.updated_at),
    }


def _spoil(rng: random.Random, record: dict[str, Any]) -> Any:
    """An invalid variant of a record (CONTRACT §1)."""
    bad = dict(record)
    choice = rng.randrange(7)
    if choice == 0:
        bad["transaction_amount"] = "twelve"
    elif choice == 1:
        bad["transaction_amount"] = "-5.00"
    elif choice == 2:
        del bad["customer_id"]
    elif choice == 3:
        bad["status"] = "refunded"
    elif choice == 4:
        bad["transaction_date"] = "1999-12-31"
    elif choice == 5:
        bad["transaction_amount"] = "2,000,000.00"
    else:
        bad["updated_at"] = "yesterday"
    return bad


def generate(
    seed: int, transactions: int, *, now: datetime, customers: int = 200, invalid_rate: float = 0.03
) -> History:
    """Versions per transaction (status changes, corrections, backdating), served dirty:
    repeated, late replicas, invalid records."""
    rng = random.Random(seed)
    hist = History()
    events: list[tuple[datetime, int, Any, Version | None]] = []
    seq = 0
    start = now - timedelta(days=20)
    for i in range(transactions):
        tid = f"T{seed}-{i:07d}" if rng.random() < 0.9 else str(10_000_000 + i)
        cust = f"C{rng.randrange(customers):05d}"
        raw_cat = rng.choice(CATEGORIES)
        ts = start + timedelta(seconds=rng.randrange(int(timedelta(days=19).total_seconds())))
        day = (ts - timedelta(days=rng.randrange(380))).date()
        cents = rng.randrange(100, 500_000)
        status = "pending"
        for k in range(rng.randrange(1, 5)):
            if k > 0:
                ts = ts + timedelta(
                    seconds=rng.randrange(1, 3600), microseconds=rng.randrange(1000)
                )
                move = rng.randrange(6)
                if move == 0:
                    status = "approved"
                elif move == 1:
                    status = rng.choice(["declined", "reversed"])
                elif move == 2:
                    cents = max(1, cents + rng.randrange(-5000, 5000))
                elif move == 3:
                    day = day - timedelta(days=rng.randrange(1, 60))  # backdated
                elif move == 4:
                    raw_cat = rng.choice(CATEGORIES)
                else:
                    status = "approved" if status == "pending" else "pending"
            if ts > now:
                break
            v = Version(tid, cust, _clean_category(raw_cat), cents, day, status, ts)
            rec = render(rng, v, raw_cat)
            if rng.random() < invalid_rate:
                events.append((ts, seq, _spoil(rng, rec), None))
            else:
                events.append((ts, seq, rec, v))
            seq += 1
            if rng.random() < 0.1:  # served again later (a repeat across pages)
                events.append(
                    (ts + timedelta(minutes=rng.randrange(1, 120)), seq, render(rng, v, raw_cat), v)
                )
                seq += 1
    events.sort(key=lambda e: (e[0], e[1]))
    # late replicas: move some records later in the order
    for _ in range(len(events) // 50):
        a = rng.randrange(len(events))
        b = min(len(events) - 1, a + rng.randrange(1, 200))
        events.insert(b, events.pop(a))
    for _, _, rec, v in events:
        hist.served.append(rec)
        if v is None:
            hist.invalid += 1
        else:
            hist.valid.append(v)
    return hist


def partition_of(record: Any, partitions: int) -> int:
    """murmur2(transaction_id) like every producer (CONTRACT §3); unreadable id -> 0."""
    tid = record.get("transaction_id") if isinstance(record, dict) else None
    if tid is None:
        return 0
    key = str(tid).strip().encode("utf-8")
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def dumps(record: Any) -> str:
    return json.dumps(record, default=str) if not isinstance(record, str) else record


def batches(
    served: list[Any], partitions: int, page: int = 500
) -> Iterator[tuple[int, bytes | None, bytes]]:
    """(partition, key, value) messages like the poller: each page split per partition into
    JSON arrays; a few single-record messages keyed by transaction id."""
    for start in range(0, len(served), page):
        chunk = served[start : start + page]
        per: dict[int, list[str]] = {}
        for rec in chunk:
            p = partition_of(rec, partitions)
            per.setdefault(p, []).append(dumps(rec))
        for p, items in sorted(per.items()):
            yield p, None, ("[" + ",".join(items) + "]").encode("utf-8")


def singles(served: list[Any], partitions: int) -> Iterator[tuple[int, bytes | None, bytes]]:
    for rec in served:
        p = partition_of(rec, partitions)
        tid = rec.get("transaction_id") if isinstance(rec, dict) else None
        yield p, (str(tid).encode() if tid is not None else None), dumps(rec).encode("utf-8")


@dataclass
class Truth:
    categories: list[dict[str, Any]]
    top: list[dict[str, Any]]
    monthly: list[dict[str, Any]]


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def truth(hist: History, *, now: datetime, limit: int = 5) -> Truth:
    """The three seed answers over the last versions, computed plainly."""
    cats: dict[str, list[int]] = {}
    custs: dict[str, int] = {}
    months: dict[str, int] = {}
    one_year = (
        now.date().replace(year=now.year - 1)
        if not (now.month == 2 and now.day == 29)
        else now.date().replace(year=now.year - 1, day=28)
    )
    for v in hist.last_versions().values():
        if v.status not in COUNTED:
            continue
        c = cats.setdefault(v.category, [0, 0])
        c[0] += 1
        c[1] += v.cents
        custs[v.customer_id] = custs.get(v.customer_id, 0) + v.cents
        # transaction_date >= DATE_SUB(NOW(), INTERVAL 1 YEAR) with NOW() not at midnight
        if v.day > one_year:
            months[v.day.strftime("%Y-%m")] = months.get(v.day.strftime("%Y-%m"), 0) + v.cents
    categories = [
        {"product_category": k, "total_transactions": n, "total_amount": _money(c)}
        for k, (n, c) in sorted(cats.items(), key=lambda kv: kv[0].encode())
    ]
    ranked = sorted(custs.items(), key=lambda kv: (-kv[1], kv[0].encode()))[:limit]
    top = [{"customer_id": k, "total_amount": _money(c)} for k, c in ranked]
    monthly = [{"month": m, "total_amount": _money(c)} for m, c in sorted(months.items())]
    return Truth(categories, top, monthly)
