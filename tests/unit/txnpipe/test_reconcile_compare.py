"""The pure comparisons of `txnpipe reconcile` and the derivation of a transaction's rows
from its versions (no services)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from schemas import entry_id
from schemas.reconcile import ApiVersion, CurrentRow, Report
from sinks.audit import MySQLView
from sinks.repair import derive
from stream_app.audit import RedisView
from txnpipe import reconcile as c

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
D = date(2026, 10, 30)
COUNTED = frozenset({"pending", "approved"})


def api(tid: str, at: datetime = T0, status: str = "approved", cents: int = 1000) -> ApiVersion:
    return ApiVersion(tid, "c1", "books", cents, D, status, at)


def row(v: ApiVersion) -> CurrentRow:
    return CurrentRow(v.customer_id, v.product_category, v.amount_cents, v.transaction_date,
                      v.status, v.updated_at)  # fmt: skip


def view(*versions: ApiVersion, drop_row: bool = False) -> MySQLView:
    m = MySQLView()
    for v in versions:
        m.newest[v.transaction_id] = v.updated_at
        m.partition_of[v.transaction_id] = 0
        if v.status in COUNTED and not drop_row:
            m.current[v.transaction_id] = row(v)
            m.ledger[v.transaction_id] = {("c1", "books", D): (v.amount_cents, 1)}
    return m


def test_api_agrees_with_mysql_holding_its_newest_versions() -> None:
    a, b = api("a"), api("b", status="declined")
    found = c.api_mysql({"a": a, "b": b}, view(a, b), COUNTED)
    assert found.section.differences == 0 and found.section.checked == 2


def test_missing_behind_and_extra_are_counted_by_month_with_examples() -> None:
    old = api("b", T0 - timedelta(hours=1))
    mysql = view(api("a"), old, api("x"))
    mysql.newest.pop("a")  # a's version row gone
    got = c.api_mysql({"a": api("a"), "b": api("b")}, mysql, COUNTED)
    assert got.section.counts == {"missing": 1, "behind": 1, "extra": 1}
    assert got.section.by_month == {"2026-10": {"missing": 1, "behind": 1, "extra": 1}}
    assert got.ids == {"missing": ["a"], "behind": ["b"], "extra": ["x"]}


def test_a_counted_version_without_its_current_row_is_missing() -> None:
    got = c.api_mysql({"a": api("a")}, view(api("a"), drop_row=True), COUNTED)
    assert got.section.counts == {"missing": 1}


def test_versions_past_the_poller_or_the_sweep_are_in_flight_not_differences() -> None:
    new = api("n", T0 + timedelta(minutes=5))
    got = c.api_mysql({"n": new}, MySQLView(), COUNTED, polled_upto=T0)
    assert (got.section.differences, got.section.in_flight) == (0, 1)
    later = view(api("z", T0 + timedelta(minutes=9)))
    got = c.api_mysql({}, later, COUNTED, swept_upto=T0)
    assert (got.section.differences, got.section.in_flight) == (0, 1)


def test_since_leaves_older_mysql_rows_unjudged() -> None:
    got = c.api_mysql({}, view(api("old")), COUNTED, since=T0 + timedelta(days=1))
    assert got.section.differences == 0


def test_ledger_must_net_to_the_current_contribution() -> None:
    m = view(api("a"), api("b"), api("d", status="declined"))
    assert c.ledger_mysql(m).section.differences == 0
    m.ledger["a"] = {("c1", "books", D): (999, 1)}
    m.ledger["d"] = {("c1", "books", D): (5, 0)}
    m.ledger.pop("b")
    assert c.ledger_mysql(m).ids == {"mismatch": ["a", "b", "d"]}


def test_redis_is_compared_key_by_key_and_lost_partitions_are_named() -> None:
    m = view(api("a"), api("b", cents=500))
    r = RedisView({"books": (2, 1500)}, {"c1": 1500}, {D.isoformat(): 1500}, {0: 7}, {0: 2})
    assert c.redis_mysql(r, m, 2).section.differences == 0
    r.category["books"] = (2, 1501)
    r.day["2026-10-29"] = 5
    r.watermarks.pop(0)
    got = c.redis_mysql(r, m, 2)
    assert got.section.counts == {"category": 1, "day": 1, "state_lost": 1}
    assert got.ids["state_lost"] == ["partition 0"]


def test_kafka_positions_behind_the_end_are_in_flight() -> None:
    assert c.stream_positions({0: 4, 1: 2}, {1: 7}) == {0: 5, 1: 7}
    got = c.kafka_mysql({0: 10, 1: 0}, {0: 20}, {0: 5}, {0: 15})
    assert (got.section.differences, got.section.in_flight) == (0, 5 + 5)
    lost = c.kafka_mysql({0: 0}, {0: 0}, {0: 5}, {0: 15})
    assert lost.section.counts == {"stream_past_end": 1, "sink_past_end": 1}
    assert c.settled({0: 5, 1: 3}, {0: 9}, {0: 5}, {0: 9}, {0: 0})  # 1: state lost
    assert not c.settled({0: 5}, {0: 9}, {0: 5}, {0: 9}, {0: 1})
    assert not c.settled({0: 5}, {0: 9}, {0: 4}, {0: 9}, {0: 0})


def _v(at: datetime, prev: datetime | None, status: str, cents: int, ids: list[str]) -> tuple:
    counted = status in COUNTED
    return ("t1", at.replace(tzinfo=None), "c1", "books", Decimal(cents) / 100, D, status,
            int(counted), prev.replace(tzinfo=None) if prev else None, ",".join(ids),
            at.replace(tzinfo=None), 0, 3, 0, 9)  # fmt: skip


def test_derive_rebuilds_entries_and_current_row_from_a_whole_chain() -> None:
    t1, t2 = T0, T0 + timedelta(hours=1)
    new1, rev2, new2 = (entry_id("t1", t1, "new"), entry_id("t1", t2, "reversal"),
                        entry_id("t1", t2, "new"))  # fmt: skip
    rows = [_v(t1, None, "pending", 1000, [new1]), _v(t2, t1, "approved", 1200, [rev2, new2])]
    got = derive(rows)
    assert got is not None
    assert [(e[0], e[7], e[8]) for e in got.ledger] == [
        (new1, Decimal("10.00"), 1),
        (rev2, Decimal("-10.00"), -1),
        (new2, Decimal("12.00"), 1),
    ]
    assert got.current is not None and got.current[3] == Decimal("12.00")
    assert derive(rows[1:]) is None  # the first version lost: the chain is broken
    assert derive([_v(t1, None, "pending", 1000, ["bogus"])]) is None


def test_report_json_has_a_section_per_comparison() -> None:
    found = c.ledger_mysql(view(api("a")))
    doc = Report("ns", [found.section]).to_json()
    assert doc["agree"] is True and doc["ledger_mysql"]["checked"] == 1


def test_an_unreadable_since_is_a_usage_error_before_any_service_is_asked(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from txnpipe.cli import main

    assert main(["reconcile", "--since", "yesterday-ish"]) == 2
    err = capsys.readouterr().err
    assert "--since='yesterday-ish'" in err and len(err.strip().splitlines()) == 1
