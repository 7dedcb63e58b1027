"""LedgerWriter against the real MariaDB: partitions, no regressions, bisection, fencing.

No broker here: batches are folded from messages made by the stand-in stream app.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from common.settings import Settings
from schemas import DeadLetter, LedgerEntry, VersionRecord
from sinks import db
from sinks.batch import Received, decode, fold
from sinks.writer import FencedError, LedgerWriter
from tests.unit.sinks.ledger_stream import Ledger, make_txn

TOPIC = "ns.transactions.ledger"


class Harness:
    """A writer, its clock, and the offsets a consumer would track (partition 0 only)."""

    def __init__(self, settings: Settings, now: datetime) -> None:
        self.now = now
        self.dead: list[DeadLetter] = []
        self.writer = LedgerWriter(
            settings,
            group="g",
            topic=TOPIC,
            dlq_topic="ns.dlq",
            send_dead=self.dead.extend,
            clock=lambda: self.now,
        )
        self.writer.connect()
        self.next_offset = self.writer.load_offsets([0])[0]
        self.offset = 0

    def write(self, messages: list[LedgerEntry | VersionRecord]) -> None:
        items: list[Received | DeadLetter] = []
        for m in messages:
            items.append(decode(TOPIC, 0, self.offset, None, m.model_dump_json().encode()))
            self.offset += 1
        plan = fold(items, {0: self.offset})
        self.writer.write(plan, {0: self.next_offset})
        self.next_offset = self.offset

    def query(self, sql: str) -> list[tuple[object, ...]]:
        conn = db.connect(self.writer.settings, autocommit=True)
        cur = conn.cursor()
        cur.execute(sql)
        rows = list(cur.fetchall())
        conn.close()
        return rows


@pytest.fixture
def harness(mysql_db: Settings) -> Harness:
    h = Harness(mysql_db, datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    yield h
    h.writer.close()


def rows_in(h: Harness, partition: str) -> int:
    return int(h.query(f"SELECT COUNT(*) FROM transaction_ledger PARTITION ({partition})")[0][0])


@pytest.mark.parametrize("entry", ["txnpipe.cli", "sinks.runner", "sinks.lookups"])
def test_entry_modules_load_the_c_extension_before_ssl(mysql_server: Settings, entry: str) -> None:
    # In a fresh interpreter: pytest itself imports hashlib, which poisons the C extension
    # for this process (the connector would silently fall back to pure Python).
    code = (
        f"import {entry}\n"
        "import confluent_kafka, redis, hashlib, ssl\n"
        "from common.settings import load_settings\n"
        "from sinks import db\n"
        "print(type(db.connect(load_settings(), database=False)).__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "CMySQLConnection", done.stderr[-2000:]


def test_entries_land_in_their_month_across_a_boundary_with_an_injected_clock(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    names = {
        r[0]
        for r in harness.query(
            "SELECT PARTITION_NAME FROM information_schema.PARTITIONS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'transaction_ledger'"
        )
    }
    assert {"p202511", "p202611", "p202702", "pmax"} <= names and "p202703" not in names
    ledger = Ledger()
    ledger.accept(make_txn("nov", 0, transaction_date=date(2026, 11, 30)))
    ledger.accept(make_txn("dec", 1, transaction_date=date(2026, 12, 1)))
    harness.write(ledger.messages)
    assert (rows_in(harness, "p202611"), rows_in(harness, "p202612")) == (1, 1)

    harness.now = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)  # the clock crosses into December
    assert harness.writer.upkeep() == 0
    names = {
        r[0]
        for r in harness.query(
            "SELECT PARTITION_NAME FROM information_schema.PARTITIONS "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'transaction_ledger'"
        )
    }
    assert "p202703" in names  # made ahead of time, out of pmax

    # a backdated change moves the transaction to 2019: reversal in Nov 2026, entry in May 2019
    ledger.accept(make_txn("nov", 5, transaction_date=date(2019, 5, 10)))
    harness.write(ledger.messages[4:])
    assert (rows_in(harness, "p201905"), rows_in(harness, "p202611")) == (1, 2)
    assert rows_in(harness, "pmax") == 0

    # a row that bypassed upkeep (far future) is reported loudly, never silently kept
    harness.query(
        "INSERT INTO transaction_ledger (entry_id, transaction_id, version_updated_at, entry_type, "
        "customer_id, product_category, transaction_date, amount, `count`, source_partition, "
        "source_offset, ledger_partition, ledger_offset) VALUES ('x', 'x', NOW(), 'new', 'c', 'k', "
        "'2099-01-01', 1, 1, 0, 0, 0, 0)"
    )
    with caplog.at_level(logging.ERROR, logger="sinks.partitions"):
        assert harness.writer.upkeep() == 1
    assert "catch-all" in caplog.text


def test_transactions_never_regress_to_a_stale_duplicate(harness: Harness) -> None:
    ledger = Ledger()
    ledger.accept(make_txn("a", 0, amount_cents=1000))
    ledger.accept(make_txn("a", 5, amount_cents=2000))
    ledger.accept(make_txn("b", 0))
    ledger.accept(make_txn("b", 5, status="declined"))
    first_a, first_b = ledger.messages[:2], ledger.messages[5:7]
    harness.write(ledger.messages)
    harness.write([*first_a, *first_b])  # stale copies redelivered in a later batch
    assert harness.query("SELECT transaction_id, transaction_amount FROM transactions") == [
        ("a", Decimal("20.00"))
    ]
    assert harness.query("SELECT COUNT(*) FROM transaction_versions") == [(4,)]
    assert harness.query("SELECT COUNT(*), SUM(amount) FROM transaction_ledger") == [
        (5, Decimal("20.00"))
    ]


def test_a_refused_unit_is_bisected_out_to_the_dlq_and_the_rest_commits(harness: Harness) -> None:
    ledger = Ledger()
    for i in range(20):
        over: dict[str, object] = {}
        if i == 7:
            over["product_category"] = "x" * 300  # longer than the column: refused in strict mode
        if i == 13:
            over["amount_cents"] = 100_000_000  # fine
        ledger.accept(make_txn(f"t{i:02d}", i, **over))
    harness.write(ledger.messages)
    assert harness.query("SELECT COUNT(*) FROM transactions") == [(19,)]
    assert harness.query(
        "SELECT COUNT(*) FROM transaction_ledger WHERE transaction_id = 't07'"
    ) == [(0,)]
    assert {d.transaction_id for d in harness.dead} == {"t07"} and len(harness.dead) == 2
    assert all(d.stage == "sink" and d.reason == "db_rejected" for d in harness.dead)
    assert "1406" in harness.dead[0].detail  # Data too long
    assert harness.query("SELECT next_offset FROM sink_offsets") == [(40,)]


def test_offsets_moved_by_another_writer_fence_this_one(harness: Harness) -> None:
    ledger = Ledger()
    ledger.accept(make_txn("a", 0))
    harness.write(ledger.messages)
    harness.query("UPDATE sink_offsets SET next_offset = 99")  # someone else took partition 0
    ledger.accept(make_txn("a", 5, amount_cents=5))
    with pytest.raises(FencedError) as fenced:
        harness.write(ledger.messages[2:])
    assert fenced.value.stored == {0: 99}
    assert harness.query("SELECT COUNT(*) FROM transaction_versions") == [(1,)]


def test_a_batch_whose_commit_already_landed_is_not_written_twice(harness: Harness) -> None:
    ledger = Ledger()
    ledger.accept(make_txn("a", 0))
    items: list[Received | DeadLetter] = [
        decode(TOPIC, 0, i, None, m.model_dump_json().encode())
        for i, m in enumerate(ledger.messages)
    ]
    plan = fold(items, {0: 2})
    assert not harness.writer.write(plan, {0: harness.next_offset}).already
    # the connection died after COMMIT but before the reply: the retry finds its own offsets
    assert harness.writer.write(plan, {0: harness.next_offset}).already
    assert harness.query("SELECT COUNT(*) FROM transaction_ledger") == [(1,)]


def test_entries_orphaned_across_batches_wait_in_mysql_for_their_version(harness: Harness) -> None:
    ledger = Ledger()
    ledger.accept(make_txn("a", 0))
    ledger.accept(make_txn("a", 5, amount_cents=3000))
    harness.write(ledger.messages[:4])  # E1 V1 R2 N2: R2 and N2 wait
    assert harness.query("SELECT COUNT(*) FROM sink_pending_entries") == [(2,)]
    harness.writer.reset()  # a restart forgets everything held in memory
    harness.write(ledger.messages[4:])
    assert harness.query("SELECT COUNT(*) FROM sink_pending_entries") == [(0,)]
    assert harness.query("SELECT SUM(amount), SUM(`count`) FROM transaction_ledger") == [
        (Decimal("30.00"), 1)
    ]
    assert harness.query("SELECT transaction_amount FROM transactions") == [(Decimal("30.00"),)]
    _ = timedelta


def test_status_rewind_and_drop_tables(mysql_db: Settings) -> None:
    from schemas import LEDGER
    from sinks.replay import drop_tables, rewind
    from sinks.runner import group_id
    from sinks.status import sink_status

    assert sink_status(mysql_db)["next_offsets"] == {}
    writer = LedgerWriter(
        mysql_db,
        group=group_id(mysql_db),
        topic=mysql_db.topic(LEDGER.suffix),
        dlq_topic="d",
        send_dead=lambda _: None,
        clock=lambda: datetime.now(UTC),
    )
    expected = writer.load_offsets([0, 1])
    ledger = Ledger()
    ledger.accept(make_txn("a", 0, transaction_date=datetime.now(UTC).date()))
    items: list[Received | DeadLetter] = [
        decode(TOPIC, 0, i, None, m.model_dump_json().encode())
        for i, m in enumerate(ledger.messages)
    ]
    writer.write(fold(items, {0: 2}), expected)
    writer.close()
    status = sink_status(mysql_db)
    assert status["next_offsets"] == {0: 2, 1: 0} and status["catch_all_rows"] == 0
    assert status["pending_entries"] == 0 and status["as_of"].endswith("Z")
    assert any(p["name"] == "pmax" for p in status["partitions"])
    rewind(mysql_db, {0: 0, 1: 0})
    assert sink_status(mysql_db)["next_offsets"] == {0: 0, 1: 0}
    assert drop_tables(mysql_db) is True
    assert sink_status(mysql_db) == {"next_offsets": {}, "tables": "missing"}
    assert drop_tables(mysql_db) is False


def test_a_change_of_counted_statuses_takes_effect_by_re_applying_the_versions(
    mysql_db: Settings,
) -> None:
    from common.settings import load_settings

    ledger = Ledger()
    ledger.accept(make_txn("p", 0, status="pending"))
    ledger.accept(make_txn("a", 1, status="approved"))
    ledger.accept(make_txn("d", 2, status="declined"))
    h = Harness(mysql_db, datetime(2026, 11, 30, tzinfo=UTC))
    h.write(ledger.messages)
    assert h.query("SELECT transaction_id FROM transactions ORDER BY 1") == [("a",), ("p",)]
    h.writer.close()

    strict = load_settings({**mysql_db.model_dump(), "counted_statuses": "approved"})
    replay = Harness(strict, datetime(2026, 11, 30, tzinfo=UTC))
    replay.next_offset = 0  # `txnpipe replay --from-beginning` rewound the offsets
    replay.query("UPDATE sink_offsets SET next_offset = 0")
    replay.write(ledger.messages)
    assert replay.query("SELECT transaction_id FROM transactions ORDER BY 1") == [("a",)]
    assert replay.query("SELECT COUNT(*) FROM transaction_versions") == [(3,)]
    replay.writer.close()


def test_migrations_run_again_after_the_connection_is_lost_half_way(mysql_db: Settings) -> None:
    """A connection killed while migrating must not leave the writer believing it migrated
    (the full suite's kill-connection test once caught a KILL on the INSERT of a migration's
    row: every later batch hit 'Unknown column' and went to the DLQ)."""
    from sinks import schema

    real = schema.migrate
    calls: list[int] = []

    def cut_short(conn: object, today: date) -> list[int]:
        calls.append(1)
        if len(calls) == 1:
            conn.cmd_query("SELECT 1")  # type: ignore[attr-defined]
            conn.get_rows()  # type: ignore[attr-defined]
            raise db.DB_ERRORS[0](msg="Lost connection to MySQL server", errno=2013)
        return real(conn, today)  # type: ignore[arg-type]

    schema.migrate = cut_short  # type: ignore[assignment]
    try:
        h = Harness.__new__(Harness)
        h.now = datetime(2026, 11, 30, 12, tzinfo=UTC)
        h.dead = []
        h.writer = LedgerWriter(
            mysql_db,
            group="g",
            topic=TOPIC,
            dlq_topic="ns.dlq",
            send_dead=h.dead.extend,
            clock=lambda: h.now,
        )
        with pytest.raises(db.DB_ERRORS[0]):
            h.writer.connect()
        h.writer.reset()
        h.writer.connect()
    finally:
        schema.migrate = real  # type: ignore[assignment]
    h.next_offset = h.writer.load_offsets([0])[0]
    h.offset = 0
    ledger = Ledger()
    ledger.accept(make_txn("t1", 1))
    h.write(ledger.messages)
    assert len(calls) == 2 and not h.dead
    assert h.query("SELECT COUNT(*) FROM transactions") == [(1,)]
    h.writer.close()


def test_a_schema_error_stops_the_batch_instead_of_dead_lettering_it(harness: Harness) -> None:
    """Unknown column is the schema's fault, not the rows': nothing goes to the DLQ."""
    from mysql.connector.errors import Error as MySQLError

    conn = db.connect(harness.writer.settings, autocommit=True)
    conn.cursor().execute("ALTER TABLE transaction_versions DROP COLUMN stale")
    conn.close()
    ledger = Ledger()
    for i in range(4):
        ledger.accept(make_txn(f"t{i}", i))
    with pytest.raises(MySQLError) as caught:
        harness.write(ledger.messages)
    assert getattr(caught.value, "errno", None) == 1054 and not harness.dead
    harness.writer.reset()
    assert harness.query("SELECT COUNT(*) FROM transactions") == [(0,)]
