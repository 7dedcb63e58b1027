"""Served records → the stream app's pure core → the real sink writer → MariaDB, fast.

No broker and no Redis: ``parse_batch`` + ``fold_batch`` decide each record exactly as a
stream worker does (current versions kept here, as Redis would), and the ledger messages
they publish go through ``sinks.batch`` and ``LedgerWriter`` as the sink writes them. So a
property test can feed many histories through the real decisions and the real SQL.

The truth (``expected``) is computed from the served records' clean values alone.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from common.settings import Settings
from schemas import DeadLetter, Transaction
from sinks import db
from sinks.batch import Received, decode, fold
from sinks.writer import LedgerWriter
from stream_app.fold import LEDGER_KIND, RawMessage, fold_batch, parse_batch
from tests.unit.stream_app.history import Version

TOPIC = "asof.transactions.ledger"
TABLES = ("transaction_versions", "transaction_ledger", "transactions", "sink_pending_entries")


@dataclass(frozen=True)
class Served:
    """One served record: its JSON, and the clean version it stands for (None: invalid)."""

    record: Any
    version: Version | None


class Pipeline:
    """The stream's decisions and the sink's writer on one partition (0) of one database."""

    def __init__(self, settings: Settings, counted: frozenset[str]) -> None:
        self.settings = settings
        self.counted = counted
        self.writer = LedgerWriter(
            settings, group="asof", topic=TOPIC, dlq_topic="asof.dlq",
            send_dead=lambda _letters: None, clock=lambda: datetime.now(UTC),
        )  # fmt: skip
        self.writer.connect()
        self.stored = self.writer.load_offsets([0])[0]
        self.ledger_offset = max(self.stored, 0)
        self.raw_offset = 0
        self.state: dict[str, Transaction] = {}

    def reset(self) -> None:
        """Empty the tables (keeps the stored offsets moving forward)."""
        conn = db.connect(self.settings, autocommit=True)
        cur = conn.cursor()
        for table in TABLES:
            cur.execute(f"DELETE FROM {table}")
        conn.close()
        self.writer.reset()
        self.state = {}

    def feed(self, served: Sequence[Served], rng: random.Random) -> None:
        """Raw messages of 1-4 records (arrays or single objects), folded in batches of a few
        messages, their ledger messages written in sink batches cut at random places."""
        raw: list[RawMessage] = []
        i = 0
        while i < len(served):
            n = rng.randint(1, 4)
            chunk = [s.record for s in served[i : i + n]]
            value = json.dumps(
                chunk if len(chunk) > 1 or rng.random() < 0.5 else chunk[0], default=str
            )
            raw.append(RawMessage(self.raw_offset, None, value.encode()))
            self.raw_offset += 1
            i += n
        out: list[bytes] = []
        for start in range(0, len(raw), 3):
            parsed = parse_batch(0, raw[start : start + 3])
            current = {t: self.state.get(t) for t in parsed.transaction_ids()}
            result = fold_batch(
                parsed, current, watermark=-1, counted=self.counted,
                raw_topic="asof.transactions.raw", accepted_at=datetime.now(UTC),
            )  # fmt: skip
            self.state.update(result.states)
            out.extend(m.value for m in result.out if m.kind == LEDGER_KIND)
        pos = 0
        while pos < len(out):
            n = rng.randint(1, max(1, len(out) - pos))
            self._write(out[pos : pos + n])
            pos += n

    def _write(self, values: list[bytes]) -> None:
        items: list[Received | DeadLetter] = []
        for value in values:
            items.append(decode(TOPIC, 0, self.ledger_offset, None, value))
            self.ledger_offset += 1
        plan = fold(items, {0: self.ledger_offset})
        self.writer.write(plan, {0: self.stored})
        self.stored = self.ledger_offset

    def close(self) -> None:
        self.writer.close()

    def versions(self) -> list[tuple[Any, ...]]:
        conn = db.connect(self.settings, autocommit=True)
        cur = conn.cursor()
        cur.execute("SELECT transaction_id, updated_at, stale FROM transaction_versions")
        rows = list(cur.fetchall())
        conn.close()
        return rows


# -- the truth, from the served records' clean values ------------------------------------


def known(served: Iterable[Served], at: datetime) -> dict[str, Version]:
    """Per transaction, the served valid version with the greatest updated_at <= at."""
    out: dict[str, Version] = {}
    for s in served:
        v = s.version
        if v is None or v.updated_at > at:
            continue
        have = out.get(v.transaction_id)
        if have is None or v.updated_at > have.updated_at:
            out[v.transaction_id] = v
    return out


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _year_before(day: date) -> date:
    if day.month == 2 and day.day == 29:
        return date(day.year - 1, 2, 28)
    return date(day.year - 1, day.month, day.day)


def expected(
    served: Sequence[Served], at: datetime, counted: frozenset[str], limit: int = 1_000_000
) -> dict[str, list[dict[str, Any]]]:
    """The three answers as known at ``at`` (CONTRACT §6 JSON)."""
    live = [v for v in known(served, at).values() if v.status in counted]
    cats: dict[str, list[int]] = {}
    custs: dict[str, int] = {}
    months: dict[str, int] = {}
    first = _year_before(at.astimezone(UTC).date())
    for v in live:
        c = cats.setdefault(v.category, [0, 0])
        c[0] += 1
        c[1] += v.cents
        custs[v.customer_id] = custs.get(v.customer_id, 0) + v.cents
        if v.day >= first:
            key = v.day.strftime("%Y-%m")
            months[key] = months.get(key, 0) + v.cents
    ranked = sorted(custs.items(), key=lambda kv: (-kv[1], kv[0].encode()))[:limit]
    return {
        "categories": [
            {"product_category": k, "total_transactions": n, "total_amount": _money(c)}
            for k, (n, c) in sorted(cats.items(), key=lambda kv: kv[0].encode())
        ],
        "top-customers": [{"customer_id": k, "total_amount": _money(c)} for k, c in ranked],
        "monthly": [{"month": k, "total_amount": _money(c)} for k, c in sorted(months.items())],
    }
