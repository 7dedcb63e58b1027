"""Stream app benchmark: records/s of ONE `txnpipe stream` worker vs a plain confluent loop.

    .venv/bin/python benchmarks/bench_stream.py [--records 300000] [--freshness-seconds 30]

1. Pre-fills a fresh raw topic with realistic dirty records in the poller's batch form
   (each page of --page records split per partition into JSON arrays).
2. Baselines: a plain confluent-kafka consume loop doing the fold (clean, dedup, version,
   aggregate, ledger JSON) in a dict, no Redis, no publishing — once with the fold as it
   was before the fast path (``frozen_fold.py``) and once with today's.
3. The real worker (`txnpipe stream` subprocess): Faust take() + one Lua call per
   partition batch + ledger publish. Rate from its first applied batch to the end, and
   records per CPU-second of the worker process (/proc: user + system), which the shared
   box's noise moves far less than records/s.
4. Freshness: a steady --rate records/s (pages every 100 ms), publish -> visible in Redis
   (the partition watermark passes the message's offset), p50/p99.
5. The worker's RSS sampled throughout (start, middle, end of the backlog, then steady).
Prints the figures and the ratios to the frozen-fold loop. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

import frozen_fold  # noqa: E402
import harness  # noqa: E402
from common.settings import Settings, load_settings  # noqa: E402
from schemas import Transaction  # noqa: E402
from schemas.cleaning import CleaningError  # noqa: E402
from schemas.transaction import clean_record  # noqa: E402
from stream_app.fold import RawMessage, fold_batch, parse_batch  # noqa: E402
from stream_app.topics import ensure_topics  # noqa: E402
from tests.unit.stream_app.history import batches, generate  # noqa: E402


def _producer(settings: Settings) -> Producer:
    return Producer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.size": 1_000_000,
        }
    )


def canonical_form(record: Any) -> Any:
    """The record as a tidy API serves it (trimmed, ``1234.50``, ISO date, ``Z`` time); an
    invalid one stays as it is."""
    try:
        t = clean_record(record)
    except CleaningError:
        return record
    return {
        "transaction_id": t.transaction_id,
        "customer_id": t.customer_id,
        "product_category": t.product_category,
        "transaction_amount": f"{t.amount_cents // 100}.{t.amount_cents % 100:02d}",
        "transaction_date": t.transaction_date.isoformat(),
        "status": t.status,
        "updated_at": t.updated_at.isoformat().replace("+00:00", "Z"),
    }


def prefill(
    settings: Settings, records: int, page: int, feed: str = "dirty"
) -> tuple[int, int, dict[int, int]]:
    hist = generate(42, max(1, records // 2), now=datetime.now(UTC).replace(minute=0, second=0))
    served = hist.served[:records]
    if feed == "canonical":
        served = [canonical_form(r) for r in served]
    producer = _producer(settings)
    last: dict[int, int] = {}
    count = 0

    def on_delivery(err: object, msg: object) -> None:
        if err is None:
            p, o = msg.partition(), msg.offset()  # type: ignore[attr-defined]
            last[p] = max(last.get(p, -1), o)

    for p, key, value in batches(served, settings.partitions, page=page):
        while True:
            try:
                producer.produce(settings.topic("transactions.raw"), value, key, partition=p,
                                 on_delivery=on_delivery)  # fmt: skip
                break
            except BufferError:
                producer.poll(0.05)
        count += 1
        producer.poll(0)
    producer.flush(60)
    return len(served), count, last


def baseline(settings: Settings, total_messages: int, frozen: bool) -> tuple[float, float]:
    """Plain confluent loop, the fold with an in-memory dict: records/s, records/CPU-s.
    ``frozen``: the parse and fold as they were before the fast path."""
    parse, fold_fn = (
        (frozen_fold.parse_batch, frozen_fold.fold_batch) if frozen else (parse_batch, fold_batch)
    )
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.queue.backoff.ms": 10,
            "queued.min.messages": 1_000_000,
        }
    )
    topic = settings.topic("transactions.raw")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.partitions)])
    state: dict[int, dict[str, Transaction | None]] = {p: {} for p in range(settings.partitions)}
    seen = records = 0
    started, cpu0 = time.perf_counter(), time.process_time()
    while seen < total_messages:
        msgs = consumer.consume(num_messages=1000, timeout=1.0)
        per: dict[int, list[RawMessage]] = {}
        for m in msgs:
            if m.error():
                continue
            per.setdefault(m.partition(), []).append(RawMessage(m.offset(), m.key(), m.value()))
            seen += 1
        for p, raw in per.items():
            parsed = parse(p, raw)
            records += sum(len(r) for r in parsed.results)
            fold = fold_fn(parsed, state[p], watermark=-1, counted=settings.counted,
                           raw_topic=topic, accepted_at=datetime.now(UTC))  # fmt: skip
            state[p].update(fold.states)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu0
    consumer.close()
    return records / elapsed, records / max(cpu, 1e-9)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[int] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            kb = rss_kb(self.pid)
            if kb:
                self.samples.append(kb)
            time.sleep(0.5)


def start_worker(settings: Settings, batch_size: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TXNPIPE_NAMESPACE": settings.namespace}
    return subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "txnpipe"), "stream", "--web-port", "0",
         "--batch-size", str(batch_size), "--session-timeout", "6", "--log-level", "INFO"],
        env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip


def worker_rate(
    settings: Settings, last: dict[int, int], r: redis.Redis, pid: int
) -> tuple[float, int, float, float]:
    """Records/s from the first applied batch to the end; the worker's share of one core
    and the whole machine's busy share over the same window."""
    stats_key, wm_key = f"{settings.namespace}:stats", f"{settings.namespace}:wm"
    fields = ("accepted", "duplicates", "stale", "invalid")
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        pipe = r.pipeline(transaction=True)  # watermarks and counters of the same instant
        pipe.hgetall(wm_key)
        pipe.hmget(stats_key, fields)
        raw_wm, stats = pipe.execute()
        done = sum(int(x) for x in stats if x)
        now = time.perf_counter()
        if done and first is None:
            first = (now, done)
            cpu0, busy0 = cpu_seconds(pid), machine_busy()
        wm = {int(k): int(v) for k, v in raw_wm.items()}
        if all(wm.get(p, -1) >= o for p, o in last.items()):
            assert first is not None
            elapsed = max(now - first[0], 1e-9)
            busy1 = machine_busy()
            machine = (busy1[0] - busy0[0]) / max(busy1[1] - busy0[1], 1)
            return (done - first[1]) / elapsed, done, (cpu_seconds(pid) - cpu0) / elapsed, machine
        time.sleep(0.02)
    raise SystemExit("the worker did not finish in 900 s")


def wait_ready(settings: Settings, r: redis.Redis, timeout: float = 120) -> None:
    """Until the worker owns every partition (each has a watermark)."""
    deadline = time.monotonic() + timeout
    while r.hlen(f"{settings.namespace}:wm") < settings.partitions:
        if time.monotonic() > deadline:
            raise SystemExit("the worker did not start")
        time.sleep(0.1)


WARMUP = 3.0  # seconds of traffic not measured: the worker's first fetches after joining


def freshness(settings: Settings, r: redis.Redis, rate: int, seconds: float) -> list[float]:
    """Publish ``rate`` records/s as 10 pages/s; latency until the watermark passes each."""
    seconds += WARMUP
    hist = generate(43, rate * int(seconds), now=datetime.now(UTC).replace(minute=0, second=0))
    producer = _producer(settings)
    sent: dict[tuple[int, int], float] = {}
    lock = threading.Lock()
    wm_key = f"{settings.namespace}:wm"
    per_tick = max(1, rate // 10)
    pending: dict[int, list[tuple[int, float]]] = {}

    def on_delivery(err: object, msg: object, t0: float = 0.0) -> None:
        if err is None:
            with lock:
                pending.setdefault(msg.partition(), []).append((msg.offset(), t0))  # type: ignore[attr-defined]

    latencies: list[float] = []
    stop = threading.Event()
    measure_from = float("inf")

    def watch() -> None:
        while not stop.is_set() or any(pending.values()):
            wm = {int(k): int(v) for k, v in r.hgetall(wm_key).items()}
            now = time.perf_counter()
            with lock:
                for p, items in pending.items():
                    keep = []
                    for offset, t0 in items:
                        if wm.get(p, -1) >= offset:
                            if t0 >= measure_from:  # the first seconds are warm-up
                                latencies.append(now - t0)
                        else:
                            keep.append((offset, t0))
                    pending[p] = keep
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    served = hist.served
    start = time.perf_counter()
    measure_from = start + WARMUP
    for tick, i in enumerate(range(0, len(served), per_tick), start=1):
        page = served[i : i + per_tick]
        t0 = time.perf_counter()
        for p, key, value in batches(page, settings.partitions, page=per_tick):
            producer.produce(settings.topic("transactions.raw"), value, key, partition=p,
                             on_delivery=lambda e, m, t=t0: on_delivery(e, m, t))  # fmt: skip
        producer.poll(0)
        time.sleep(max(0.0, start + tick * 0.1 - time.perf_counter()))
        if time.perf_counter() - start > seconds:
            break
    producer.flush(30)
    stop.set()
    watcher.join(60)
    del sent
    return latencies


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--records", type=int, default=300_000)
    ap.add_argument("--page", type=int, default=1000, help="records per API page")
    ap.add_argument("--batch-size", type=int, default=1000, help="worker --batch-size")
    ap.add_argument("--rate", type=int, default=1000, help="records/s for freshness")
    ap.add_argument("--freshness-seconds", type=float, default=30.0)
    ap.add_argument("--freshness-only", action="store_true", help="skip the throughput run")
    ap.add_argument("--feed", choices=("dirty", "canonical"), default="dirty",
                    help="dirty: every field in one of CONTRACT §1's forms (the test feed); "
                    "canonical: the same records as a tidy API serves them")  # fmt: skip
    args = ap.parse_args()

    settings = load_settings({"namespace": f"bench{uuid.uuid4().hex[:6]}"})
    ensure_topics(settings)
    r = redis.Redis.from_url(settings.redis_url)
    log = Path(f"/tmp/{settings.namespace}-worker.log")
    worker: subprocess.Popen[bytes] | None = None
    throughput_samples = 0
    try:
        if args.freshness_only:
            worker = start_worker(settings, args.batch_size, log)
            sampler = Sampler(worker.pid)
            sampler.start()
            wait_ready(settings, r)
        else:
            t = time.perf_counter()
            n_records, n_messages, last = prefill(settings, args.records, args.page, args.feed)
            print(f"prefilled {n_records} {args.feed} records in {n_messages} messages "
                  f"({time.perf_counter() - t:.1f}s)")  # fmt: skip
            base_rate, base_cpu = baseline(settings, n_messages, frozen=True)
            print(f"baseline  confluent loop + the fold before the fast path (no Redis): "
                  f"{base_rate:,.0f} records/s, {base_cpu:,.0f} records/CPU-s")  # fmt: skip
            new_rate, new_cpu = baseline(settings, n_messages, frozen=False)
            print(f"baseline  confluent loop + today's fold (no Redis): {new_rate:,.0f} "
                  f"records/s, {new_cpu:,.0f} records/CPU-s ({new_cpu / base_cpu:.2f}x the "
                  "frozen fold per CPU-s)")  # fmt: skip

            worker = start_worker(settings, args.batch_size, log)
            sampler = Sampler(worker.pid)
            sampler.start()
            rate, done, core, machine = worker_rate(settings, last, r, worker.pid)
            throughput_samples = len(sampler.samples)
            per_cpu = rate / max(core, 1e-9)
            print(f"worker    txnpipe stream (Faust + Lua + ledger): {rate:,.0f} records/s, "
                  f"{per_cpu:,.0f} records/CPU-s ({done} records; the worker used {core:.0%} "
                  f"of a core, the machine's {os.cpu_count()} cores were {machine:.0%} "
                  "busy)")  # fmt: skip
            print(f"ratio     worker/frozen-fold loop = {rate / base_rate:.2f} records/s, "
                  f"{per_cpu / base_cpu:.2f} per CPU-s   target >= 1.5; "
                  f"worker {rate:,.0f} records/s ({per_cpu:,.0f}/CPU-s)   "
                  "target >= 40,000 records/s per worker")  # fmt: skip

        lat = freshness(settings, r, args.rate, args.freshness_seconds)
        if lat:
            q = statistics.quantiles(lat, n=100)
            print(f"freshness at {args.rate} records/s for {args.freshness_seconds:.0f}s: "
                  f"p50={q[49] * 1000:.0f} ms p99={q[98] * 1000:.0f} ms "
                  f"max={max(lat) * 1000:.0f} ms "
                  f"({len(lat)} messages)   target p99 < 250 ms")  # fmt: skip
        sampler.done.set()
        s = [kb // 1024 for kb in sampler.samples]
        if s:
            cut = throughput_samples or 1
            backlog, steady = s[:cut], s[cut:] or s[-1:]
            marks = [backlog[min(len(backlog) - 1, len(backlog) * k // 4)] for k in range(4)]
            print(f"worker RSS MB: backlog run at spawn,1/4,middle,3/4,end="
                  f"{[*marks, backlog[-1]]} peak={max(backlog)}; steady {args.rate}/s "
                  f"min={min(steady)} max={max(steady)} end={steady[-1]} "
                  "(every 0.5 s)")  # fmt: skip
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        shutil.rmtree(settings.state_dir / "faust" / f"{settings.namespace}-stream", True)
        keys = list(r.scan_iter(match=f"{settings.namespace}:*", count=1000))
        if keys:
            r.delete(*keys)
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        names = [settings.topic(t) for t in ("transactions.raw", "transactions.ledger",
                                             "transactions.dlq")]  # fmt: skip
        for f in admin.delete_topics(names, operation_timeout=10).values():
            with contextlib.suppress(Exception):
                f.result(10)
    return 0


if __name__ == "__main__":
    harness.run(main, redis=True)
