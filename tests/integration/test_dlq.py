"""`txnpipe dlq` on real services (issue 12): the simulator's invalid records of every kind
and binary, huge and deeply nested poison go through poller → stream → DLQ → the sink's
index; stats equal the simulator's own count; export → corrected copies → redrive makes
the answers equal a truth that includes them; a redrive run twice, or SIGKILLed half-way
and run again, changes nothing more; a cleaning rule turned on, then a redrive by the
reason it fixes, brings those records in.

One pipeline per module (simulator, one poll, a stream worker and a sink kept running);
the tests run in order and each adds to what the answers must include (``Pipe.fixes``).
The truth is always the simulator's model (``producers.simulator.truth``), never
``schemas``: the corrected and newly accepted records are read from their canonical JSON.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.kafka import end_offsets
from common.settings import Settings, load_settings
from producers.simulator import truth as truth_mod
from producers.simulator.model import Entry, SimulatorConfig, Version
from producers.simulator.render import INVALID_KINDS
from producers.simulator.server import RunningSimulator, start_simulator
from txnpipe.commands.run import child_env

# Reasons (ours) ↔ kinds (the simulator's), as groups: some kinds yield two reasons (a
# customer_id of null is "missing", one of false "invalid"; "-12.50" is unreadable, -12.5
# out of range), so counts are compared per group. Every kind must be in one.
GROUPS: tuple[tuple[frozenset[str], frozenset[str]], ...] = tuple(
    (frozenset(reasons.split()), frozenset(kinds.split()))
    for reasons, kinds in (
        ("missing_transaction_id", "missing_transaction_id null_transaction_id"),
        ("invalid_transaction_id", "blank_transaction_id non_text_transaction_id"),
        ("missing_customer_id invalid_customer_id", "missing_customer_id bad_customer_id"),
        ("missing_transaction_amount", "missing_transaction_amount"),
        ("missing_transaction_date", "missing_transaction_date"),
        ("missing_status", "missing_status"),
        ("missing_updated_at", "missing_updated_at"),
        ("amount_out_of_range invalid_amount",
         "amount_not_positive amount_too_large amount_unreadable"),
        ("invalid_date", "date_impossible date_unreadable"),
        ("date_out_of_range", "date_too_old date_future"),
        ("invalid_status", "status_unknown"),
        ("invalid_product_category", "category_not_text"),
        ("invalid_updated_at", "updated_at_unreadable updated_at_naive"),
        ("not_an_object", "not_an_object"),
    )
)  # fmt: skip
ALL_KINDS = frozenset(kind for kind, _ in INVALID_KINDS) | {"not_an_object"}
# Poison published straight to the raw topic (reason it must get).
BINARY = b"\xff\xfe\x1b[2J\x1b]0;owned\x07 not text \xe2\x80\xae\x00"
HUGE = b'{"transaction_id": "huge-1", "blob": "' + b"A" * 700_000  # never closed: not JSON
NESTED = b"[" * 100_000
POISON = {"not_utf8": [BINARY], "not_json": [HUGE, NESTED]}
NAIVE_DATE = b'"transaction_date":"2025-11-25T10:00:00"'
CONFIG = SimulatorConfig(seed=1, history_days=8, transactions_per_day=40, rate=0.0,
                         invalid_rate=0.4)  # fmt: skip
DEADLINE = 150.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Pipe:
    settings: Settings
    env: dict[str, str]
    sim: RunningSimulator
    logs: Path
    truth: dict[str, Any]
    entries: list[Entry]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    fixes: dict[int, Version] = field(default_factory=dict)  # entry index -> now valid

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "txnpipe", *args], env=env or self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def cli(self, *args: str, code: int = 0, env: dict[str, str] | None = None) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "txnpipe", *args], env=env or self.env,
            capture_output=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == code, (args, done.returncode, done.stderr.decode()[-3000:])
        return done.stdout.decode("utf-8")

    def expected(self) -> dict[str, Any]:
        """The simulator's answers, with every record the tests brought in counted."""
        entries = list(self.entries)
        for i, version in self.fixes.items():
            entries[i] = Entry(entries[i].key, entries[i].body, version, "version")
        feed = self.sim.simulator.feed
        doc = truth_mod.compute(entries, bytes(feed.served), feed.max_served,
                                self.settings.counted, datetime.now(UTC), False)  # fmt: skip
        return {
            "categories": doc["categories"],
            "top-customers": doc["top_customers"],
            "monthly": doc["monthly"],
        }

    def index(self) -> Any:
        from sinks.dead_letter_queries import DeadLetterIndex

        return DeadLetterIndex(self.settings)


def wait_for(what: str, condition: Callable[[], Any], deadline: float = DEADLINE) -> Any:
    end = time.monotonic() + deadline
    last: Any = None
    while time.monotonic() < end:
        last = condition()
        if last is True:
            return True
        time.sleep(0.5)  # the polling interval of a condition with a deadline
    raise AssertionError(f"timed out waiting for {what}; last: {str(last)[:1500]}")


def answers(settings: Settings) -> dict[str, Any]:
    from sinks.lookups import answer as from_mysql
    from stream_app.lookups import answer as from_redis

    out: dict[str, Any] = {}
    for source, answer in (("redis", from_redis), ("mysql", from_mysql)):
        try:
            out[source] = {q: answer(settings, q, 1_000_000).to_json()
                           for q in ("categories", "top-customers", "monthly")}  # fmt: skip
        except Exception as exc:  # tables not there yet
            out[source] = repr(exc)
    return out


def answers_are(pipe: Pipe, expected: dict[str, Any]) -> Callable[[], Any]:
    def check() -> Any:
        got = answers(pipe.settings)
        return True if got == {"redis": expected, "mysql": expected} else got

    return check


def index_totals(pipe: Pipe) -> tuple[int, int, int | None]:
    """(dead letters as received, came back after a redrive, DLQ messages not indexed)."""
    index = pipe.index()
    try:
        reasons = index.reasons(None)
        return sum(r.count for r in reasons), sum(r.back for r in reasons), index.behind()
    finally:
        index.close()


def stats(pipe: Pipe) -> dict[str, Any]:
    """`dlq stats --json` without what moves with the clock."""
    doc = json.loads(pipe.cli("dlq", "stats", "--json"))
    return {
        "total": doc["total"],
        "back": doc["came_back_after_redrive"],
        "reasons": sorted(
            (r["stage"], r["reason"], r["count"], r["came_back_after_redrive"])
            for r in doc["reasons"]
        ),
    }


def records_read(pipe: Pipe) -> int:
    from stream_app.current import records_read as read

    return read(pipe.settings) or 0


def raw_end(pipe: Pipe) -> int:
    return sum(
        end_offsets(pipe.settings.kafka_bootstrap, pipe.settings.topic("transactions.raw")).values()
    )


def version_of(line: bytes) -> Version:
    """A corrected (or newly accepted) record → its clean version, read from the canonical
    JSON the simulator renders invalid records from (not through ``schemas``)."""
    rec = json.loads(line)
    whole, frac = rec["transaction_amount"].split(".")
    updated = datetime.fromisoformat(rec["updated_at"].replace("Z", "+00:00"))
    return Version(
        rec["transaction_id"], rec["customer_id"], rec["product_category"],
        int(whole) * 100 + int(frac), date.fromisoformat(rec["transaction_date"][:10]),
        rec["status"], (updated - _EPOCH) // timedelta(milliseconds=1),
    )  # fmt: skip


def outcomes(pipe: Pipe, versions: list[Version]) -> dict[str, int]:
    """What CONTRACT §2 makes of ``versions`` arriving now, in order, per the model."""
    current = {
        tid: v.updated_ms
        for tid, v in truth_mod.current_versions(
            [
                Entry(e.key, e.body, pipe.fixes.get(i, e.version), e.kind)
                for i, e in enumerate(pipe.entries)
            ],
            len(pipe.entries) - 1,
        )[0].items()
    }
    counts = {"new": 0, "duplicate": 0, "stale": 0}
    for v in versions:
        known = current.get(v.transaction_id)
        if known is None or v.updated_ms > known:
            counts["new"] += 1
            current[v.transaction_id] = v.updated_ms
        else:
            counts["duplicate" if v.updated_ms == known else "stale"] += 1
    return counts


def _safe(text: str) -> bool:
    """Nothing a terminal would act on: no control or format characters but line ends."""
    return all(unicodedata.category(ch)[0] != "C" or ch == "\n" for ch in text)


@pytest.fixture(scope="module")
def pipe(
    kafka: str, mysql_server: Settings, redis_server: Settings, base_settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Pipe]:  # fmt: skip
    namespace = f"t{uuid.uuid4().hex[:10]}"
    tmp = tmp_path_factory.mktemp("dlq")
    settings = load_settings({**base_settings.model_dump(), "namespace": namespace,
                              "mysql_database": f"txnpipe_{namespace}",
                              "state_dir": tmp / "state"})  # fmt: skip
    now = datetime.now(UTC).replace(microsecond=0)
    try:
        with start_simulator(CONFIG, now=now) as sim:
            env = child_env(settings.model_copy(update={"api_url": sim.url}))
            polled = subprocess.run([sys.executable, "-m", "txnpipe", "poll", "--once"],
                                    env=env, capture_output=True, timeout=120)  # fmt: skip
            assert polled.returncode == 0, polled.stderr.decode()[-2000:]
            _publish_poison(settings)
            with sim.simulator.lock:
                entries = list(sim.simulator.feed.entries)
            p = Pipe(settings, env, sim, tmp, sim.truth(include_transactions=False), entries)
            p.start("stream", "stream", "--web-port", "0", "--session-timeout", "6",
                    "--batch-wait", "0.05", "--no-broker")  # fmt: skip
            p.start("sink", "sink")
            try:
                yield p
            finally:
                for name in list(p.procs):
                    p.stop(name)
    finally:
        _clean(settings)


def _publish_poison(settings: Settings) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap, "message.max.bytes": 2_000_000}
    )
    for values in POISON.values():
        for value in values:
            producer.produce(settings.topic("transactions.raw"), value=value, partition=0)
    assert producer.flush(30) == 0


def _clean(settings: Settings) -> None:
    import mysql.connector
    import redis
    from confluent_kafka.admin import AdminClient

    with contextlib.suppress(Exception):
        admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
        names = [
            t for t in admin.list_topics(timeout=5).topics if t.startswith(f"{settings.namespace}.")
        ]
        for future in admin.delete_topics(names, operation_timeout=5).values() if names else ():
            with contextlib.suppress(Exception):
                future.result(5)
    client = redis.Redis.from_url(settings.redis_url)
    keys = list(client.scan_iter(match=f"{settings.namespace}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
    conn = mysql.connector.connect(host=settings.mysql_host, port=settings.mysql_port,
                                   user=settings.mysql_user, autocommit=True,
                                   password=settings.mysql_password.get_secret_value())  # fmt: skip
    conn.cursor().execute(f"DROP DATABASE IF EXISTS `{settings.mysql_database}`")
    conn.close()


def _settled(pipe: Pipe) -> None:
    """Every served record decided by the stream, in MySQL, and every dead letter indexed."""
    total = pipe.truth["served"]["invalid_distinct"] + sum(map(len, POISON.values()))
    wait_for("the pipeline to answer the simulator's truth", answers_are(pipe, pipe.expected()))
    wait_for("the index to hold every dead letter",
             lambda: index_totals(pipe)[0::2] == (total, 0) or index_totals(pipe))  # fmt: skip


def test_stats_count_every_kind_of_invalid_record_the_simulator_served(pipe: Pipe) -> None:
    served = pipe.truth["served"]
    assert set(served["invalid_by_kind"]) == ALL_KINDS  # every kind went through
    assert set().union(*(kinds for _, kinds in GROUPS)) == ALL_KINDS
    _settled(pipe)
    doc = json.loads(pipe.cli("dlq", "stats", "--json"))
    by_reason = {r["reason"]: r["count"] for r in doc["reasons"]}
    assert {r["stage"] for r in doc["reasons"]} == {"stream"}
    for reasons, kinds in GROUPS:
        got = sum(by_reason.pop(r, 0) for r in reasons)
        assert got == sum(served["invalid_by_kind"].get(k, 0) for k in kinds), (reasons, kinds)
    assert by_reason == {reason: len(values) for reason, values in POISON.items()}
    poison = sum(map(len, POISON.values()))
    assert doc["total"] == served["invalid_distinct"] + poison
    assert doc["records_read"] == served["distinct_records"] + poison
    assert doc["index_behind"] == 0 and doc["came_back_after_redrive"] == 0
    assert all(sum(r["per_hour"]) == r["count"] for r in doc["reasons"])
    text = pipe.cli("dlq", "stats")
    assert f"dead letters: {doc['total']:,} of {doc['records_read']:,} records read" in text
    assert "index of " in text and "up to date" in text and "invalid_status" in text


def test_list_and_show_binary_huge_and_deeply_nested_poison(pipe: Pipe) -> None:
    _settled(pipe)
    listed = pipe.cli("dlq", "list", "--reason", "not_utf8")
    [line] = listed.splitlines()
    assert _safe(listed) and "\\xff\\xfe\\x1b[2J\\x1b]0;owned\\x07" in line
    assert f"({len(BINARY)} B)" in line and "tx=-" in line
    name = line.split()[0]
    shown = pipe.cli("dlq", "show", name)
    assert _safe(shown) and "binary, not UTF-8" in shown and "\\u202e\\x00" in shown
    doc = json.loads(pipe.cli("dlq", "show", name, "--json"))
    assert doc["raw_encoding"] == "base64" and doc["reason"] == "not_utf8"
    import base64

    assert base64.b64decode(doc["raw"]) == BINARY

    lines = pipe.cli("dlq", "list", "--reason", "not_json").splitlines()
    assert len(lines) == 2 and all(len(x) < 700 for x in lines)
    sizes = {f"({len(HUGE):,} B)": None, f"({len(NESTED):,} B)": None}
    assert all(any(size in x for x in lines) for size in sizes)
    huge = next(x.split()[0] for x in lines if f"({len(HUGE):,} B)" in x)
    nested = next(x.split()[0] for x in lines if f"({len(NESTED):,} B)" in x)
    huge_doc = json.loads(pipe.cli("dlq", "show", huge, "--json"))
    assert (huge_doc["raw_length"], huge_doc["raw_stored"]) == (len(HUGE), 256 * 1024)
    assert "the index holds the first 262,144" in pipe.cli("dlq", "show", huge)
    shown = pipe.cli("dlq", "show", nested)
    assert "JSON nested too deeply" in shown and "[" * len(NESTED) in shown

    pipe.cli("dlq", "show", "5:999999", code=1)
    pipe.cli("dlq", "show", "x:y", code=2)
    pipe.cli("dlq", "show", code=2)
    # export leaves out what cannot be one line as received, and says which
    export = subprocess.run(
        [sys.executable, "-m", "txnpipe", "dlq", "export", "--reason", "not_json", "--out",
         str(pipe.logs / "poison.jsonl")], env=pipe.env, capture_output=True, text=True,
    )  # fmt: skip
    assert export.returncode == 0 and "left out: 1 cut in the DLQ" in export.stderr
    assert (pipe.logs / "poison.jsonl").read_bytes() == NESTED + b"\n"


def test_export_then_redrive_corrected_copies_makes_the_answers_include_them(
    pipe: Pipe, tmp_path: Path
) -> None:
    _settled(pipe)
    out = tmp_path / "status.jsonl"
    pipe.cli("dlq", "export", "--reason", "invalid_status", "--out", str(out))
    lines = out.read_bytes().splitlines()
    names = (tmp_path / "status.jsonl.ids").read_text().split()
    mine = {e.body: i for i, e in enumerate(pipe.entries) if e.kind == "status_unknown"}
    assert len(lines) == len(names) == len(mine) > 0
    assert set(lines) == set(mine)  # exactly as received
    fixed = []
    for n, line in enumerate(lines):  # the operator's corrections: some approved, some declined
        rec = json.loads(line)
        rec["status"] = "declined" if n % 2 else "approved"
        fixed.append(json.dumps(rec, separators=(",", ":")).encode())
    out.write_bytes(b"\n".join(fixed) + b"\n")
    versions = [version_of(line) for line in fixed]
    will = outcomes(pipe, versions)
    # some corrections are older than their transaction's current version, some are not
    assert will["stale"] > 0 and will["new"] > 0

    before = (raw_end(pipe), index_totals(pipe), stats(pipe), _journal_rows(pipe))
    dry = json.loads(pipe.cli("dlq", "redrive", "--from-file", str(out), "--dry-run", "--json"))
    assert dry["dry_run"] and dry["published"] == len(lines)
    assert {k: dry["expected"][k] for k in will} == will and dry["expected"]["invalid"] == 0
    assert (raw_end(pipe), index_totals(pipe), stats(pipe), _journal_rows(pipe)) == before

    read, baseline = records_read(pipe), answers(pipe.settings)["mysql"]
    done = json.loads(pipe.cli("dlq", "redrive", "--from-file", str(out), "--json"))
    assert done["published"] == len(lines) and done["expected"] == dry["expected"]
    assert {s["dead_letter"].split(":", 1)[1] for s in done["stale"]} <= set(names)
    assert len(done["stale"]) == will["stale"]
    for line, version in zip(lines, versions, strict=True):
        pipe.fixes[mine[line]] = version
    expected = pipe.expected()
    assert expected != baseline  # the fixes change the answers
    wait_for("the answers to include the corrected copies", answers_are(pipe, expected))
    wait_for("the stream to decide them", lambda: records_read(pipe) == read + len(lines))

    after = (raw_end(pipe), stats(pipe))
    again = json.loads(pipe.cli("dlq", "redrive", "--from-file", str(out), "--json"))
    assert (again["published"], again["already_redriven"]) == (0, len(lines))
    assert (raw_end(pipe), stats(pipe)) == after
    assert answers(pipe.settings) == {"redis": expected, "mysql": expected}


def _journal_rows(pipe: Pipe) -> int:
    index = pipe.index()
    try:
        return int(index._all("SELECT COUNT(*) FROM dead_letter_redrives")[0][0])
    finally:
        index.close()


KILL_AT_CHUNK_2 = """
import os, signal, sys
import sinks  # mysql-connector's C extension first
from common.settings import load_settings
from sinks.dead_letter_queries import DeadLetterIndex
from txnpipe.redrive import Redriver, from_index

settings = load_settings()
index = DeadLetterIndex(settings)
redriver = Redriver(settings, index, chunk=3)
selection = from_index(index, redriver.raw_topic, reason="invalid_date", since=None,
                       report=redriver.report)

def die(chunk):  # after the broker acked chunk 2, before it is journaled: the worst moment
    if chunk == 2:
        os.kill(os.getpid(), signal.SIGKILL)

redriver.run(selection, after_publish=die)
"""


def test_a_redrive_killed_half_way_then_run_again_changes_nothing_more(pipe: Pipe) -> None:
    _settled(pipe)
    n = sum(
        pipe.truth["served"]["invalid_by_kind"][k] for k in ("date_impossible", "date_unreadable")
    )
    assert n > 6
    expected = pipe.expected()
    wait_for("the answers so far", answers_are(pipe, expected))
    start, read, before, rows = raw_end(pipe), records_read(pipe), stats(pipe), _journal_rows(pipe)

    killed = subprocess.run([sys.executable, "-c", KILL_AT_CHUNK_2], env=pipe.env,
                            capture_output=True, timeout=120)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert raw_end(pipe) == start + 6  # chunks 1 and 2 are on the raw topic …
    assert _journal_rows(pipe) == rows + 3  # … only chunk 1 is journaled

    rest = json.loads(pipe.cli("dlq", "redrive", "--reason", "invalid_date", "--json"))
    assert (rest["published"], rest["already_redriven"]) == (n - 3, 3)  # chunk 2 again
    assert rest["expected"]["invalid"] == n - 3  # no rule reads them yet
    assert raw_end(pipe) == start + n + 3
    wait_for("the stream to decide every redriven record",
             lambda: records_read(pipe) == read + n + 3 or records_read(pipe))  # fmt: skip
    wait_for("the index to catch up", lambda: index_totals(pipe)[2] == 0)
    # each came back to the DLQ once, marked as redriven, though chunk 2 went out twice
    now = stats(pipe)
    assert now["total"] == before["total"] and now["back"] == before["back"] + n
    listed = pipe.cli("dlq", "list", "--reason", "invalid_date", "--limit", "1000")
    assert listed.count("(redriven from ") == n
    assert answers(pipe.settings) == {"redis": expected, "mysql": expected}

    again = json.loads(pipe.cli("dlq", "redrive", "--reason", "invalid_date", "--json"))
    assert (again["published"], again["already_redriven"]) == (0, n)
    assert again["skipped"] == {"came back from a redrive (never redriven again)": n}
    assert raw_end(pipe) == start + n + 3 and stats(pipe) == now


def test_a_new_rule_then_redrive_by_its_reason_brings_those_records_in(pipe: Pipe) -> None:
    _settled(pipe)
    naive = {i: version_of(e.body) for i, e in enumerate(pipe.entries)
             if e.kind == "date_unreadable" and NAIVE_DATE in e.body}  # fmt: skip
    assert naive
    will = outcomes(pipe, list(naive.values()))
    ruled = {**pipe.env, "TXNPIPE_CLEANING_RULES": "naive-date-utc"}
    pipe.stop("stream")
    pipe.start("stream", "stream", "--web-port", "0", "--session-timeout", "6",
               "--batch-wait", "0.05", "--no-broker", env=ruled)  # fmt: skip
    before, read, baseline = stats(pipe), records_read(pipe), answers(pipe.settings)["mysql"]
    n = sum(r[2] for r in before["reasons"] if r[1] == "invalid_date")
    assert will["new"] > 0

    done = json.loads(pipe.cli("dlq", "redrive", "--reason", "invalid_date", "--again",
                               "--json", env=ruled))  # fmt: skip
    assert done["published"] == n
    assert done["expected"]["invalid"] == n - len(naive)
    assert {k: done["expected"][k] for k in will} == will
    pipe.fixes.update(naive)
    expected = pipe.expected()
    assert expected != baseline  # their dates move their amounts out of the monthly window
    wait_for("the answers to include the records the rule reads", answers_are(pipe, expected))
    wait_for("the stream to decide them", lambda: records_read(pipe) == read + n)
    wait_for("the index to catch up", lambda: index_totals(pipe)[2] == 0)
    assert stats(pipe) == before  # what is still invalid did not come back a second time
