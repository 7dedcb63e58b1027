"""The live terminal view of ``txnpipe run`` (rich), or one progress line every few seconds
when stdout is not a terminal."""

from __future__ import annotations

import logging
import sys
import time
from collections import deque
from types import TracebackType
from typing import Any

from common.settings import Settings
from schemas.answers import Answer, CategoryRow, CustomerRow, MonthRow, cents_to_str
from txnpipe.observe import Snapshot, snapshot
from txnpipe.supervisor import Supervisor

log = logging.getLogger(__name__)
LINE_EVERY = 5.0


def _answers(settings: Settings) -> dict[str, Answer | str]:
    from stream_app.lookups import answer

    out: dict[str, Answer | str] = {}
    for question, limit in (("categories", None), ("top-customers", 5), ("monthly", None)):
        try:
            out[question] = answer(settings, question, limit)
        except Exception as exc:  # the view must keep running while a store restarts
            out[question] = f"unavailable ({type(exc).__name__})"
    return out


class ProgressView:
    """Context manager: ``update()`` redraws, ``event()`` records a supervisor event."""

    def __init__(self, settings: Settings, supervisor: Supervisor, *, live: bool) -> None:
        self.settings = settings
        self.supervisor = supervisor
        self.live = live
        self.events: deque[str] = deque(maxlen=6)
        self._live: Any = None
        self._last_line = 0.0
        self.last: Snapshot | None = None
        self.started = time.monotonic()

    def __enter__(self) -> ProgressView:
        if self.live:
            from rich.live import Live

            self._live = Live(self._render(None, {}), refresh_per_second=2, screen=False)
            self._live.__enter__()
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(et, ev, tb)

    def event(self, text: str) -> None:
        self.events.append(f"{time.strftime('%H:%M:%S')} {text}")
        if not self.live:
            print(f"txnpipe run: {text}", file=sys.stderr, flush=True)

    def update(self) -> None:
        now = time.monotonic()
        if not self.live and now - self._last_line < LINE_EVERY:
            return
        try:
            snap = snapshot(self.settings, reasons=False)
        except Exception as exc:  # pragma: no cover - defensive: the view never kills the run
            log.debug("snapshot failed: %s", exc)
            return
        self.last = snap
        if self.live:
            self._live.update(self._render(snap, _answers(self.settings)))
        else:
            self._last_line = now
            print(self._line(snap), flush=True)

    def final(self) -> None:
        if self.last is not None:
            print(self._line(self.last), flush=True)

    def _line(self, snap: Snapshot) -> str:
        by = {s.name: s for s in snap.stages}
        stream, sink = by.get("stream"), by.get("sink")
        parts = [f"[{time.monotonic() - self.started:5.0f}s]"]
        if stream is not None:
            d = stream.detail
            counts = " ".join(
                f"{label}={d.get(key, 0)}"
                for label, key in (
                    ("accepted", "accepted"),
                    ("dup", "duplicates"),
                    ("stale", "stale"),
                    ("dlq", "invalid"),
                    ("entries", "entries"),
                )
            )
            parts.append(f"{counts} stream_lag={_or_q(stream.lag)}")
        if sink is not None:
            rows = sum(int(p.get("rows", 0)) for p in snap.partitions)
            parts.append(f"ledger_rows~{rows} sink_lag={_or_q(sink.lag)}")
        restarts = sum(s.restarts for s in self.supervisor.stages)
        if restarts:
            parts.append(f"restarts={restarts}")
        return " ".join(parts)

    def _render(self, snap: Snapshot | None, answers: dict[str, Answer | str]) -> Any:
        from rich.console import Group
        from rich.table import Table

        procs = Table(title="stages", expand=True)
        for col in ("stage", "pid", "state", "restarts", "lag", "per min", "detail"):
            procs.add_column(col)
        by = {s.name: s for s in snap.stages} if snap else {}
        for stage in self.supervisor.stages:
            kind = stage.name.split("-")[0].replace("simulator", "").replace("poller", "poller")
            st = by.get("stream" if kind == "stream" else kind)
            detail = ""
            if st is not None:
                detail = st.error or ", ".join(f"{k}={v}" for k, v in list(st.detail.items())[:6])
            procs.add_row(
                stage.name,
                str(stage.pid or "-"),
                stage.state,
                str(stage.restarts),
                "" if st is None or st.lag is None else str(st.lag),
                "" if st is None or st.per_minute is None else str(st.per_minute),
                detail,
            )
        tables: list[Any] = [procs]
        side_by_side = Table.grid(padding=(0, 2))
        side_by_side.add_row(
            _answer_table("categories", answers.get("categories")),
            _answer_table("top 5 customers", answers.get("top-customers")),
            _answer_table("monthly spend, last year", answers.get("monthly")),
        )
        tables.append(side_by_side)
        footer = Table.grid()
        if snap is not None:
            footer.add_row(
                f"redis as of {snap.redis_as_of or '-'}   mysql as of {snap.mysql_as_of or '-'}   "
                f"dead letters {snap.dead_letters if snap.dead_letters is not None else '-'}"
            )
        for e in self.events:
            footer.add_row(e)
        footer.add_row("Ctrl-C stops every stage cleanly")
        tables.append(footer)
        return Group(*tables)


def _or_q(value: object) -> str:
    return "?" if value is None else str(value)


def _answer_table(title: str, answer: Answer | str | None) -> Any:
    from rich.table import Table

    table = Table(title=title, expand=False)
    if not isinstance(answer, Answer):
        table.add_column(answer or "waiting for data")
        return table
    rows = answer.rows
    if rows and isinstance(rows[0], CategoryRow):
        table.add_column("category")
        table.add_column("transactions", justify="right")
        table.add_column("amount", justify="right")
        for r in rows:
            assert isinstance(r, CategoryRow)
            table.add_row(
                r.product_category, str(r.total_transactions), cents_to_str(r.total_cents)
            )
    elif rows and isinstance(rows[0], CustomerRow):
        table.add_column("customer")
        table.add_column("amount", justify="right")
        for r in rows:
            assert isinstance(r, CustomerRow)
            table.add_row(r.customer_id, cents_to_str(r.total_cents))
    elif rows and isinstance(rows[0], MonthRow):
        table.add_column("month")
        table.add_column("amount", justify="right")
        for r in rows:
            assert isinstance(r, MonthRow)
            table.add_row(r.month, cents_to_str(r.total_cents))
    else:
        table.add_column("no data yet")
    return table
