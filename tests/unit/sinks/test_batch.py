"""Folding ledger messages into units (version + entries), orphans and dead letters."""

from __future__ import annotations

from datetime import date, datetime

from schemas import DeadLetter, LedgerEntry, VersionRecord
from sinks.batch import (
    BatchPlan,
    Received,
    current_row,
    decode,
    fold,
    fold_offsets,
    latest_versions,
    ledger_row,
    raw_positions,
    version_row,
)
from tests.unit.sinks.ledger_stream import Ledger, make_txn, noisy, random_ledger

TOPIC = "ns.transactions.ledger"


def received(
    messages: list[LedgerEntry | VersionRecord], partition: int = 0
) -> list[Received | DeadLetter]:
    return [
        decode(TOPIC, partition, offset, m.transaction_id.encode(), m.model_dump_json().encode())
        for offset, m in enumerate(messages)
    ]


def two_versions() -> Ledger:
    ledger = Ledger()
    ledger.accept(make_txn("t1", 0))
    ledger.accept(make_txn("t1", 5, amount_cents=2500))  # reversal + new entry
    return ledger


def test_each_version_takes_the_entries_published_before_it() -> None:
    plan = fold(received(two_versions().messages), {0: 5})
    assert [len(u.entries) for u in plan.units] == [1, 2]
    assert all(not u.missing for u in plan.units) and plan.orphans == []
    reversal, new = plan.units[1].entries
    assert (reversal.message.amount_cents, new.message.amount_cents) == (-1000, 2500)  # type: ignore[union-attr]


def test_entries_without_their_version_are_orphans_and_the_version_later_misses_them() -> None:
    messages = two_versions().messages
    first = fold(received(messages[:4]), {})  # E1 V1 | R2 N2 — V2 is in the next batch
    assert [o.message.entry_id for o in first.orphans] == [
        messages[2].entry_id,
        messages[3].entry_id,
    ]  # type: ignore[union-attr]
    second = fold(received(messages[4:]), {})
    [unit] = second.units
    assert unit.entries == () and set(unit.missing) == {messages[2].entry_id, messages[3].entry_id}  # type: ignore[union-attr]


def test_redelivered_and_republished_messages_are_folded_once() -> None:
    m = two_versions().messages  # E1 V1 R2 N2 V2
    # entries re-published after a crash before their version, a version redelivered at once,
    # and an old entry redelivered after its version
    items = received([m[0], m[0], m[1], m[1], m[2], m[3], m[2], m[3], m[4], m[0], m[4]])
    plan = fold(items, {})
    assert [(u.record.updated_at, len(u.entries), u.missing) for u in plan.units] == [
        (m[1].updated_at, 1, ()),  # type: ignore[union-attr]
        (m[4].updated_at, 2, ()),  # type: ignore[union-attr]
    ]
    assert plan.orphans == []


def test_noisy_stream_folds_to_the_clean_one() -> None:
    ledger = random_ledger(200)
    clean = fold(received(ledger.messages), {})
    dirty = fold(received(noisy(ledger.messages, rate=0.1)), {})

    def key(p: BatchPlan) -> list[tuple[str, datetime, int]]:
        return sorted(
            (u.record.transaction_id, u.record.updated_at, len(u.entries)) for u in p.units
        )

    assert key(dirty) == key(clean) and dirty.orphans == []


def test_a_message_that_is_not_a_ledger_event_is_a_sink_dead_letter() -> None:
    [bad] = [decode(TOPIC, 3, 42, None, b'{"kind": "entry", "nope": 1}')]
    assert isinstance(bad, DeadLetter)
    assert (bad.stage, bad.reason, bad.partition, bad.offset) == (
        "sink",
        "invalid_ledger_message",
        3,
        42,
    )
    plan = fold([bad], {3: 43})
    assert plan.invalid == [bad] and plan.units == []


def test_rows_carry_decimal_strings_and_naive_utc_times() -> None:
    plan = fold(received(two_versions().messages), {})
    unit = plan.units[1]
    reversal = ledger_row(unit.entries[0])
    assert reversal[7] == "-10.00" and reversal[8] == -1 and reversal[2].tzinfo is None
    version = version_row(unit.version)
    assert version[4] == "25.00" and version[7] == 1 and version[9].count(",") == 1
    assert current_row(unit.record)[3] == "25.00"
    assert current_row(unit.record)[4] == date(2025, 12, 31)


def test_latest_version_per_transaction_and_raw_positions() -> None:
    ledger = Ledger()
    ledger.accept(make_txn("a", 0), source=(1, 10))
    ledger.accept(make_txn("a", 9, status="declined"), source=(1, 12))
    ledger.accept(make_txn("b", 1), source=(2, 7))
    plan = fold(received(ledger.messages), {})
    latest = latest_versions(plan.units)
    assert latest["a"].status == "declined" and latest["b"].status == "pending"
    assert raw_positions(plan.units) == {1: 12, 2: 7}


def test_fold_offsets_is_next_offset_per_partition() -> None:
    assert fold_offsets([(0, 5), (1, 2), (0, 9), (0, 7)]) == {0: 10, 1: 3}


def test_load_data_lines_escape_specials_and_write_utc_without_offset() -> None:
    from sinks.batch import render, tsv_text

    assert tsv_text("a\\b\tc\nd\0") == "a\\\\b\\tc\\nd\\0" and tsv_text("café 日本") == "café 日本"
    ledger = Ledger()
    ledger.accept(make_txn("t\t1", 0, product_category="x\ny"))
    [unit] = render(fold(received(ledger.messages), {})).units
    entry_lines, version_line = unit.lines()
    fields = entry_lines[0].rstrip("\n").split("\t")
    assert len(fields) == 13 and fields[1] == "t\\t1" and fields[5] == "x\\ny"
    assert fields[2] == "2026-01-01 00:00:00" and fields[7] == "10.00"
    assert version_line.count("\t") == 15 and "+00:00" not in version_line
    assert unit.current().rstrip("\n").split("\t")[6] == "2026-01-01 00:00:00"

    from sinks.batch import current_tsv, ledger_tsv, version_tsv

    assert version_line == version_tsv(unit.version) and unit.current() == current_tsv(unit.record)
    assert entry_lines == tuple(ledger_tsv(e) for e in unit.entries)


def test_decoding_is_strict_about_the_ledger_format() -> None:
    entry = two_versions().messages[0]
    good = entry.model_dump_json().encode()
    assert isinstance(decode(TOPIC, 0, 0, None, good), Received)
    stringly = good.replace(b'"amount_cents":1000', b'"amount_cents":"1000"')
    assert stringly != good
    assert isinstance(decode(TOPIC, 0, 1, None, stringly), DeadLetter)
