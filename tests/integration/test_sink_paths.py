"""The sink's two ways of writing rows — LOAD DATA LOCAL INFILE and multi-row INSERT (the
path of servers with ``local_infile=OFF``) — write the same rows, exactly once.

A noisy ledger (redeliveries, re-publications) cut into batches at random places, so that
entries wait for their version across batches, with some batches written twice (the
COMMIT landed but its reply was lost): both paths must end with the same tables, equal
to the truth, nothing doubled.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from common.settings import Settings
from schemas import DeadLetter
from sinks.batch import Received, decode, fold
from tests.integration.test_sink_writer import TOPIC, Harness
from tests.unit.sinks.ledger_stream import noisy, random_ledger

COLUMNS = {
    "transaction_ledger": "entry_id, transaction_id, version_updated_at, entry_type, customer_id, "
    "product_category, transaction_date, amount, `count`, source_partition, source_offset",
    "transaction_versions": "transaction_id, updated_at, customer_id, product_category, "
    "transaction_amount, transaction_date, status, counted, previous_updated_at, entry_ids, "
    "accepted_at, source_partition, source_offset, stale",
    "transactions": "transaction_id, customer_id, product_category, transaction_amount, "
    "transaction_date, status, updated_at, accepted_at",
}


def write_in_random_batches(harness: Harness, seed: int) -> None:
    rng = random.Random(seed)
    ledger = random_ledger(120, seed=5)
    messages = noisy(ledger.messages, seed=seed, rate=0.08)
    offset = 0
    while offset < len(messages):
        n = rng.randint(1, 40)
        items: list[Received | DeadLetter] = [
            decode(TOPIC, 0, offset + i, None, m.model_dump_json().encode())
            for i, m in enumerate(messages[offset : offset + n])
        ]
        offset += len(items)
        plan = fold(items, {0: offset})
        assert not harness.writer.write(plan, {0: harness.next_offset}).already
        if rng.random() < 0.2:  # the reply to COMMIT was lost: the retry finds its offsets
            assert harness.writer.write(plan, {0: harness.next_offset}).already
        harness.next_offset = offset
    truth = [
        (t.transaction_id, t.amount_cents, t.status)
        for t in ledger.truth()  # the current version of each counted transaction
    ]
    got = harness.query(
        "SELECT transaction_id, transaction_amount, status FROM transactions "
        "ORDER BY transaction_id"
    )
    assert [(t, int(a * 100), s) for t, a, s in got] == truth
    assert harness.query("SELECT COUNT(*) FROM sink_pending_entries") == [(0,)]


def snapshot(harness: Harness) -> dict[str, list[tuple[object, ...]]]:
    return {
        table: harness.query(f"SELECT {columns} FROM {table} ORDER BY {columns.split(',')[0]}, 2")
        for table, columns in COLUMNS.items()
    }


@pytest.mark.parametrize("seed", [1, 2])
def test_load_data_and_insert_paths_write_the_same_rows_exactly_once(
    mysql_db: Settings, seed: int
) -> None:
    tables: list[dict[str, list[tuple[object, ...]]]] = []
    for bulk in (True, False):
        harness = Harness(mysql_db, datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
        try:
            assert harness.writer.bulk, "this test needs a server with local_infile=ON"
            harness.writer.bulk = bulk
            write_in_random_batches(harness, seed)
            tables.append(snapshot(harness))
            for table in (*COLUMNS, "sink_offsets", "sink_raw_positions"):
                harness.query(f"DELETE FROM {table}")
        finally:
            harness.writer.close()
    load_data, insert = tables
    assert load_data == insert
    ledger = load_data["transaction_ledger"]
    assert len({row[0] for row in ledger}) == len(ledger)  # no entry twice
