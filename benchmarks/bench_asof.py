"""As-of answers over ``--versions`` (1M) stored versions, beside a bare full scan of the table.

    .venv/bin/python benchmarks/bench_asof.py [--versions 1000000] [--repeat 2]

1. A fresh database migrated by the sink itself (``LedgerWriter.connect``: migration 3's
   stale column, covering indexes and procedures included).
2. Loads ``--versions`` versions (≈3 per transaction: status, amount and date changes, a few
   stale-flagged late replicas) with ``LOAD DATA LOCAL INFILE`` in the sink's own column
   order — the fastest honest way: it is the sink's bulk path, indexes maintained.
3. Times each of the three as-of answers (``sinks.asof.rows_as_of``: the ``CALL`` of the
   stored procedure a user would run) at two instants (mid-history and after the end), and
   one ``restatements`` of 3 months; best of ``--repeat``.
4. Raw limit in the same run: ``SELECT COUNT(*), SUM(transaction_amount)`` over the table
   (a bare full scan of the clustered index), and the same over the covering index.

Prints seconds and the ratio of each answer to the bare full scan.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _mysql_connector  # noqa: F401  (before anything imports ssl)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import harness
from common.settings import Settings, load_settings
from sinks import asof, db
from sinks.asof_sql import CATEGORY_INDEX
from sinks.batch import VERSION_COLUMNS
from sinks.statements import make_infile_dir
from sinks.writer import LedgerWriter

CATEGORIES = ("groceries", "restaurants", "electronics", "apparel", "books", "travel", "café")
STATUSES = ("approved", "approved", "approved", "pending", "declined", "reversed")
T0 = datetime(2025, 1, 1, tzinfo=UTC)
SPAN_S = 700 * 86_400


def write_tsv(path: str, n: int) -> tuple[int, int]:
    """``n`` version lines (sink column order) → (versions, transactions)."""
    rng = random.Random(13)
    written = txns = 0
    ids = "0123456789abcdef0123456789abcdef,fedcba9876543210fedcba9876543210"
    with open(path, "w", encoding="utf-8") as fh:
        while written < n:
            tid = f"{1_000_000_000_000 + txns}"
            cust = str(100_000 + rng.randrange(20_000))
            cat = rng.choice(CATEGORIES)
            cents = rng.randrange(100, 100_000)
            at = T0 + timedelta(seconds=rng.randrange(SPAN_S))
            day = at.date()
            for j in range(rng.choice((1, 2, 3, 3, 4, 5))):
                status = "pending" if j == 0 else rng.choice(STATUSES)
                stale = int(j > 1 and rng.random() < 0.05)
                stamp = at.strftime("%Y-%m-%d %H:%M:%S.%f")
                fh.write(
                    f"{tid}\t{stamp}\t{cust}\t{cat}\t{cents // 100}.{cents % 100:02d}\t{day}\t"
                    f"{status}\t{int(status in ('pending', 'approved'))}\t\\N\t{ids}\t{stamp}\t"
                    f"0\t{written}\t0\t{written}\t{stale}\n"
                )
                written += 1
                at += timedelta(seconds=rng.randrange(60, 20 * 86_400))
                if rng.random() < 0.2:
                    cents = rng.randrange(100, 100_000)
                if rng.random() < 0.1:
                    day = day - timedelta(days=rng.randrange(1, 40))
            txns += 1
    return written, txns


def best(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    base = load_settings()
    name = f"txnpipe_bench_asof_{uuid.uuid4().hex[:8]}"
    settings: Settings = load_settings({**base.model_dump(), "mysql_database": name})
    writer = LedgerWriter(settings, group="bench", topic="bench", dlq_topic="bench.dlq",
                          send_dead=lambda _: None, clock=lambda: datetime.now(UTC))  # fmt: skip
    infile = make_infile_dir()
    path = os.path.join(infile, "versions.tsv")
    try:
        writer.connect()
        writer.close()
        n, txns = write_tsv(path, args.versions)
        conn = db.connect(settings, autocommit=True, infile_dir=infile)
        cur = conn.cursor()
        t = time.perf_counter()
        cur.execute(
            f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE transaction_versions "
            f"CHARACTER SET utf8mb4 ({', '.join(VERSION_COLUMNS)})"
        )
        load_s = time.perf_counter() - t
        os.unlink(path)
        cur.execute("ANALYZE TABLE transaction_versions")
        cur.fetchall()
        print(f"{n:,} versions of {txns:,} transactions loaded in {load_s:.1f}s "
              f"({n / load_s:,.0f} rows/s, LOAD DATA, indexes maintained)")  # fmt: skip

        def scan(index: str = "") -> None:
            hint = f" FORCE INDEX ({index})" if index else ""
            cur.execute(f"SELECT COUNT(*), SUM(transaction_amount) FROM transaction_versions{hint}")
            cur.fetchall()

        raw = best(scan, args.repeat)
        raw_index = best(lambda: scan(CATEGORY_INDEX), args.repeat)
        print(f"raw limit: bare full scan of the table {raw:.2f}s; "
              f"of the covering index {raw_index:.2f}s")  # fmt: skip
        counted = settings.counted
        for at in (T0 + timedelta(seconds=SPAN_S // 2), T0 + timedelta(seconds=2 * SPAN_S)):
            for question in ("categories", "top-customers", "monthly"):
                secs = best(lambda q=question, a=at: asof.rows_as_of(cur, q, a, counted, 5),
                            args.repeat)  # fmt: skip
                print(f"query {question:<13} --as-of {at:%Y-%m-%dT%H:%MZ}: {secs:5.2f}s "
                      f"= {secs / raw:.1f}x the bare full scan")  # fmt: skip
        cur.close()
        conn.close()
        now = T0 + timedelta(seconds=SPAN_S)
        secs = best(lambda: asof.restate(settings, 3, 5, now), 1)
        print(f"restatements --months 3 (now={now:%Y-%m-%d}): {secs:.2f}s = {secs / raw:.1f}x")
    finally:
        writer.close()
        if os.path.exists(path):
            os.unlink(path)
        os.rmdir(infile)
        conn = db.connect(settings, database=False, autocommit=True)
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
    return 0


if __name__ == "__main__":
    harness.run(main, mysql=True)
