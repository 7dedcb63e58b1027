"""Freshness per stage at a steady rate: raw → Redis (stream) and ledger → MySQL (sink).

    .venv/bin/python benchmarks/bench_freshness.py [--rate 1000] [--seconds 30]
                                                   [--partitions 12]

One ``txnpipe stream`` worker and one ``txnpipe sink`` on a fresh namespace; records are
published at ``--rate`` records/s as 10 poller-shaped pages a second. Measured per message:

- stream: raw publish → the partition's watermark in Redis passes its offset;
- sink: the ledger message's timestamp (set by the stream's producer) → the sink's stored
  offset in MySQL passes it (the batch that holds it committed);
- raw limit, same run: a plain consumer of the raw topic, publish → received.

Polling Redis and MySQL every 5–10 ms adds that much at most. Prints p50/p99/max of each
stage and the ratio stream p99 / transport p99. The first 3 s are warm-up, not measured.
Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import harness  # noqa: E402
from bench_scale import LEDGER, RAW, wait_members  # noqa: E402
from common.kafka import admin_client  # noqa: E402
from common.settings import Settings, load_settings  # noqa: E402
from tests.unit.stream_app.history import batches, generate  # noqa: E402
from txnpipe.commands.run import child_env, settled_check, sink_group, stream_group  # noqa: E402
from txnpipe.supervisor import Stage, Supervisor  # noqa: E402

WARMUP = 3.0


def quantiles(values: list[float]) -> str:
    if len(values) < 2:
        return "no samples"
    q = statistics.quantiles(values, n=100)
    return (
        f"p50={q[49] * 1000:.0f} ms p99={q[98] * 1000:.0f} ms "
        f"max={max(values) * 1000:.0f} ms ({len(values)} messages)"
    )


class Watch(threading.Thread):
    """Calls ``step()`` until stopped and nothing is pending any more (or 60 s after)."""

    def __init__(self, step: object, pending: object, every: float) -> None:
        super().__init__(daemon=True)
        self.step, self.pending, self.every = step, pending, every
        self.stop = threading.Event()

    def run(self) -> None:
        give_up = float("inf")
        while True:
            self.step()  # type: ignore[operator]
            if self.stop.is_set():
                give_up = min(give_up, time.monotonic() + 60)
                if not self.pending() or time.monotonic() > give_up:  # type: ignore[operator]
                    return
            time.sleep(self.every)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rate", type=int, default=1000, help="records/s")
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--partitions", type=int, default=12)
    args = ap.parse_args()

    import mysql.connector
    import redis
    from confluent_kafka import Consumer, Producer, TopicPartition

    from stream_app.topics import ensure_topics

    ns = f"bench{uuid.uuid4().hex[:6]}"
    logs = Path(f"/tmp/{ns}-freshness")
    logs.mkdir(parents=True, exist_ok=True)
    settings: Settings = load_settings(
        {
            "namespace": ns,
            "partitions": args.partitions,
            "state_dir": logs / "state",
            "mysql_database": f"bench_{ns}",
        }
    )
    ensure_topics(settings)
    r = redis.Redis.from_url(settings.redis_url)
    stages = [
        Stage(
            "stream",
            ["stream", "--web-port", "0", "--session-timeout", "6", "--no-broker"],
            logs / "stream.log",
            group=stream_group(settings),
        ),
        Stage("sink", ["sink"], logs / "sink.log", group=sink_group(settings)),
    ]
    tree = Supervisor(stages, child_env(settings), settled=settled_check(settings))
    conn = mysql.connector.connect(
        host=settings.mysql_host,
        port=settings.mysql_port,
        user=settings.mysql_user,
        autocommit=True,
        password=settings.mysql_password.get_secret_value(),
    )
    lock = threading.Lock()
    raw_sent: dict[int, list[tuple[int, float]]] = {}  # partition -> (offset, t publish)
    raw_seen: dict[int, list[tuple[int, float]]] = {}  # same, for the plain consumer
    ledger: dict[int, list[tuple[int, float]]] = {}  # partition -> (offset, t produced)
    lat: dict[str, list[float]] = {"stream": [], "sink": [], "transport": []}
    measure_from = [float("inf")]
    tree.start()
    try:
        wait_members(
            settings, Supervisor([stages[0]], {}), stream_group(settings), "assigned partitions=["
        )
        wait_members(
            settings,
            Supervisor([stages[1]], {}),
            sink_group(settings),
            "sink: assigned partitions [",
        )
        plain = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": ns + "-plain",
                "enable.auto.commit": False,
                "fetch.queue.backoff.ms": 10,
                "fetch.wait.max.ms": 10,
            }
        )
        plain.assign([TopicPartition(settings.topic(RAW), p, 0) for p in range(args.partitions)])
        reader = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": ns + "-l",
                "enable.auto.commit": False,
                "fetch.queue.backoff.ms": 10,
                "fetch.wait.max.ms": 10,
            }
        )
        reader.assign(
            [TopicPartition(settings.topic(LEDGER), p, 0) for p in range(args.partitions)]
        )

        def done(
            pending: dict[int, list[tuple[int, float]]],
            passed: dict[int, int],
            into: str,
            now: float,
            wall: bool = False,
        ) -> None:
            with lock:
                for p, items in pending.items():
                    keep = []
                    for offset, t0 in items:
                        if passed.get(p, -1) >= offset:
                            if t0 >= (measure_from[0] if not wall else measure_from[1]):
                                lat[into].append(now - t0)
                        else:
                            keep.append((offset, t0))
                    pending[p] = keep

        def stream_step() -> None:
            marks = {int(k): int(v) for k, v in r.hgetall(f"{ns}:wm").items()}
            done(raw_sent, marks, "stream", time.perf_counter())

        def plain_step() -> None:
            for m in plain.consume(num_messages=1000, timeout=0.05):
                if m.error() is None:
                    now = time.perf_counter()
                    with lock:
                        raw_seen.setdefault(m.partition(), []).append((m.offset(), now))

        def ledger_step() -> None:
            for m in reader.consume(num_messages=5000, timeout=0.05):
                if m.error() is None:
                    with lock:
                        ledger.setdefault(m.partition(), []).append(
                            (m.offset(), m.timestamp()[1] / 1000)
                        )
            try:
                cur = conn.cursor()
                cur.execute(
                    f"SELECT kafka_partition, next_offset - 1 FROM `{settings.mysql_database}`"
                    ".sink_offsets WHERE topic = %s",
                    (settings.topic(LEDGER),),
                )
                passed = {int(p): int(o) for p, o in cur.fetchall()}
                cur.close()
            except mysql.connector.Error:
                return
            done(ledger, passed, "sink", time.time(), wall=True)

        watches = [
            Watch(stream_step, lambda: any(raw_sent.values()), 0.005),
            Watch(plain_step, lambda: False, 0.0),
            Watch(ledger_step, lambda: any(ledger.values()), 0.01),
        ]
        for w in watches:
            w.start()
        sent_at: dict[tuple[int, int], float] = {}
        producer = Producer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )

        def delivered(err: object, msg: object, t0: float) -> None:
            if err is None:
                p, o = msg.partition(), msg.offset()  # type: ignore[attr-defined]
                with lock:
                    raw_sent.setdefault(p, []).append((o, t0))
                    sent_at[(p, o)] = t0

        hist = generate(
            43,
            int(args.rate * (args.seconds + WARMUP)),
            now=datetime.now(UTC).replace(minute=0, second=0),
        )
        per_tick = max(1, args.rate // 10)
        start = time.perf_counter()
        measure_from[:] = [start + WARMUP, time.time() + WARMUP]
        for tick, i in enumerate(range(0, len(hist.served), per_tick), start=1):
            t0 = time.perf_counter()
            for p, key, value in batches(
                hist.served[i : i + per_tick], args.partitions, page=per_tick
            ):
                producer.produce(
                    settings.topic(RAW),
                    value,
                    key,
                    partition=p,
                    on_delivery=lambda e, m, t=t0: delivered(e, m, t),
                )
            producer.poll(0)
            time.sleep(max(0.0, start + tick * 0.1 - time.perf_counter()))
            if time.perf_counter() - start > args.seconds + WARMUP:
                break
        producer.flush(30)
        for w in watches:
            w.stop.set()
        for w in watches:
            w.join(90)
        with lock:
            for p, items in raw_seen.items():
                for offset, t1 in items:
                    t0 = sent_at.get((p, offset))
                    if t0 is not None and t0 >= measure_from[0]:
                        lat["transport"].append(t1 - t0)
        plain.close()
        reader.close()
    finally:
        tree.stop()
        with contextlib.suppress(Exception):
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{settings.mysql_database}`")
        conn.close()
        keys = list(r.scan_iter(match=f"{ns}:*", count=1000))
        for i in range(0, len(keys), 1000):
            r.delete(*keys[i : i + 1000])
        admin = admin_client(settings.kafka_bootstrap)
        for f in admin.delete_topics(
            [settings.topic(t) for t in (RAW, LEDGER, "transactions.dlq")], operation_timeout=10
        ).values():
            with contextlib.suppress(Exception):
                f.result(10)
    print(
        f"freshness at {args.rate} records/s for {args.seconds:.0f}s, {args.partitions} "
        "partitions, one worker and one sink:"
    )
    print(f"transport raw publish -> a plain consumer has it:       {quantiles(lat['transport'])}")
    print(f"stream    raw publish -> visible in Redis:              {quantiles(lat['stream'])}")
    print(f"sink      ledger produced -> committed in MySQL:        {quantiles(lat['sink'])}")
    if len(lat["stream"]) > 1 and len(lat["transport"]) > 1:
        p99 = [statistics.quantiles(lat[k], n=100)[98] for k in ("stream", "transport")]
        print(f"ratio     stream p99 / transport p99 = {p99[0] / max(p99[1], 1e-6):.1f}")
    return 0


if __name__ == "__main__":
    harness.run(main, mysql=True, redis=True)
