"""The source's side of ``txnpipe reconcile``: one full API sweep, and re-publishing records.

``sweep`` follows CONTRACT §1 from ``updated_since`` (none: the beginning) to a null cursor
and keeps, per transaction, its newest *valid* version (cleaned exactly as the stream
cleans it, opt-in rules included) and where its served bytes are. ``republish`` sends
chosen records to the raw topic exactly as served, routed and batched like the poller's
pages: the stream's dedup by ``(transaction_id, updated_at)`` makes sending one twice
harmless.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from common.settings import Settings
from producers.client import Page, RetryPolicy, TransactionsClient
from producers.publisher import RawPublisher, Router, ensure_topics, format_since, prepare
from schemas import Accepted, CleaningError, Transaction, clean_record, parse_message
from schemas.reconcile import ApiVersion
from schemas.rules import enabled

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


@dataclass
class Swept:
    """Newest valid version per transaction, and (page, index) of its served record."""

    newest: dict[str, ApiVersion] = field(default_factory=dict)
    where: dict[str, tuple[int, int]] = field(default_factory=dict)
    pages: list[Page] = field(default_factory=list)
    records: int = 0
    invalid: int = 0
    seconds: float = 0.0
    upto: datetime | None = None  # newest valid updated_at served: the sweep's horizon


def _clean(page: Page, i: int, value: Any, rules: frozenset[str]) -> Transaction | None:
    """The record's clean version exactly as the stream would make it, or None if invalid.

    Fast path: the value the page parser already decoded, when it holds no float (the stream
    reads numbers as Decimal); anything else is re-read from the served bytes."""
    if type(value) is dict and not any(type(x) is float for x in value.values()):
        try:
            return clean_record(value)
        except CleaningError:
            if not rules:
                return None
    results = parse_message(page.record(i), rules)
    result = results[0] if len(results) == 1 else None
    return result.transaction if isinstance(result, Accepted) else None


def fold_page(swept: Swept, page: Page, rules: frozenset[str] = frozenset()) -> None:
    """Pure: add one page's valid records to ``swept`` (newest ``updated_at`` wins)."""
    number = len(swept.pages)
    swept.pages.append(page)
    newest, where = swept.newest, swept.where
    for i, value in enumerate(page.values):
        swept.records += 1
        t = _clean(page, i, value, rules)
        if t is None:
            swept.invalid += 1
            continue
        known = newest.get(t.transaction_id)
        if known is None or t.updated_at > known.updated_at:
            newest[t.transaction_id] = ApiVersion(
                t.transaction_id, t.customer_id, t.product_category, t.amount_cents,
                t.transaction_date, t.status, t.updated_at,
            )  # fmt: skip
            where[t.transaction_id] = (number, i)
        if swept.upto is None or t.updated_at > swept.upto:
            swept.upto = t.updated_at


def sweep(
    settings: Settings,
    since: datetime | None = None,
    progress: Progress | None = None,
    page_size: int = 1000,
) -> Swept:
    """Sweep the API once to caught-up; transient failures are retried like the poller's."""
    client = TransactionsClient(
        settings.api_url,
        settings.api_key.get_secret_value(),
        retry=RetryPolicy(max_retry_time=120.0),
    )
    rules = enabled(settings.cleaning_rules)
    swept = Swept()
    started = last_report = time.monotonic()
    updated_since = format_since(since) if since is not None else None
    cursor: str | None = None
    try:
        while True:
            page = client.fetch(updated_since, cursor, page_size)
            fold_page(swept, page, rules)
            if progress is not None and time.monotonic() - last_report >= 1.0:
                last_report = time.monotonic()
                progress(f"api: {swept.records:,} records, {len(swept.newest):,} transactions")
            if page.next_cursor is None or (page.next_cursor == cursor and not len(page)):
                break
            cursor = page.next_cursor
    finally:
        client.close()
    swept.seconds = time.monotonic() - started
    return swept


def subset(swept: Swept, ids: Iterable[str]) -> list[Page]:
    """Pages holding only the served records of ``ids`` (the newest valid one of each)."""
    chosen: dict[int, list[int]] = {}
    for tid in ids:
        if tid in swept.where:
            number, index = swept.where[tid]
            chosen.setdefault(number, []).append(index)
    pages = []
    for number, indices in sorted(chosen.items()):
        page = swept.pages[number]
        indices.sort()
        pages.append(
            Page(
                [page.values[i] for i in indices],
                [page.starts[i] for i in indices],
                [page.ends[i] for i in indices],
                None,
                page.source,
            )
        )
    return pages


def republish(settings: Settings, pages: Iterable[Page]) -> int:
    """Send the records of ``pages`` to the raw topic as served; return the records sent."""
    partitions = ensure_topics(settings)
    router = Router(partitions)
    publisher = RawPublisher(settings, partitions)
    sent = 0
    for page in pages:
        prepared = prepare(router, page)
        publisher.publish(prepared, None)
        sent += prepared.records
    publisher.flush()
    log.info("reconcile: re-published %d records to %s", sent, publisher.topic)
    return sent
