"""The sink end to end: ledger topic (real broker) → MariaDB, seed queries verbatim vs truth."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from common.settings import Settings
from schemas import DeadLetter
from schemas.answers import cents_to_str
from sinks import db, lookups
from sinks.runner import SinkRunner
from tests.unit.sinks.ledger_stream import (
    Ledger,
    expected_answers,
    make_txn,
    noisy,
    publish,
    random_ledger,
)

# The seed document's three queries (shared/seed/000_833893daaa5fce05.txt), verbatim.
SEED_CATEGORIES = """SELECT product_category, COUNT(*) AS total_transactions
FROM transactions
GROUP BY product_category;"""

SEED_TOP_ACCOUNTS = """SELECT customer_id, SUM(transaction_amount)
FROM transactions
GROUP BY customer_id
ORDER BY SUM(transaction_amount) DESC
LIMIT 5;"""

SEED_MONTHLY = """SELECT DATE_FORMAT(transaction_date, '%Y-%m') AS month, SUM(transaction_amount)
FROM transactions
WHERE transaction_date >= DATE_SUB(NOW(), INTERVAL 1 YEAR)
GROUP BY month
ORDER BY month;"""


def run_sink(settings: Settings, batch_messages: int = 101) -> SinkRunner:
    runner = SinkRunner(settings, batch_messages=batch_messages, idle_seconds=1.0)
    assert runner.run(until_idle=True) == 0
    return runner


def query(settings: Settings, sql: str) -> list[tuple[Any, ...]]:
    conn = db.connect(settings, autocommit=True)
    cur = conn.cursor()
    cur.execute(sql)
    rows = list(cur.fetchall())
    conn.close()
    return rows


def dead_letters(settings: Settings, expect: int, timeout: float = 15.0) -> list[DeadLetter]:
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"{settings.namespace}.dlqcheck",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
        }
    )
    consumer.assign(
        [
            TopicPartition(settings.topic("transactions.dlq"), p, -2)
            for p in range(settings.partitions)
        ]
    )
    out: list[DeadLetter] = []
    deadline = time.monotonic() + timeout
    while len(out) < expect and time.monotonic() < deadline:
        for m in consumer.consume(100, 0.2):
            if m.error() is None:
                out.append(DeadLetter.model_validate_json(m.value()))
    consumer.close()
    return out


def test_seed_queries_run_verbatim_and_answer_for_the_current_state(
    topics: Settings, mysql_db: Settings
) -> None:
    today = datetime.now(UTC).date()
    ledger = random_ledger(300, today=today, customers=40)
    publish(topics, noisy(ledger.messages, rate=0.05))
    runner = run_sink(topics)
    truth = ledger.truth()
    assert runner.totals["dead"] == 0

    rows = query(
        topics,
        "SELECT transaction_id, customer_id, product_category, transaction_amount, "
        "transaction_date, status FROM transactions ORDER BY transaction_id",
    )
    assert rows == [
        (
            t.transaction_id,
            t.customer_id,
            t.product_category,
            Decimal(t.amount_cents).scaleb(-2),
            t.transaction_date,
            t.status,
        )
        for t in truth
    ]
    expected = expected_answers(truth, datetime.now(UTC).replace(microsecond=0))
    assert sorted(query(topics, SEED_CATEGORIES)) == expected["categories"]
    top = query(topics, SEED_TOP_ACCOUNTS)
    by_customer = Counter[str]()
    for t in truth:
        by_customer[t.customer_id] += t.amount_cents
    assert [s for _, s in top] == [s for _, s in expected["top"]]  # type: ignore[attr-defined]
    assert all(Decimal(by_customer[c]).scaleb(-2) == s for c, s in top)
    assert query(topics, SEED_MONTHLY) == expected["monthly"]

    # audit trail and ledger: every accepted version once, entries net to the current state
    versions = [m for m in ledger.messages if m.kind == "version"]
    entries = [m for m in ledger.messages if m.kind == "entry"]
    assert query(topics, "SELECT COUNT(*) FROM transaction_versions") == [(len(versions),)]
    assert query(topics, "SELECT COUNT(*), SUM(`count`), SUM(amount) FROM transaction_ledger") == [
        (len(entries), len(truth), Decimal(sum(t.amount_cents for t in truth)).scaleb(-2))
    ]
    assert query(topics, "SELECT COUNT(*) FROM sink_pending_entries") == [(0,)]

    # the MySQL answers of `txnpipe query --source mysql`
    categories = lookups.answer(topics, "categories", None).to_json()
    assert [(r["product_category"], r["total_transactions"]) for r in categories] == expected[
        "categories"
    ]
    amounts: Counter[str] = Counter()
    for t in truth:
        amounts[t.product_category] += t.amount_cents
    assert all(
        r["total_amount"] == cents_to_str(amounts[r["product_category"]]) for r in categories
    )
    top_answer = lookups.answer(topics, "top-customers", 5).to_json()
    ranked = sorted(by_customer.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert top_answer == [{"customer_id": c, "total_amount": cents_to_str(v)} for c, v in ranked]
    monthly = lookups.answer(topics, "monthly", None).to_json()
    assert [(r["month"], Decimal(r["total_amount"])) for r in monthly] == expected["monthly"]


CATEGORIES = [
    "café",
    "cafe",
    "CAFÉ",
    "über",
    "uber",
    "ü",
    "u",
    "it's",
    'say "hi"',
    "back\\slash",
    "100%",
    "50%_off",
    "line\nbreak",
    "tab\there",
    "日本語",
    "中文",
    "emoji 🎉",
    "naïve",
    "naive",
    "Ω",
    "o",
]


def test_categories_with_quotes_backslashes_percent_accents_and_cjk_stay_exact(
    topics: Settings, mysql_db: Settings
) -> None:
    ledger = Ledger()
    for i, category in enumerate(CATEGORIES):
        for k in range(i % 3 + 1):
            ledger.accept(
                make_txn(
                    f"{i}-{k}",
                    i * 10 + k,
                    product_category=category,
                    amount_cents=100 + i,
                    customer_id=category,
                )
            )
    publish(topics, ledger.messages)
    run_sink(topics)
    counts = dict(query(topics, SEED_CATEGORIES))
    assert counts == {c: i % 3 + 1 for i, c in enumerate(CATEGORIES)}
    assert all(isinstance(c, str) for c in counts)

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "txnpipe",
            "query",
            "categories",
            "--source",
            "mysql",
            "--json",
            "--namespace",
            topics.namespace,
            "--mysql-database",
            topics.mysql_database,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [r["product_category"] for r in rows] == sorted(CATEGORIES, key=lambda c: c.encode())
    assert {r["product_category"]: r["total_transactions"] for r in rows} == counts


def test_refused_and_malformed_messages_go_to_the_dlq_and_the_sink_carries_on(
    topics: Settings, mysql_db: Settings
) -> None:
    ledger = Ledger()
    for i in range(30):
        over: dict[str, object] = {"customer_id": "x" * 256} if i == 17 else {}
        ledger.accept(make_txn(f"t{i:02d}", i, transaction_date=date(2026, 3, 1), **over))
    publish(topics, ledger.messages[:20])
    publish(topics, [b"{not json", b'{"kind": "version"}'], key="t10")
    publish(topics, ledger.messages[20:])
    runner = run_sink(topics, batch_messages=1000)
    assert query(topics, "SELECT COUNT(*) FROM transactions") == [(29,)]
    assert query(topics, "SELECT COUNT(*) FROM transactions WHERE transaction_id = 't17'") == [(0,)]
    letters = dead_letters(topics, expect=4)
    assert runner.totals["dead"] == 4
    by_reason = Counter(d.reason for d in letters)
    assert by_reason == {"invalid_ledger_message": 2, "db_rejected": 2}
    refused = [d for d in letters if d.reason == "db_rejected"]
    assert {d.transaction_id for d in refused} == {"t17"} and all(
        d.stage == "sink" for d in refused
    )
    assert all("1406" in d.detail for d in refused)


@pytest.mark.slow
def test_two_sinks_share_the_partitions_and_a_rebalance_loses_and_doubles_nothing(
    topics: Settings, mysql_db: Settings
) -> None:
    import threading

    ledger = random_ledger(800, today=datetime.now(UTC).date(), seed=13)
    messages = noisy(ledger.messages)
    half = len(messages) // 2
    publish(topics, messages[:half])  # the rest only once both sinks share the partitions
    first = SinkRunner(topics, batch_messages=25, max_batch_age=0.05, idle_seconds=15.0)
    second = SinkRunner(topics, batch_messages=25, max_batch_age=0.05, idle_seconds=15.0)
    errors: list[BaseException] = []

    def run(runner: SinkRunner) -> None:
        try:
            runner.run(until_idle=True)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    one = threading.Thread(target=run, args=(first,), daemon=True)
    one.start()
    deadline = time.monotonic() + 30
    while first.totals["batches"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)  # poll: the second sink joins mid-stream, forcing a rebalance
    two = threading.Thread(target=run, args=(second,), daemon=True)
    two.start()
    deadline = time.monotonic() + 60
    while first.totals["revoked"] < 1 and time.monotonic() < deadline and not errors:
        time.sleep(0.05)  # poll: wait for the rebalance, however fast the first half went
    publish(topics, messages[half:])
    one.join(120)
    two.join(120)
    assert not errors, errors
    assert first.totals["revoked"] >= 1 and second.totals["batches"] >= 1, (
        first.totals,
        second.totals,
    )
    truth = ledger.truth()
    assert query(
        topics, "SELECT transaction_id, transaction_amount FROM transactions ORDER BY 1"
    ) == [(t.transaction_id, Decimal(t.amount_cents).scaleb(-2)) for t in truth]
    versions = sum(1 for m in ledger.messages if m.kind == "version")
    entries = sum(1 for m in ledger.messages if m.kind == "entry")
    assert query(topics, "SELECT COUNT(*) FROM transaction_versions") == [(versions,)]
    assert query(topics, "SELECT COUNT(*) FROM transaction_ledger") == [(entries,)]
