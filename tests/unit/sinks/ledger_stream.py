"""A stand-in for the stream app: transaction histories → ledger messages, and the truth.

Used by the sink's unit and integration tests (the real stream app is built elsewhere).
Messages are what the stream app publishes: each accepted version's entries, then its
``VersionRecord``; ``noisy`` adds the redeliveries and re-publications the sink must absorb.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from schemas import Change, LedgerEntry, Transaction, VersionRecord, apply_change
from schemas.answers import monthly_first_day

T0 = datetime(2026, 1, 1, tzinfo=UTC)
COUNTED = frozenset({"pending", "approved"})

Message = LedgerEntry | VersionRecord


@dataclass
class Ledger:
    """Messages per transaction in publish order, and each transaction's current version."""

    messages: list[Message] = field(default_factory=list)
    current: dict[str, Transaction] = field(default_factory=dict)

    def accept(self, txn: Transaction, *, source: tuple[int, int] = (-1, -1)) -> Change | None:
        outcome = apply_change(
            self.current.get(txn.transaction_id),
            txn,
            accepted_at=txn.updated_at + timedelta(seconds=1),
            counted=COUNTED,
            source=source,
        )
        if not isinstance(outcome, Change):
            return None
        self.current[txn.transaction_id] = txn
        self.messages.extend(outcome.messages)
        return outcome

    def truth(self) -> list[Transaction]:
        """The rows ``transactions`` must hold: the current version of counted ones."""
        return sorted(
            (t for t in self.current.values() if t.status in COUNTED),
            key=lambda t: t.transaction_id,
        )


def make_txn(tid: str, minutes: int, **over: object) -> Transaction:
    fields: dict[str, object] = {
        "transaction_id": tid,
        "customer_id": "c1",
        "product_category": "books",
        "amount_cents": 1000,
        "transaction_date": date(2025, 12, 31),
        "status": "pending",
        "updated_at": T0 + timedelta(minutes=minutes),
    }
    fields.update(over)
    return Transaction(**fields)  # type: ignore[arg-type]


def random_ledger(
    n: int,
    *,
    seed: int = 7,
    categories: Sequence[str] = ("books", "games", "food", "toys"),
    customers: int = 50,
    today: date = date(2026, 11, 25),
) -> Ledger:
    """``n`` transactions with 1-4 versions each: status and amount changes, backdating."""
    rng = random.Random(seed)
    ledger = Ledger()
    for i in range(n):
        tid = f"tx{i:06d}"
        day = today - timedelta(days=rng.randrange(0, 500))
        t = make_txn(
            tid,
            i,
            customer_id=f"cust{rng.randrange(customers):03d}",
            product_category=rng.choice(categories),
            amount_cents=rng.randrange(1, 100_000_00),
            transaction_date=day,
            status=rng.choice(("pending", "pending", "approved", "declined")),
            updated_at=T0 + timedelta(seconds=i),
        )
        ledger.accept(t, source=(i % 6, i))
        for k in range(rng.randrange(0, 4)):
            change = rng.random()
            later = t.updated_at + timedelta(minutes=10 + k)
            if change < 0.3:
                t = t.model_copy(
                    update={
                        "status": rng.choice(("approved", "declined", "reversed")),
                        "updated_at": later,
                    }
                )
            elif change < 0.6:
                t = t.model_copy(
                    update={"amount_cents": rng.randrange(1, 100_000_00), "updated_at": later}
                )
            elif change < 0.8:
                t = t.model_copy(
                    update={
                        "transaction_date": day - timedelta(days=rng.randrange(1, 90)),
                        "updated_at": later,
                    }
                )
            else:
                t = t.model_copy(
                    update={"product_category": rng.choice(categories), "updated_at": later}
                )
            ledger.accept(t, source=(i % 6, i))
    return ledger


def noisy(messages: Sequence[Message], *, seed: int = 11, rate: float = 0.05) -> list[Message]:
    """Redelivered copies (right after, or later) and entries re-published before their version."""
    rng = random.Random(seed)
    out: list[Message] = []
    for m in messages:
        out.append(m)
        roll = rng.random()
        if roll < rate:
            out.append(m)  # redelivered at once
        elif roll < 2 * rate and len(out) > 3:
            out.append(out[rng.randrange(len(out) - 1)])  # an older message again
    return out


def expected_answers(rows: Sequence[Transaction], now: datetime) -> dict[str, object]:
    """The seed's three queries computed in Python over ``rows`` (counted current versions)."""
    by_category: dict[str, int] = {}
    by_customer: dict[str, int] = {}
    by_month: dict[str, int] = {}
    first = monthly_first_day(now)
    for t in rows:
        by_category[t.product_category] = by_category.get(t.product_category, 0) + 1
        by_customer[t.customer_id] = by_customer.get(t.customer_id, 0) + t.amount_cents
        if t.transaction_date >= first:
            key = t.transaction_date.strftime("%Y-%m")
            by_month[key] = by_month.get(key, 0) + t.amount_cents
    top = sorted(by_customer.items(), key=lambda kv: (-kv[1], kv[0].encode()))[:5]
    return {
        "categories": sorted(by_category.items()),
        "top": [(c, Decimal(v).scaleb(-2)) for c, v in top],
        "monthly": [(m, Decimal(v).scaleb(-2)) for m, v in sorted(by_month.items())],
    }


def publish(
    settings: object, messages: Sequence[Message | bytes], *, key: str | None = None
) -> None:
    """Produce ledger messages the way the stream app does (key = transaction_id, murmur2)."""
    from confluent_kafka import Producer

    from sinks.runner import ensure_topics

    ensure_topics(settings)  # type: ignore[arg-type]
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,  # type: ignore[attr-defined]
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 10,
        }
    )
    topic = settings.topic("transactions.ledger")  # type: ignore[attr-defined]
    for m in messages:
        if isinstance(m, bytes):
            producer.produce(topic, key=(key or "raw").encode(), value=m)
        else:
            producer.produce(
                topic, key=m.transaction_id.encode(), value=m.model_dump_json().encode()
            )
        producer.poll(0)
    assert producer.flush(30) == 0, "the broker did not acknowledge every ledger message"
