"""The four comparisons of ``txnpipe reconcile``, as pure functions over what each layer holds.

They need several stages' views at once (the API's newest versions, MySQL's tables, Redis's
aggregates, Kafka's ends), so they live in the composition root; each stage only reads its
own layer (``producers.sweep``, ``sinks.audit``, ``stream_app.audit``).

- ``api_mysql``: per transaction the API's newest valid version vs ``transaction_versions``
  (newest ``updated_at``) and ``transactions`` (the row a counted version must have):
  ``missing``, ``behind`` (MySQL holds an older version, or a current row that is not the
  API's), ``extra`` (MySQL holds what the API does not serve: an unknown id, a newer
  version, a row for an uncounted one). A difference whose API version is newer than the
  poller's checkpoint is in flight (not polled yet), not a difference.
- ``ledger_mysql``: per transaction the ledger netted by (customer, category, date) equals
  its current row's contribution (nothing when it has no row).
- ``redis_mysql``: the three aggregates key by key against the sums of ``transactions``,
  and every raw partition's state present in Redis.
- ``kafka_mysql``: stored positions (sink offsets, stream watermarks) vs the topics' ends;
  what lies past a position is in flight; a position past the end is a difference.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from schemas.reconcile import ApiVersion, CurrentRow, Section
from sinks.audit import MySQLView
from stream_app.audit import RedisView


@dataclass
class Found:
    """A comparison's section and the full id lists a repair needs (examples are capped)."""

    section: Section
    ids: dict[str, list[str]] = field(default_factory=dict)

    def add(self, kind: str, key: str, month: str | None = None) -> None:
        self.section.add(kind, key, month)
        self.ids.setdefault(kind, []).append(key)


def _month(day: date | None) -> str:
    return day.strftime("%Y-%m") if day is not None else "unknown"


def _expected_row(v: ApiVersion) -> CurrentRow:
    return CurrentRow(
        v.customer_id, v.product_category, v.amount_cents, v.transaction_date, v.status,
        v.updated_at,
    )  # fmt: skip


def api_mysql(
    api: Mapping[str, ApiVersion],
    mysql: MySQLView,
    counted: Collection[str],
    since: datetime | None = None,
    polled_upto: datetime | None = None,
    swept_upto: datetime | None = None,
) -> Found:
    """API's newest valid versions vs MySQL's versions and current rows.

    MySQL versions newer than the sweep's newest record (``swept_upto``) arrived after the
    sweep: not judged (counted in flight)."""
    found = Found(Section("api_mysql"))

    def after_sweep(moment: datetime) -> bool:
        if swept_upto is not None and moment > swept_upto:
            found.section.in_flight += 1
            return True
        return False

    for tid, v in api.items():
        found.section.checked += 1
        kind = _kind(v, mysql.newest.get(tid), mysql.current.get(tid), counted)
        if kind is None:
            continue
        newest = mysql.newest.get(tid)
        if kind == "extra" and newest is not None and after_sweep(newest):
            continue
        if polled_upto is not None and v.updated_at > polled_upto:
            found.section.in_flight += 1  # served after the poller's position: not polled yet
            continue
        found.add(kind, tid, _month(v.transaction_date))
    for tid, newest in mysql.newest.items():
        if tid in api or (since is not None and newest < since) or after_sweep(newest):
            continue
        row = mysql.current.get(tid)
        found.add("extra", tid, _month(row.transaction_date if row else None))
    for tid, row in mysql.current.items():  # a current row without any version
        fresh = since is None or row.updated_at >= since
        if tid not in api and tid not in mysql.newest and fresh and not after_sweep(row.updated_at):
            found.add("extra", tid, _month(row.transaction_date))
    return found


def _kind(
    v: ApiVersion, newest: datetime | None, row: CurrentRow | None, counted: Collection[str]
) -> str | None:
    if newest is None:
        return "missing"
    if newest < v.updated_at:
        return "behind"
    if newest > v.updated_at:
        return "extra"
    if v.status in counted:
        if row is None:
            return "missing"
        if row != _expected_row(v):
            return "extra" if row.updated_at > v.updated_at else "behind"
    elif row is not None:
        return "extra"
    return None


def ledger_mysql(mysql: MySQLView) -> Found:
    """Ledger netted per transaction vs its current contribution."""
    found = Found(Section("ledger_mysql"))
    for tid in sorted(set(mysql.current) | set(mysql.ledger)):
        found.section.checked += 1
        row = mysql.current.get(tid)
        want = (
            {(row.customer_id, row.product_category, row.transaction_date): (row.amount_cents, 1)}
            if row is not None
            else {}
        )
        got = mysql.ledger.get(tid, {})
        if got != want:
            day = row.transaction_date if row else min(k[2] for k in got)
            found.add("mismatch", tid, _month(day))
    return found


def mysql_sums(
    current: Mapping[str, CurrentRow],
) -> tuple[dict[str, tuple[int, int]], dict[str, int], dict[str, int]]:
    """The three aggregates over ``transactions`` (what the seed's SQL sums), in cents."""
    category: dict[str, tuple[int, int]] = {}
    customer: dict[str, int] = {}
    day: dict[str, int] = {}
    for row in current.values():
        n, cents = category.get(row.product_category, (0, 0))
        category[row.product_category] = (n + 1, cents + row.amount_cents)
        customer[row.customer_id] = customer.get(row.customer_id, 0) + row.amount_cents
        d = row.transaction_date.isoformat()
        day[d] = day.get(d, 0) + row.amount_cents
    return category, customer, day


def redis_mysql(redis: RedisView, mysql: MySQLView, partitions: int) -> Found:
    """Redis aggregates key by key vs ``transactions``; each raw partition's state present."""
    found = Found(Section("redis_mysql"))
    category, customer, day = mysql_sums(mysql.current)
    for kind, ours, theirs in (
        ("category", redis.category, category),
        ("customer", redis.customer, customer),
        ("day", redis.day, day),
    ):
        have: Mapping[str, object] = ours
        want: Mapping[str, object] = theirs
        for key in sorted(set(have) | set(want)):
            found.section.checked += 1
            if have.get(key) != want.get(key):
                found.add(kind, key, key[:7] if kind == "day" else None)
    held: dict[int, int] = {}
    for p in mysql.partition_of.values():
        held[p] = held.get(p, 0) + 1
    for p in range(partitions):
        found.section.checked += 1
        if held.get(p, 0) and (p not in redis.watermarks or redis.states.get(p, 0) < held[p]):
            found.add("state_lost", f"partition {p}")  # fewer states than MySQL has ids
    return found


def stream_positions(watermarks: Mapping[int, int], committed: Mapping[int, int]) -> dict[int, int]:
    """Next raw offset per partition whose state Redis holds: past the last applied batch,
    or the stream group's committed offset (a restore takes the watermark from the ledger,
    which has nothing for a last batch of duplicates)."""
    return {p: max(wm + 1, committed.get(p, 0)) for p, wm in watermarks.items()}


def kafka_mysql(
    raw_ends: Mapping[int, int],
    ledger_ends: Mapping[int, int],
    stream_next: Mapping[int, int],
    offsets: Mapping[int, int],
) -> Found:
    """Stored positions vs the topics' ends: what lies past a position is in flight; a
    position held for an empty partition (the topic was lost or recreated) differs.

    A position a little past a non-zero end is not judged: the bundled broker's end can
    read low (``common.kafka.end_offsets``), and a recreated topic starts empty."""
    found = Found(Section("kafka_mysql"))
    for p, end in sorted(raw_ends.items()):
        found.section.checked += 1
        applied = stream_next.get(p, 0)  # next raw offset the stream will read
        if end == 0 and applied > 0:
            found.add("stream_past_end", f"raw partition {p}")
        found.section.in_flight += max(end - applied, 0)
    for p, end in sorted(ledger_ends.items()):
        found.section.checked += 1
        stored = offsets.get(p, 0)
        if end == 0 and stored > 0:
            found.add("sink_past_end", f"ledger partition {p}")
        found.section.in_flight += max(end - stored, 0)
    return found


def settled(
    raw_ends: Mapping[int, int],
    ledger_ends: Mapping[int, int],
    stream_next: Mapping[int, int],
    offsets: Mapping[int, int],
    outbox: Mapping[int, int],
) -> bool:
    """Nothing in flight: every stage has read to the end it was shown (a raw partition whose
    watermark is gone has lost its state: a difference, not work to wait for)."""
    return (
        all(stream_next[p] >= end for p, end in raw_ends.items() if p in stream_next)
        and all(offsets.get(p, 0) >= end for p, end in ledger_ends.items())
        and not any(outbox.values())
    )
