"""Month-close restatements, the pure part: closes, which months, what moved and why."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from sinks.restatements import Version, close_at, closed_months, known_at, restate

COUNTED = frozenset({"pending", "approved"})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def v(
    tid: str, when: str, cents: int, day: str, status: str = "approved", cat: str = "b"
) -> Version:
    return Version(tid, at(when), "c1", cat, cents, date.fromisoformat(day), status)


@pytest.mark.parametrize(
    ("now", "count", "day", "months"),
    [
        ("2026-12-03T10:00", 2, 5, [(2026, 9), (2026, 10)]),  # November closes Dec 5
        ("2026-12-05T00:00", 2, 5, [(2026, 10), (2026, 11)]),  # exactly at the close
        ("2026-01-01T00:00", 3, 1, [(2025, 10), (2025, 11), (2025, 12)]),  # across a year
        ("2026-03-28T00:00", 1, 28, [(2026, 2)]),
    ],
    ids=["before-close", "at-close", "year-boundary", "day-28"],
)
def test_closed_months_are_the_latest_whose_close_has_passed(
    now: str, count: int, day: int, months: list[tuple[int, int]]
) -> None:
    assert closed_months(at(now), count, day) == months
    assert close_at((2025, 12), 5) == at("2026-01-05T00:00")


def test_known_at_takes_the_greatest_updated_at_at_or_before_t_whatever_the_order() -> None:
    a1, a2, a3 = (v("a", f"2026-01-0{d}T00:00", d, "2026-01-01") for d in (1, 2, 3))
    assert known_at([a3, a1, a2], at("2026-01-02T00:00")) is a2
    assert known_at([a3, a1, a2], at("2025-12-31T23:59")) is None


def test_a_backdated_correction_moves_both_months_and_a_fix_before_close_moves_none() -> None:
    candidates = {
        # backdated from February into January after both closes
        "b": [v("b", "2026-02-14T09:00", 5000, "2026-02-14"),
              v("b", "2026-03-07T12:00", 5000, "2026-01-30")],
        # amount fixed before February's close: part of the amount at close, no move
        "c": [v("c", "2026-02-10T00:00", 700, "2026-02-10"),
              v("c", "2026-02-20T00:00", 900, "2026-02-10")],
        # reversed after the close, then approved again: no net move
        "d": [v("d", "2026-02-01T00:00", 300, "2026-02-01"),
              v("d", "2026-03-06T00:00", 300, "2026-02-01", "reversed"),
              v("d", "2026-03-07T00:00", 300, "2026-02-01")],
    }  # fmt: skip
    now = at("2026-03-10T00:00")
    sums = {(2026, 1): 5000, (2026, 2): 1200}
    jan, feb = restate([(2026, 1), (2026, 2)], 5, now, candidates, sums, COUNTED)
    assert (jan.at_close_cents, jan.now_cents, jan.difference_cents) == (0, 5000, 5000)
    assert (feb.at_close_cents, feb.now_cents, feb.difference_cents) == (6200, 1200, -5000)
    assert [(m.transaction_id, m.change_cents) for m in jan.moved] == [("b", 5000)]
    assert [(m.transaction_id, m.change_cents) for m in feb.moved] == [("b", -5000)]
    story = feb.to_json()["top"][0]["versions"]
    assert [(s["known_at_close"], s["changed"]) for s in story] == [
        (True, []),
        (False, ["transaction_date"]),
    ]
    assert feb.to_json()["amount_at_close"] == "62.00" and feb.to_json()["difference"] == "-50.00"


def test_top_is_ordered_by_absolute_change_then_id_and_cut_at_ten() -> None:
    candidates = {
        f"t{i:02d}": [v(f"t{i:02d}", "2026-02-10T00:00", 100 * (i % 4 + 1), "2026-01-15")]
        for i in range(14)
    }
    [jan] = restate([(2026, 1)], 5, at("2026-03-01T00:00"), candidates, {}, COUNTED)
    assert len(jan.moved) == 14 and jan.to_json()["transactions_moved"] == 14
    top = jan.to_json()["top"]
    assert len(top) == 10
    assert [t["transaction_id"] for t in top[:4]] == ["t03", "t07", "t11", "t02"]
