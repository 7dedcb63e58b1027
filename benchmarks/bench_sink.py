"""MySQL sink rows/s beside ``LOAD DATA LOCAL INFILE`` of the same rows (same machine, same run).

    .venv/bin/python benchmarks/bench_sink.py [--transactions 100000] [--batch-messages 20000]
                                              [--repeat 2]

1. Pre-fills a fresh ledger topic with what the stream app would publish for
   ``--transactions`` transactions (a new entry + version each; a quarter of them get an
   update: reversal + new entry + version).
2. Runs the sink (in process, ``SinkRunner``) until it has caught up and times first
   message → last commit; best of ``--repeat`` runs, each from an empty database.
   Rows = ledger + versions + ``transactions`` rows written.
3. Ceiling: the same rows dumped to TSV and loaded with ``LOAD DATA LOCAL INFILE`` into
   empty copies of the three tables (same DDL, same partitions, same indexes).
4. For the INSERT-vs-LOAD-DATA question: the same rows again with the sink's multi-row
   INSERT (no Kafka, no logic), so the raw statement cost is visible on its own.

Prints rows/s of each and the ratio sink / LOAD DATA (target >= 60%), rows per CPU-second of
the sink process (steadier than rows/s on a shared box), and the longest gap between two
batch commits under this steady load (target <= 1 s).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

# mysql-connector's C extension must load before confluent-kafka imports ssl.
import _mysql_connector  # noqa: F401

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import mysql.connector
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

import harness
from common.settings import Settings, load_settings
from schemas import Transaction, apply_change
from sinks import db, schema
from sinks.runner import SinkRunner, ensure_topics

TABLES = (schema.LEDGER, schema.VERSIONS, schema.CURRENT)


def prefill(settings: Settings, n: int) -> int:
    """Publish the ledger messages of ``n`` transactions; return the message count."""
    topic = settings.topic("transactions.ledger")
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "batch.size": 1_000_000,
            "enable.idempotence": True,
        }
    )
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    today = date.today()
    sent = 0
    for i in range(n):
        txn = Transaction(
            transaction_id=f"bench{i:08d}",
            customer_id=f"c{i % 5000:05d}",
            product_category=("books", "games", "food", "toys", "café")[i % 5],
            amount_cents=1 + (i * 7919) % 9_999_999,
            transaction_date=today - timedelta(days=i % 400),
            status="approved",
            updated_at=t0 + timedelta(seconds=i),
        )
        versions = [txn]
        if i % 4 == 0:
            versions.append(
                txn.model_copy(
                    update={
                        "amount_cents": txn.amount_cents + 1,
                        "updated_at": txn.updated_at + timedelta(hours=1),
                    }
                )
            )
        current = None
        for v in versions:
            change = apply_change(current, v, accepted_at=v.updated_at, source=(i % 6, i))
            current = v
            for m in change.messages:  # type: ignore[union-attr]
                producer.produce(
                    topic, key=v.transaction_id.encode(), value=m.model_dump_json().encode()
                )
                sent += 1
                if sent % 10000 == 0:
                    producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the broker did not acknowledge every pre-filled message")
    return sent


def connect(settings: Settings, database: str | None = None, *, infile: bool = False) -> object:
    return mysql.connector.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.mysql_user,
        password=settings.mysql_password.get_secret_value(),
        database=database,
        autocommit=False,
        allow_local_infile=infile,
        use_pure=False,
    )


def row_counts(conn: object, database: str) -> dict[str, int]:
    cur = conn.cursor()  # type: ignore[attr-defined]
    out = {}
    for table in TABLES:
        cur.execute(f"SELECT COUNT(*) FROM `{database}`.{table}")
        out[table] = int(cur.fetchone()[0])
    return out


def load_data_ceiling(settings: Settings, source_db: str) -> tuple[float, int]:
    """Dump the sink's rows to TSV, LOAD DATA LOCAL INFILE them into empty copies; rows, secs."""
    target = f"{source_db}_ld"
    conn = connect(settings, infile=True)
    cur = conn.cursor()  # type: ignore[attr-defined]
    cur.execute(f"CREATE DATABASE `{target}` DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_bin")
    files: dict[str, tuple[Path, list[str]]] = {}
    tmp = Path(
        tempfile.mkdtemp(
            prefix="bench_sink_", dir="/dev/shm" if os.path.isdir("/dev/shm") else None
        )
    )
    for table in TABLES:
        cur.execute(f"CREATE TABLE `{target}`.{table} LIKE `{source_db}`.{table}")
        cur.execute(f"SHOW COLUMNS FROM `{source_db}`.{table}")
        columns = [f"`{r[0]}`" for r in cur.fetchall()]
        cur.execute(f"SELECT {', '.join(columns)} FROM `{source_db}`.{table}")
        path = tmp / f"{table}.tsv"
        with open(path, "w", encoding="utf-8") as fh:
            for row in cur.fetchall():
                fh.write("\t".join(r"\N" if v is None else str(v) for v in row) + "\n")
        files[table] = (path, columns)
    conn.commit()  # type: ignore[attr-defined]
    rows = 0
    started = time.perf_counter()
    for table, (path, columns) in files.items():
        cur.execute(
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE `{target}`.{table} "
            f"CHARACTER SET utf8mb4 ({', '.join(columns)})"
        )
        rows += cur.rowcount
    conn.commit()  # type: ignore[attr-defined]
    seconds = time.perf_counter() - started
    cur.execute(f"DROP DATABASE `{target}`")
    conn.close()  # type: ignore[attr-defined]
    for path, _ in files.values():
        path.unlink()
    tmp.rmdir()
    return rows, seconds


def insert_only(settings: Settings, source_db: str, rows_per_statement: int) -> tuple[int, float]:
    """The same rows with the sink's multi-row INSERT (no Kafka, no logic): rows, secs."""
    target = f"{source_db}_ins"
    conn = connect(settings)
    cur = conn.cursor()  # type: ignore[attr-defined]
    cur.execute(f"CREATE DATABASE `{target}` DEFAULT CHARSET utf8mb4 COLLATE utf8mb4_bin")
    data: dict[str, tuple[list[str], list[tuple[object, ...]]]] = {}
    for table in TABLES:
        cur.execute(f"CREATE TABLE `{target}`.{table} LIKE `{source_db}`.{table}")
        cur.execute(f"SHOW COLUMNS FROM `{source_db}`.{table}")
        columns = [f"`{r[0]}`" for r in cur.fetchall()]
        cur.execute(f"SELECT {', '.join(columns)} FROM `{source_db}`.{table}")
        data[table] = (columns, cur.fetchall())
    conn.commit()  # type: ignore[attr-defined]
    prepare = conn.prepare_for_mysql  # type: ignore[attr-defined]
    rows = 0
    started = time.perf_counter()
    for table, (columns, values) in data.items():
        head = f"INSERT INTO `{target}`.{table} ({', '.join(columns)}) VALUES ".encode()
        for i in range(0, len(values), rows_per_statement):
            chunk = values[i : i + rows_per_statement]
            cur.execute(head + b",".join(b"(" + b",".join(prepare(r)) + b")" for r in chunk))
            rows += len(chunk)
    conn.commit()  # type: ignore[attr-defined]
    seconds = time.perf_counter() - started
    cur.execute(f"DROP DATABASE `{target}`")
    conn.close()  # type: ignore[attr-defined]
    return rows, seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--transactions", type=int, default=100_000)
    parser.add_argument("--batch-messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2, help="sink runs, the best counts (2)")
    parser.add_argument("--keep", action="store_true", help="keep the database and topics")
    args = parser.parse_args()
    logging.basicConfig(
        level=os.environ.get("BENCH_LOG", "WARNING"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    settings = load_settings({"namespace": namespace, "mysql_database": f"txnpipe_{namespace}"})
    ensure_topics(settings)
    t = time.perf_counter()
    messages = prefill(settings, args.transactions)
    print(
        f"pre-filled {messages} ledger messages ({args.transactions} transactions) "
        f"in {time.perf_counter() - t:.1f}s"
    )
    try:
        # Best of --repeat sink runs (each from an empty database), as the ceiling below is
        # the best of two: the shared 2-core box is noisy for both.
        best: SinkRunner | None = None
        sink_seconds = sink_cpu = float("inf")
        for attempt in range(max(1, args.repeat)):
            if attempt:
                drop = db.connect(settings, database=False, autocommit=True)
                drop.cursor().execute(f"DROP DATABASE `{settings.mysql_database}`")
                drop.close()
            runner = SinkRunner(settings, batch_messages=args.batch_messages, idle_seconds=2.0)
            cpu0 = time.process_time()
            runner.run(until_idle=True)
            cpu = time.process_time() - cpu0  # the sink's threads (and librdkafka's) only
            assert runner.first_message_at is not None and runner.commit_times
            seconds = runner.commit_times[-1] - runner.first_message_at
            print(f"sink run {attempt + 1}: {seconds:.2f}s")
            if seconds < sink_seconds:
                best, sink_seconds, sink_cpu = runner, seconds, cpu
        assert best is not None and best.first_message_at is not None
        runner = best
        conn = connect(settings)
        counts = row_counts(conn, settings.mysql_database)
        conn.close()  # type: ignore[attr-defined]
        sink_rows = sum(counts.values())
        gaps = [
            b - a
            for a, b in zip(
                [runner.first_message_at, *runner.commit_times], runner.commit_times, strict=False
            )
        ]
        # Alternate and keep the best of two: the shared 2-core box is noisy, and whatever
        # runs first pays for flushing the pages the previous step dirtied.
        ld_rows, ld_seconds = load_data_ceiling(settings, settings.mysql_database)
        ins_rows, ins_seconds = insert_only(settings, settings.mysql_database, 2000)
        ld_seconds = min(ld_seconds, load_data_ceiling(settings, settings.mysql_database)[1])
        ins_seconds = min(ins_seconds, insert_only(settings, settings.mysql_database, 2000)[1])
        sink_rate, ld_rate, ins_rate = (
            sink_rows / sink_seconds,
            ld_rows / ld_seconds,
            ins_rows / ins_seconds,
        )
        print(f"rows written by the sink: {counts} = {sink_rows}")
        print(
            f"sink (Kafka → MySQL, exactly once): {sink_rows} rows in {sink_seconds:.2f}s = "
            f"{sink_rate:,.0f} rows/s ({messages / sink_seconds:,.0f} messages/s), "
            f"{len(runner.commit_times)} batches, longest gap between commits {max(gaps):.2f}s; "
            f"{sink_rows / sink_cpu:,.0f} rows per CPU-second of the sink process "
            f"({sink_cpu / messages * 1e6:.1f} us of CPU per message)"
        )
        print(
            f"LOAD DATA LOCAL INFILE (ceiling):   {ld_rows} rows in {ld_seconds:.2f}s = "
            f"{ld_rate:,.0f} rows/s"
        )
        print(
            f"multi-row INSERT alone (2000 rows): {ins_rows} rows in {ins_seconds:.2f}s = "
            f"{ins_rate:,.0f} rows/s "
            f"({ins_rate / ld_rate:.0%} of LOAD DATA)"
        )
        print(f"ratio sink / LOAD DATA = {sink_rate / ld_rate:.0%} (target >= 60%)")
        print(
            f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end "
            "(the sink needs a core for Python and one for MariaDB; other load shows here)"
        )
    finally:
        if not args.keep:
            conn = db.connect(settings, database=False, autocommit=True)
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{settings.mysql_database}`")
            conn.close()
            admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
            for future in admin.delete_topics(
                [settings.topic("transactions.ledger"), settings.topic("transactions.dlq")]
            ).values():
                with contextlib.suppress(Exception):
                    future.result(10)
    return 0


if __name__ == "__main__":
    harness.run(main, mysql=True)
