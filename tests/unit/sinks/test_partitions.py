"""Monthly partition arithmetic and upkeep plans (no database)."""

from __future__ import annotations

from datetime import date

from sinks.partitions import (
    MAX_FUTURE_MONTHS,
    Layout,
    definitions,
    initial_clause,
    month_of,
    month_start,
    parse_name,
    partition_name,
    plan,
)


def test_month_names_and_bounds_round_trip() -> None:
    m = month_of(date(2026, 12, 31))
    assert partition_name(m) == "p202612" and parse_name("p202612") == m
    assert month_start(m + 1) == date(2027, 1, 1)
    assert parse_name("pmax") is None


def test_definitions_end_with_the_catch_all() -> None:
    text = definitions([month_of(date(2026, 11, 1)), month_of(date(2026, 12, 1))], catch_all=True)
    assert text == (
        "PARTITION p202611 VALUES LESS THAN ('2026-12-01'), "
        "PARTITION p202612 VALUES LESS THAN ('2027-01-01'), "
        "PARTITION pmax VALUES LESS THAN (MAXVALUE)"
    )
    assert "p202511" in initial_clause(date(2026, 11, 30), 12, 3)
    assert "p202702" in initial_clause(date(2026, 11, 30), 12, 3)


def test_crossing_a_month_boundary_adds_the_next_month_ahead() -> None:
    layout = Layout(month_of(date(2025, 11, 1)), month_of(date(2027, 2, 1)), True)
    assert plan(layout, [], date(2026, 11, 30), 3).empty
    todo = plan(layout, [], date(2026, 12, 1), 3)
    assert [partition_name(m) for m in todo.extend_high] == ["p202703"] and todo.split_low == ()


def test_backdated_months_split_the_lowest_partition() -> None:
    layout = Layout(month_of(date(2025, 11, 1)), month_of(date(2027, 2, 1)), True)
    todo = plan(layout, [month_of(date(2025, 8, 15))], date(2026, 11, 30), 3)
    assert [partition_name(m) for m in todo.split_low] == ["p202508", "p202509", "p202510"]


def test_a_date_far_in_the_future_stays_in_pmax() -> None:
    layout = Layout(month_of(date(2025, 11, 1)), month_of(date(2027, 2, 1)), True)
    far = month_of(date(2027, 2, 1)) + MAX_FUTURE_MONTHS + 1
    assert plan(layout, [far], date(2026, 11, 30), 3).empty
