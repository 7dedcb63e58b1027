"""CONTRACT §2: duplicates, stale versions, reversals and entries, deterministic ids."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas import (
    DUPLICATE,
    LEDGER_ADAPTER,
    STALE,
    Change,
    LedgerEntry,
    Transaction,
    VersionRecord,
    apply_change,
)

T0 = datetime(2024, 6, 1, tzinfo=UTC)
NOW = datetime(2024, 6, 2, tzinfo=UTC)


def txn(minutes: int = 0, **over: object) -> Transaction:
    fields: dict[str, object] = {
        "transaction_id": "t1",
        "customer_id": "c1",
        "product_category": "books",
        "amount_cents": 1000,
        "transaction_date": date(2024, 5, 31),
        "status": "pending",
        "updated_at": T0 + timedelta(minutes=minutes),
    }
    fields.update(over)
    return Transaction(**fields)  # type: ignore[arg-type]


def change(current: Transaction | None, incoming: Transaction) -> Change:
    outcome = apply_change(current, incoming, accepted_at=NOW)
    assert isinstance(outcome, Change)
    return outcome


def test_first_counted_version_is_one_new_entry() -> None:
    c = change(None, txn())
    [entry] = c.entries
    assert (entry.entry_type, entry.amount_cents, entry.count) == ("new", 1000, 1)
    assert c.version.entry_ids == (entry.entry_id,) and c.version.counted


def test_first_declined_version_has_no_entries_but_is_recorded() -> None:
    c = change(None, txn(status="declined"))
    assert c.entries == () and not c.version.counted


def test_same_updated_at_is_duplicate_older_is_stale() -> None:
    current = txn(10)
    assert apply_change(current, txn(10, amount_cents=5), accepted_at=NOW) is DUPLICATE
    assert apply_change(current, txn(5), accepted_at=NOW) is STALE


def test_pending_to_approved_same_contribution_has_no_entries() -> None:
    c = change(txn(0), txn(1, status="approved"))
    assert c.entries == () and c.version.status == "approved"


def test_reversal_removes_contribution() -> None:
    [rev] = change(txn(0, status="approved"), txn(1, status="reversed")).entries
    assert (rev.entry_type, rev.amount_cents, rev.count) == ("reversal", -1000, -1)


def test_backdated_change_corrects_both_months() -> None:
    old = txn(0, transaction_date=date(2024, 5, 31))
    rev, new = change(old, txn(1, transaction_date=date(2024, 4, 30))).entries
    assert rev.transaction_date == date(2024, 5, 31) and rev.amount_cents == -1000
    assert new.transaction_date == date(2024, 4, 30) and new.amount_cents == 1000


def test_reversal_carries_previous_customer_and_category() -> None:
    old = txn(0, customer_id="c1", product_category="books")
    rev, new = change(
        old, txn(1, customer_id="c2", product_category="toys", amount_cents=700)
    ).entries
    assert (rev.customer_id, rev.product_category, rev.amount_cents) == ("c1", "books", -1000)
    assert (new.customer_id, new.product_category, new.amount_cents) == ("c2", "toys", 700)


def test_ids_are_deterministic_and_distinct() -> None:
    a = change(txn(0), txn(1, amount_cents=5))
    b = change(txn(0), txn(1, amount_cents=5))
    assert [e.entry_id for e in a.entries] == [e.entry_id for e in b.entries]
    assert len({e.entry_id for e in a.entries}) == 2


def test_messages_put_entries_before_their_version() -> None:
    c = change(txn(0), txn(1, amount_cents=5))
    assert [m.kind for m in c.messages] == ["entry", "entry", "version"]


def test_ledger_messages_round_trip_as_json() -> None:
    c = change(txn(0), txn(1, amount_cents=5))
    for message in c.messages:
        parsed = LEDGER_ADAPTER.validate_json(message.model_dump_json())
        assert parsed == message
        assert isinstance(parsed, LedgerEntry | VersionRecord)


@given(
    st.lists(
        st.tuples(
            st.integers(0, 30),
            st.sampled_from(["pending", "approved", "declined", "reversed"]),
            st.integers(1, 5000),
            st.integers(0, 3),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_ledger_sums_to_the_current_version_in_any_arrival_order(
    versions: list[tuple[int, str, int, int]],
) -> None:
    """Whatever order versions arrive in, the entries net to the latest version's contribution."""
    current: Transaction | None = None
    total_cents = total_count = 0
    per_day: dict[date, int] = {}
    for minute, status, cents, day in versions:
        incoming = txn(
            minute, status=status, amount_cents=cents, transaction_date=date(2024, 5, 1 + day)
        )
        outcome = apply_change(current, incoming, accepted_at=NOW)
        if isinstance(outcome, Change):
            current = incoming
            for e in outcome.entries:
                total_cents += e.amount_cents
                total_count += e.count
                per_day[e.transaction_date] = per_day.get(e.transaction_date, 0) + e.amount_cents
    assert current is not None
    latest = max(versions, key=lambda v: v[0])
    first_of_latest = next(v for v in versions if v[0] == latest[0])
    counted = first_of_latest[1] in ("pending", "approved")
    assert total_count == (1 if counted else 0)
    assert total_cents == (first_of_latest[2] if counted else 0)
    assert {d: c for d, c in per_day.items() if c} == (
        {date(2024, 5, 1 + first_of_latest[3]): first_of_latest[2]} if counted else {}
    )
