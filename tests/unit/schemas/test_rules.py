"""Opt-in cleaning rules: off by default (CONTRACT §1 unchanged), and §1 still checks the rest."""

from __future__ import annotations

import json
from datetime import date

import pytest

from common.errors import ConfigError
from common.settings import load_settings
from schemas import Accepted, Rejection, parse_message
from schemas.rules import RULES, enabled

NAIVE = frozenset({"naive-date-utc"})


def _record(**changes: object) -> bytes:
    rec = {
        "transaction_id": "t1",
        "customer_id": "c1",
        "transaction_amount": "12.50",
        "transaction_date": "2025-11-25T10:00:00",
        "status": "approved",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    rec.update(changes)
    return json.dumps(rec).encode()


def test_a_naive_date_time_is_invalid_by_default() -> None:
    [result] = parse_message(_record())
    assert isinstance(result, Rejection) and result.reason == "invalid_date"


@pytest.mark.parametrize("batch", [False, True], ids=["single", "batch"])
def test_the_rule_reads_a_naive_date_time_as_utc(batch: bool) -> None:
    value = b"[" + _record() + b"]" if batch else _record()
    [result] = parse_message(value, NAIVE)
    assert isinstance(result, Accepted)
    assert result.transaction.transaction_date == date(2025, 11, 25)


@pytest.mark.parametrize(
    ("date_value", "reason"),
    [
        ("2027-03-01T10:00:00", "date_out_of_range"),  # after updated_at + 1 day: §1 range
        ("25/11/2025", "invalid_date"),  # not a form the rule knows
        ("2025-02-30", "invalid_date"),  # a plain (impossible) date is §1's alone
        ("2025-11-25T10:00:00+01:00", "date_out_of_range"),  # has an offset: §1 as before
    ],
)
def test_the_rule_fixes_only_its_form_and_the_rest_is_still_checked(
    date_value: str, reason: str
) -> None:
    raw = _record(transaction_date=date_value, updated_at="2025-11-20T00:00:00Z")
    [result] = parse_message(raw, NAIVE)
    assert isinstance(result, Rejection)
    assert (result.reason, result.raw, result.transaction_id) == (reason, raw, "t1")


def test_another_invalid_field_stays_invalid_with_the_rule_on() -> None:
    [result] = parse_message(_record(status="cancelled"), NAIVE)
    assert isinstance(result, Rejection) and result.reason == "invalid_status"


def test_rules_are_named_in_one_setting_and_unknown_names_are_refused() -> None:
    assert load_settings({"cleaning_rules": " Naive-Date-UTC ,naive-date-utc"}).cleaning_rules == (
        "naive-date-utc"
    )
    assert load_settings({}).cleaning_rules == ""
    assert enabled("") == frozenset()
    assert enabled("naive-date-utc") == NAIVE
    with pytest.raises(ConfigError, match="unknown rule"):
        enabled("euro-amounts")
    with pytest.raises(ConfigError):
        load_settings({"cleaning_rules": "no spaces please"})
    assert all(rule.reason for rule in RULES.values())
