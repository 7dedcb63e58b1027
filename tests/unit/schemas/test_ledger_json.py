"""``change_messages`` writes the bytes ``apply_change`` + the model serializers write."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from schemas import Change, LedgerEntry, Transaction, VersionRecord, apply_change
from schemas.ledger_json import change_messages, utc_text

COUNTED = frozenset({"pending", "approved"})
ENTRY_JSON = LedgerEntry.__pydantic_serializer__.to_json
VERSION_JSON = VersionRecord.__pydantic_serializer__.to_json

names = st.text(min_size=1, max_size=10) | st.sampled_from(["books", "café", 'a"b', "a\\b", "\n"])
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30))


def versions() -> st.SearchStrategy[Transaction]:
    return st.builds(
        Transaction,
        transaction_id=names,
        customer_id=names,
        product_category=names,
        amount_cents=st.integers(min_value=1, max_value=100_000_000),
        transaction_date=st.dates(min_value=date(2000, 1, 1)),
        status=st.sampled_from(["pending", "approved", "declined", "reversed"]),
        updated_at=moments.map(lambda m: m.replace(tzinfo=UTC)),
    )


@given(
    st.none() | versions(),
    versions(),
    st.booleans(),
    moments,
    st.integers(min_value=0, max_value=2**40),
)
def test_same_bytes_as_the_models(
    current: Transaction | None,
    incoming: Transaction,
    same_id: bool,
    accepted: datetime,
    offset: int,
) -> None:
    accepted_at = accepted.replace(tzinfo=UTC)
    if current is not None:
        later = current.updated_at + timedelta(microseconds=1)
        at = max(incoming.updated_at, later) if later.year < 10000 else incoming.updated_at
        incoming = incoming.model_copy(update={"updated_at": at})
        if same_id:  # the usual case: the same transaction with its fields changed or not
            current = current.model_copy(update={"transaction_id": incoming.transaction_id})
        if incoming.updated_at <= current.updated_at:
            return
    outcome = apply_change(
        current, incoming, accepted_at=accepted_at, counted=COUNTED, source=(3, offset)
    )
    assert isinstance(outcome, Change)
    expected = [ENTRY_JSON(e) for e in outcome.entries] + [VERSION_JSON(outcome.version)]
    accepted_text = utc_text(accepted_at)
    made = None
    if accepted_text is not None:
        made = change_messages(
            current, incoming, counted=COUNTED, accepted_at=accepted_text, partition=3,
            offset=offset,
        )  # fmt: skip
    if made is None:  # a string to escape (or a year < 1000): the model path is taken
        plain = (incoming.transaction_id, incoming.customer_id, incoming.product_category)
        assert any('"' in s or "\\" in s or not s.isprintable() for s in plain) or (
            current is not None
            and any(
                '"' in s or "\\" in s or not s.isprintable()
                for s in (current.customer_id, current.product_category)
            )
        ) or min(incoming.updated_at.year, accepted_at.year,
                 current.updated_at.year if current else 9999) < 1000  # fmt: skip
        return
    deltas, values = made
    assert values == expected
    assert [
        (d.transactions, d.cents, d.customer_id, d.product_category, d.day) for d in deltas
    ] == [
        (e.count, e.amount_cents, e.customer_id, e.product_category, e.transaction_date.isoformat())
        for e in outcome.entries
    ]


@given(st.text(st.characters(categories=["L", "N", "P", "S", "Zs"]), min_size=1, max_size=10))
def test_plain_text_takes_the_fast_path(name: str) -> None:
    if '"' in name or "\\" in name or not name.isprintable():
        return
    at = datetime(2026, 1, 1, tzinfo=UTC)
    txn = Transaction(
        transaction_id=name, customer_id=name, product_category=name, amount_cents=1,
        transaction_date=date(2026, 1, 1), status="approved", updated_at=at,
    )  # fmt: skip
    made = change_messages(None, txn, counted=COUNTED, accepted_at="2026-01-01T00:00:00Z",
                           partition=0, offset=0)  # fmt: skip
    assert made is not None
    outcome = apply_change(None, txn, accepted_at=at, counted=COUNTED, source=(0, 0))
    assert isinstance(outcome, Change)
    assert made[1] == [ENTRY_JSON(e) for e in outcome.entries] + [VERSION_JSON(outcome.version)]
