"""The fast fold (fast cleaning + ledger JSON written directly) equals the model path."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

import stream_app.fold
from schemas.transaction import fast_path, use_fast_path
from stream_app.fold import Fold, RawMessage, fold_batch, parse_batch
from tests.unit.stream_app.history import batches, generate

COUNTED = frozenset({"pending", "approved"})
AT = datetime(2026, 6, 1, 12, 0, 0, 250, tzinfo=UTC)


def fold_all(messages: list[RawMessage], fast: bool) -> list[Fold]:
    """Fold in batches of 7 messages, chaining the state, as a worker does."""
    use_fast_path(fast)
    state: dict[str, object] = {}
    folds = []
    for start in range(0, len(messages), 7):
        parsed = parse_batch(3, messages[start : start + 7])
        current = {tid: state.get(tid) for tid in parsed.transaction_ids()}
        fold = fold_batch(parsed, current, watermark=-1, counted=COUNTED,  # type: ignore[arg-type]
                          raw_topic="ns.transactions.raw", accepted_at=AT)  # fmt: skip
        state.update(fold.states)
        folds.append(fold)
    return folds


@pytest.mark.parametrize("seed", [11, 12])
def test_fast_fold_equals_the_model_path(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    hist = generate(seed, 1500, now=datetime(2026, 6, 1, tzinfo=UTC), invalid_rate=0.05)
    served = list(hist.served)
    served[10] = {**served[10], "customer_id": 'quote " and \\ backslash'} if isinstance(
        served[10], dict) else served[10]  # fmt: skip
    messages = [RawMessage(i, None, v) for i, (_, _, v) in enumerate(batches(served, 1, 40))]
    messages += [RawMessage(len(messages) + i, None, json.dumps(r, default=str).encode())
                 for i, r in enumerate(served[:50])]  # fmt: skip
    was = fast_path()
    try:
        fast = fold_all(messages, fast=True)
        monkeypatch.setattr(stream_app.fold, "change_messages", lambda *a, **k: None)
        full = fold_all(messages, fast=False)
    finally:
        use_fast_path(was)
    assert sum(f.accepted for f in fast) > 1000
    for a, b in zip(fast, full, strict=True):
        assert a.out == b.out
        assert (a.states, a.category, a.customer, a.day) == (
            b.states,
            b.category,
            b.customer,
            b.day,
        )
        assert (a.accepted, a.duplicates, a.stale, a.invalid, a.entries) == (
            b.accepted, b.duplicates, b.stale, b.invalid, b.entries,
        )  # fmt: skip
