"""The stream app's pure middle: batch fold, outbox framing, state codec, ledger restore."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas import DeadLetter, Transaction
from stream_app.fold import (
    DLQ_KIND,
    LEDGER_KIND,
    MAX_DLQ_RAW,
    Fold,
    OutMessage,
    RawMessage,
    decode_state,
    encode_state,
    fold_batch,
    pack_outbox,
    parse_batch,
    unpack_outbox,
)
from stream_app.restore import fold_ledger
from tests.unit.stream_app.history import generate, truth

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
COUNTED = frozenset({"pending", "approved"})


def rec(
    tid: str,
    minutes: int,
    *,
    amount: str = "10.00",
    status: str = "approved",
    day: str = "2026-02-27",
    cat: str = "Books",
    cust: str = "C1",
) -> dict[str, object]:
    return {
        "transaction_id": tid,
        "customer_id": cust,
        "product_category": cat,
        "transaction_amount": amount,
        "transaction_date": day,
        "status": status,
        "updated_at": (T0 + timedelta(minutes=minutes)).isoformat(),
    }


def msg(offset: int, *records: object) -> RawMessage:
    return RawMessage(offset, None, json.dumps(list(records)).encode())


def fold(
    messages: list[RawMessage],
    current: dict[str, Transaction | None] | None = None,
    watermark: int = -1,
) -> Fold:  # type: ignore[no-untyped-def]
    parsed = parse_batch(3, messages)
    return fold_batch(
        parsed,
        current or {},
        watermark=watermark,
        counted=COUNTED,
        raw_topic="ns.transactions.raw",
        accepted_at=T0,
    )


def test_chain_within_a_batch_sees_the_earlier_version() -> None:
    f = fold([msg(0, rec("a", 0), rec("a", 1, amount="12.00")), msg(1, rec("a", 1))])
    assert (f.accepted, f.duplicates, f.stale, f.invalid) == (2, 1, 0, 0)
    # new 10.00, then reversal -10.00 + new 12.00: net one transaction of 12.00
    assert f.category == {"books": [1, 1200]}
    assert f.customer == {"C1": 1200}
    assert f.day == {"2026-02-27": 1200}
    assert f.entries == 3
    assert f.states["a"].amount_cents == 1200
    kinds = [json.loads(m.value)["kind"] for m in f.out]
    assert kinds == ["entry", "version", "entry", "entry", "version"]  # entries before version
    assert (f.first_offset, f.last_offset, f.messages) == (0, 1, 2)


def test_stale_and_backdated_change_move_money_between_days() -> None:
    current = {
        "a": Transaction.model_validate(
            {
                "transaction_id": "a",
                "customer_id": "C1",
                "product_category": "books",
                "amount_cents": 500,
                "transaction_date": date(2026, 2, 27),
                "status": "pending",
                "updated_at": T0 + timedelta(minutes=5),
            }
        )
    }
    f = fold([msg(7, rec("a", 1), rec("a", 6, amount="5.00", day="2026-01-31"))], current)
    assert (f.accepted, f.stale) == (1, 1)
    assert f.day == {"2026-02-27": -500, "2026-01-31": 500}
    assert f.category == {"books": [0, 0]}  # -1 +1, -500 +500


def test_messages_at_or_below_the_watermark_are_skipped() -> None:
    f = fold([msg(4, rec("a", 0)), msg(5, rec("b", 0))], watermark=4)
    assert f.messages == 1
    assert f.first_offset == 5
    assert list(f.states) == ["b"]


def test_declined_version_reverses_the_contribution() -> None:
    f = fold([msg(0, rec("a", 0), rec("a", 1, status="declined"))])
    assert f.category == {"books": [0, 0]}
    assert f.customer == {"C1": 0}
    assert f.states["a"].status == "declined"


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"\xff\xfe",
        b"{nope",
        b"[1, 2]",
        b"[" * 50_000,
        json.dumps({"x": "y" * 400_000}).encode(),
    ],
    ids=["empty", "not-utf8", "not-json", "array-of-non-objects", "deep", "huge"],
)
def test_poison_becomes_dead_letters_never_exceptions(value: bytes) -> None:
    f = fold([RawMessage(9, b"k", value)])
    assert f.invalid >= 1
    assert f.accepted == 0
    letters = [DeadLetter.model_validate_json(m.value) for m in f.out]
    assert all(m.kind == DLQ_KIND and m.key == b"k" for m in f.out)
    assert all(d.offset == 9 and d.partition == 3 for d in letters)
    assert all(len(d.raw_bytes()) <= MAX_DLQ_RAW for d in letters)


def test_outbox_framing_roundtrip() -> None:
    out = [
        OutMessage(LEDGER_KIND, b"t1", b'{"a":1}'),
        OutMessage(DLQ_KIND, None, b""),
        OutMessage(DLQ_KIND, b"", b"\x00\xff"),
    ]
    assert unpack_outbox(pack_outbox(out)) == out


def test_state_codec_roundtrip() -> None:
    txn = Transaction.model_validate(
        {
            "transaction_id": "é 1",
            "customer_id": "c",
            "product_category": "home goods",
            "amount_cents": 123,
            "transaction_date": date(2025, 12, 31),
            "status": "approved",
            "updated_at": datetime(2026, 1, 1, 0, 0, 0, 123456, tzinfo=UTC),
        }
    )
    assert decode_state("é 1", encode_state(txn)) == txn


@given(
    st.text(min_size=1, max_size=8) | st.sampled_from(['a"b', "a\\b", "\n", "\u2028", "é"]),
    st.text(min_size=1, max_size=8) | st.sampled_from(["books", "x\x7fy", "\ud800"]),
    st.dates(min_value=date(2000, 1, 1)),
    st.datetimes(timezones=st.just(UTC)),
)
def test_state_codec_writes_what_json_writes(
    customer: str, category: str, day: date, updated: datetime
) -> None:
    """The memoised spellings (strings, dates, times) write the JSON the codec always did."""
    txn = Transaction.model_construct(
        transaction_id="t", customer_id=customer, product_category=category, amount_cents=5,
        transaction_date=day, status="pending", updated_at=updated,
    )  # fmt: skip
    for _ in range(2):  # the memos' answers too
        dumps = json.JSONEncoder(ensure_ascii=False).encode
        assert encode_state(txn) == (
            f"[{dumps(customer)},{dumps(category)},5,"
            f'"{day.isoformat()}","pending","{updated.isoformat()}"]'
        )
        assert decode_state("t", encode_state(txn)) == txn


def test_restore_from_ledger_equals_the_live_fold() -> None:
    """Folding the ledger (duplicated, and with a tail of entries missing their version)
    gives the same state and sums as the batch folds that wrote it."""
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    hist = generate(5, 300, now=now)
    messages = [
        RawMessage(i, None, json.dumps(r, default=str).encode()) for i, r in enumerate(hist.served)
    ]
    live = fold(messages)
    ledger = [m.value for m in live.out if m.kind == LEDGER_KIND]
    # a re-published outbox duplicates messages; a crash left entries without their version
    replayed = ledger + ledger[:50] + [ledger[-2]]
    restored = fold_ledger(3, replayed)
    assert restored.watermark == max(json.loads(v)["source_offset"] for v in ledger)
    assert restored.states == {tid: encode_state(t) for tid, t in live.states.items()}
    nonzero = {k: v for k, v in live.category.items() if v != [0, 0]}
    assert {k: v for k, v in restored.category.items() if v != [0, 0]} == nonzero
    assert {k: v for k, v in restored.customer.items() if v} == {
        k: v for k, v in live.customer.items() if v
    }
    assert {k: v for k, v in restored.day.items() if v} == {k: v for k, v in live.day.items() if v}
    # and both equal the independently computed truth
    expected = truth(hist, now=now, limit=1000)
    cats = {c["product_category"]: c["total_transactions"] for c in expected.categories}
    assert {k: v[0] for k, v in nonzero.items()} == cats


def test_restore_ignores_entries_whose_version_is_missing() -> None:
    live = fold([msg(0, rec("a", 0))])
    entry, version = (m.value for m in live.out)
    assert fold_ledger(3, [entry]).category == {}
    assert fold_ledger(3, [entry]).watermark == -1
    assert fold_ledger(3, [entry, version]).category == {"books": [1, 1000]}


def test_restore_under_counted_statuses_sums_the_last_versions() -> None:
    """With the rules unchanged, versions and entries agree; after a change of the counted
    statuses the restore follows the versions (what later entries build on)."""
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    hist = generate(6, 300, now=now)
    messages = [RawMessage(i, None, json.dumps(r, default=str).encode())
                for i, r in enumerate(hist.served)]  # fmt: skip
    ledger = [m.value for m in fold(messages).out if m.kind == LEDGER_KIND]
    by_entries = fold_ledger(3, ledger)
    by_versions = fold_ledger(3, ledger, COUNTED)
    assert {k: v for k, v in by_versions.customer.items() if v} == {
        k: v for k, v in by_entries.customer.items() if v
    }
    approved = fold_ledger(3, ledger, {"approved"})
    last = hist.last_versions().values()
    assert sum(c for c, _ in approved.category.values()) == sum(
        1 for v in last if v.status == "approved"
    )
    assert sum(approved.customer.values()) == sum(v.cents for v in last if v.status == "approved")


def test_a_stale_record_is_published_as_a_stale_version_without_entries() -> None:
    """As-of answers need late replicas (docs/as-of.md): the record changes nothing, but its
    version goes to the audit trail flagged, after the batch's other messages for it."""
    f = fold([msg(0, rec("a", 5, amount="12.00")), msg(1, rec("a", 1, status="pending"))])
    assert (f.accepted, f.stale, f.entries) == (1, 1, 1)
    assert f.states["a"].amount_cents == 1200 and f.category == {"books": [1, 1200]}
    last = json.loads(f.out[-1].value)
    assert (last["kind"], last["stale"], last["entry_ids"], last["status"]) == (
        "version", True, [], "pending",
    )  # fmt: skip
    assert last["counted"] is True and last["previous_updated_at"] is None
    assert last["source_offset"] == 1 and f.out[-1].key == b"a"
    assert all(
        json.loads(m.value).get("stale") is False for m in f.out[:-1] if b'"version"' in m.value
    )
    # a restore keeps the current version, counts the stale one nowhere, moves the watermark
    restored = fold_ledger(3, [m.value for m in f.out])
    assert restored.states == {"a": encode_state(f.states["a"])}
    assert (restored.versions, restored.entries, restored.watermark) == (1, 1, 1)
    assert restored.category == {"books": [1, 1200]}
