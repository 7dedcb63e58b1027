"""Scaling benchmark: 1, 2 and 4 stream workers, then 1 and 2 sinks, over the same topics.

    .venv/bin/python benchmarks/bench_scale.py [--records 300000] [--partitions 12]
                                               [--workers 1,2,4] [--sinks 1,2]

1. Pre-fills a fresh raw topic (``--partitions``) with dirty records in the poller's batch
   form, once. Raw limit of this machine: one plain confluent consumer that reads and
   ``json.loads`` every message (records/s, one core).
2. For each worker count N: the stream state is reset (Redis keys of the namespace, the
   consumer group deleted, empty ledger and DLQ topics) and N ``txnpipe stream``
   processes are started. Measured from the moment every member holds partitions and the
   group is stable until every partition's watermark passed the last offset: records/s
   of all workers, CPU seconds of each worker (``/proc``), records per CPU-second, and the
   efficiency against one worker — by wall clock (rate_N / (N x rate_1)) and by CPU
   (records per CPU-second at N / at 1). On 2 cores the wall-clock gain is bounded by the
   machine; records per CPU-second is the figure to compare.
3. The ledger the last stream run wrote is then drained by M ``txnpipe sink`` processes
   into a fresh database each time: ledger messages/s, CPU seconds, efficiency likewise.
4. Beside each run: CPU microseconds per unit of the local Redis and MySQL servers (found
   by process name; they are shared, so an upper bound) — the figures docs/SCALING.md
   sizes Redis and MySQL from.

Stages are started and stopped by ``txnpipe.supervisor.Supervisor`` (it waits for each
group to settle before stopping its next member). Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402
from common.kafka import admin_client, committed_offsets, end_offsets  # noqa: E402
from common.settings import Settings, load_settings  # noqa: E402
from tests.unit.stream_app.history import batches, generate  # noqa: E402
from txnpipe.commands.run import child_env, settled_check, sink_group, stream_group  # noqa: E402
from txnpipe.supervisor import Stage, Supervisor  # noqa: E402

RAW, LEDGER, DLQ = "transactions.raw", "transactions.ledger", "transactions.dlq"


SERVERS = {"redis-server": "redis", "mariadbd": "mysql", "mysqld": "mysql"}


def servers() -> dict[str, int]:
    """Pids of the local Redis and MySQL servers by process name (their CPU is measured)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                name = SERVERS.get((entry / "comm").read_text().strip())
                if name:
                    found[name] = int(entry.name)
    return found


@dataclass
class Run:
    members: int
    units: int  # records (stream) or ledger messages (sink) done in the window
    seconds: float
    cpu: list[float]  # CPU seconds of each member in the window
    machine: float  # busy share of the whole machine in the window
    server_cpu: dict[str, float]  # CPU seconds of the local Redis / MySQL server (shared!)

    @property
    def rate(self) -> float:
        return self.units / self.seconds

    @property
    def per_cpu(self) -> float:
        return self.units / max(sum(self.cpu), 1e-9)


def prefill(settings: Settings, records: int, page: int) -> tuple[int, int, dict[int, int]]:
    """Poller-shaped batches of dirty records; (records, messages, last offset per partition)."""
    from confluent_kafka import Producer

    hist = generate(42, max(1, records // 2), now=datetime.now(UTC).replace(minute=0, second=0))
    served = hist.served[:records]
    producer = Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 1_000_000,
        }
    )
    last: dict[int, int] = {}

    def delivered(err: object, msg: object) -> None:
        if err is None:
            p, o = msg.partition(), msg.offset()  # type: ignore[attr-defined]
            last[p] = max(last.get(p, -1), o)

    count = 0
    for p, key, value in batches(served, settings.partitions, page=page):
        while True:
            try:
                producer.produce(
                    settings.topic(RAW), value, key, partition=p, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        producer.poll(0)
    producer.flush(60)
    return len(served), count, last


def raw_limit(settings: Settings, messages: int) -> float:
    """Records/s of a plain confluent consumer that only reads and parses (one core)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"bench-raw-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "fetch.queue.backoff.ms": 10,
            "queued.min.messages": 1_000_000,
        }
    )
    consumer.assign([TopicPartition(settings.topic(RAW), p, 0) for p in range(settings.partitions)])
    seen = records = 0
    started = time.perf_counter()
    while seen < messages:
        for m in consumer.consume(num_messages=1000, timeout=1.0):
            if m.error() is None:
                value = json.loads(m.value())
                records += len(value) if isinstance(value, list) else 1
                seen += 1
    elapsed = time.perf_counter() - started
    consumer.close()
    return records / elapsed


def recreate(settings: Settings, names: list[str]) -> None:
    """Delete and create ``names`` again, empty (the broker takes a moment to forget them)."""
    from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

    admin = admin_client(settings.kafka_bootstrap)
    for f in admin.delete_topics(names, operation_timeout=10).values():
        with contextlib.suppress(Exception):
            f.result(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        futures = admin.create_topics([NewTopic(n, settings.partitions, 1) for n in names])
        failed = False
        for f in futures.values():
            try:
                f.result(10)
            except Exception:
                failed = True
        if not failed:
            return
        names = [n for n in names if n not in admin.list_topics(timeout=10).topics]
        if not names:
            return
        time.sleep(0.5)
    raise SystemExit(f"cannot create topics {names} again")


def reset_stream(settings: Settings, redis_client: object) -> None:
    """Stream state back to nothing: Redis keys, no group offsets, empty ledger and DLQ."""
    keys = list(redis_client.scan_iter(match=f"{settings.namespace}:*", count=1000))  # type: ignore[attr-defined]
    for i in range(0, len(keys), 1000):
        redis_client.delete(*keys[i : i + 1000])  # type: ignore[attr-defined]
    # The group must start from offset 0 again. A stopped member stays in the group until
    # its session times out, and the broker refuses to delete a group with members: retry.
    group, raw = stream_group(settings), settings.topic(RAW)
    admin = admin_client(settings.kafka_bootstrap)
    deadline = time.monotonic() + 60
    while committed_offsets(settings.kafka_bootstrap, group, raw):
        if time.monotonic() > deadline:
            raise SystemExit(f"cannot reset the offsets of group {group}")
        with contextlib.suppress(Exception):
            admin.delete_consumer_groups([group], request_timeout=5)[group].result(5)
        time.sleep(0.5)
    recreate(settings, [settings.topic(LEDGER), settings.topic(DLQ)])
    shutil.rmtree(settings.state_dir / "faust", ignore_errors=True)


def wait_members(settings: Settings, tree: Supervisor, group: str, marker: str) -> None:
    """Until every member logged an assignment of at least one partition and the group is
    stable (the bundled broker's DescribeGroups lists no members, so their logs tell)."""
    pattern = re.compile(re.escape(marker) + r"\d")
    settled = settled_check(settings)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        logs = [s.log_path.read_text(errors="replace") if s.log_path.exists() else ""
                for s in tree.stages]  # fmt: skip
        if all(pattern.search(text) for text in logs) and settled(group):
            return
        time.sleep(0.1)
    raise SystemExit(f"group {group}: not every member was assigned a partition in 180 s")


def measure(tree: Supervisor, progress: Callable[[], int], done: Callable[[], bool]) -> Run:
    """Units done, seconds, CPU of each member and of the servers, from now until ``done()``."""
    pids = [s.proc.pid for s in tree.stages if s.proc is not None]
    cpu0 = [harness.cpu_seconds(p) for p in pids]
    others = servers()
    server0 = {k: harness.cpu_seconds(p) for k, p in others.items()}
    busy0, units0, t0 = harness.machine_busy(), progress(), time.perf_counter()
    deadline = time.monotonic() + 1200
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("did not finish in 20 minutes")
        time.sleep(0.05)
    t1, units1, busy1 = time.perf_counter(), progress(), harness.machine_busy()
    cpu = [harness.cpu_seconds(p) - c for p, c in zip(pids, cpu0, strict=True)]
    machine = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
    server = {k: harness.cpu_seconds(p) - server0[k] for k, p in others.items()}
    return Run(0, units1 - units0, t1 - t0, cpu, machine, server)


def stream_run(settings: Settings, n: int, last: dict[int, int], r: object, logs: Path) -> Run:
    import redis

    assert isinstance(r, redis.Redis)
    reset_stream(settings, r)
    argv = ["stream", "--web-port", "0", "--session-timeout", "6", "--no-broker"]
    stages = [
        Stage(f"stream-{i}", argv, logs / f"n{n}-stream-{i}.log", group=stream_group(settings))
        for i in range(1, n + 1)
    ]
    tree = Supervisor(stages, child_env(settings), settled=settled_check(settings))
    stats, wm = f"{settings.namespace}:stats", f"{settings.namespace}:wm"

    def progress() -> int:
        return sum(
            int(x) for x in r.hmget(stats, ("accepted", "duplicates", "stale", "invalid")) if x
        )

    def finished() -> bool:
        marks = {int(k): int(v) for k, v in r.hgetall(wm).items()}
        return all(marks.get(p, -1) >= o for p, o in last.items())

    tree.start()
    try:
        wait_members(settings, tree, stream_group(settings), "assigned partitions=[")
        run = measure(tree, progress, finished)
    finally:
        tree.stop()
    run.members = n
    return run


def sink_run(settings: Settings, m: int, ends: dict[int, int], logs: Path) -> Run:
    import mysql.connector

    db = f"bench_{settings.namespace}_{m}"
    mine = settings.model_copy(update={"mysql_database": db})
    stages = [
        Stage(f"sink-{i}", ["sink"], logs / f"m{m}-sink-{i}.log", group=sink_group(mine))
        for i in range(1, m + 1)
    ]
    tree = Supervisor(stages, child_env(mine), settled=settled_check(mine))
    conn = mysql.connector.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.mysql_user,
        autocommit=True,
        password=settings.mysql_password.get_secret_value(),
    )
    total = sum(ends.values())

    def progress() -> int:
        try:
            cur = conn.cursor()
            cur.execute(
                f"SELECT COALESCE(SUM(next_offset), 0) FROM `{db}`.sink_offsets WHERE topic = %s",
                (settings.topic(LEDGER),),
            )
            (value,) = cur.fetchone()
            cur.close()
            return int(value)
        except mysql.connector.Error:
            return 0  # tables not created yet

    tree.start()
    try:
        wait_members(mine, tree, sink_group(mine), "sink: assigned partitions [")
        run = measure(tree, progress, lambda: progress() >= total)
    finally:
        tree.stop()
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()
    run.members = m
    return run


def report(kind: str, unit: str, runs: list[Run]) -> None:
    one = runs[0]
    for run in runs:
        wall = run.rate / (run.members / one.members * one.rate)
        cpu = run.per_cpu / one.per_cpu
        each = " ".join(f"{c:.1f}" for c in run.cpu)
        per = " ".join(f"{k} {v / max(run.units, 1) * 1e6:.1f}" for k, v in run.server_cpu.items())
        print(
            f"{kind} x{run.members}: {run.rate:>9,.0f} {unit}/s total  "
            f"{run.per_cpu:>8,.0f} {unit} per CPU-second  efficiency wall {wall:4.0%} "
            f"cpu {cpu:4.0%}  ({run.units} {unit} in {run.seconds:.1f}s; CPU s per member "
            f"[{each}]; machine {run.machine:.0%} busy; server CPU us per {unit[:-1]}: "
            f"{per or 'n/a'}, shared servers)"
        )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--partitions", type=int, default=12)
    ap.add_argument("--page", type=int, default=1000, help="records per API page")
    ap.add_argument("--workers", default="1,2,4", help="stream worker counts to run")
    ap.add_argument("--sinks", default="1,2", help="sink counts to run (0: none)")
    args = ap.parse_args()
    workers = [int(x) for x in args.workers.split(",") if x.strip()]
    sinks = [int(x) for x in args.sinks.split(",") if x.strip() and int(x) > 0]

    import redis

    from stream_app.topics import ensure_topics

    ns = f"bench{uuid.uuid4().hex[:6]}"
    logs = Path(f"/tmp/{ns}-scale")
    logs.mkdir(parents=True, exist_ok=True)
    settings = load_settings(
        {"namespace": ns, "partitions": args.partitions, "state_dir": logs / "state"}
    )
    r = redis.Redis.from_url(settings.redis_url)
    ensure_topics(settings)
    try:
        t = time.perf_counter()
        n_records, n_messages, last = prefill(settings, args.records, args.page)
        print(
            f"prefilled {n_records} records in {n_messages} messages over "
            f"{args.partitions} partitions ({time.perf_counter() - t:.1f}s); logs in {logs}"
        )
        limit = raw_limit(settings, n_messages)
        print(f"raw limit: one plain confluent consumer + json.loads: {limit:,.0f} records/s")
        runs = [stream_run(settings, n, last, r, logs) for n in workers]
        report("stream", "records", runs)
        print(
            "ratio     per-worker records per CPU-second / raw limit: "
            + ", ".join(f"x{run.members} {run.per_cpu / limit:.2f}" for run in runs)
        )
        if sinks:
            ends = end_offsets(settings.kafka_bootstrap, settings.topic(LEDGER))
            print(f"sink over the last stream run's ledger: {sum(ends.values())} messages")
            sink_runs = [sink_run(settings, m, ends, logs) for m in sinks]
            report("sink", "messages", sink_runs)
    finally:
        keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])
        admin = admin_client(settings.kafka_bootstrap)
        for f in admin.delete_topics(
            [settings.topic(x) for x in (RAW, LEDGER, DLQ)], operation_timeout=10
        ).values():
            with contextlib.suppress(Exception):
                f.result(10)
        shutil.rmtree(logs / "state", ignore_errors=True)
    return 0


if __name__ == "__main__":
    harness.run(main, mysql=True, redis=True)
