"""What ``txnpipe dlq`` shows: triage figures with their marks, and records made safe to print.

A raw record can hold anything: invalid UTF-8, terminal escapes, bidi overrides, a 1 MB
line. ``printable`` shows bytes that are not UTF-8 as ``\\xNN`` and every character that is
not printable (controls, format characters) as an escape, so nothing reaches the terminal
that it would act on. The marks of ``dlq stats`` are decided here from plain figures.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sinks.dead_letter_queries import Letter, ReasonCount

HOURS = 24
SPIKE_FACTOR = 3.0  # the last hour at least this many times the usual hourly rate …
SPIKE_MIN = 5  # … and at least this many dead letters
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(raw: bytes, limit: int | None = None) -> str:
    """``raw`` as text safe for a terminal, cut to ``limit`` characters (then ``…``)."""
    text = raw.decode("utf-8", "surrogateescape")  # a byte that is not UTF-8: U+DC80-DCFF
    out: list[str] = []
    size = 0
    for ch in text:
        if ch.isprintable():
            piece = ch
        elif 0xDC80 <= ord(ch) <= 0xDCFF:
            piece = f"\\x{ord(ch) - 0xDC00:02x}"
        elif ch in _ESCAPES:
            piece = _ESCAPES[ch]
        elif ord(ch) < 0x100:
            piece = f"\\x{ord(ch):02x}"
        else:
            piece = f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}"
        if limit is not None and size + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        size += len(piece)
    return "".join(out)


def is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def moment(value: datetime | None) -> str:
    """A DATETIME of the index (naive UTC) as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    if value is None:
        return "-"
    return value.replace(tzinfo=None).isoformat() + "Z"


def _short_time(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


# -- stats ---------------------------------------------------------------------------------


@dataclass
class ReasonStats:
    """One (stage, reason) of ``dlq stats``."""

    stage: str
    reason: str
    count: int
    back: int
    redriven: int
    first_seen: datetime
    last_seen: datetime
    share: float | None  # of all records the stream has read
    per_hour: list[int] = field(default_factory=list)  # oldest first; the last is the last hour
    usual_per_hour: float = 0.0
    marks: list[str] = field(default_factory=list)

    @property
    def last_hour(self) -> int:
        return self.per_hour[-1] if self.per_hour else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "reason": self.reason,
            "count": self.count,
            "share": self.share,
            "came_back_after_redrive": self.back,
            "redriven": self.redriven,
            "first_seen": moment(self.first_seen),
            "last_seen": moment(self.last_seen),
            "per_hour": self.per_hour,
            "last_hour": self.last_hour,
            "usual_per_hour": round(self.usual_per_hour, 3),
            "marks": self.marks,
        }


def build_stats(
    reasons: Sequence[ReasonCount],
    hourly: Sequence[tuple[str, str, int, int]],
    first_seen: dict[tuple[str, str], datetime],
    oldest: datetime | None,
    now: datetime,
    records: int | None,
    redriven: dict[str, int],
) -> list[ReasonStats]:
    """Figures per (stage, reason), busiest first, with their marks.

    ``new``: first seen in the last hour, when the index holds older dead letters (with
    none older there is no "usual" yet). ``spike``: the last hour holds at least
    ``SPIKE_MIN`` and more than ``SPIKE_FACTOR`` times the reason's mean over the 23 hours
    before it.
    """
    naive_now = now.astimezone(UTC).replace(tzinfo=None)
    hour_ago = naive_now - timedelta(hours=1)
    baseline = oldest is not None and oldest < hour_ago
    series: dict[tuple[str, str], list[int]] = {}
    for stage, reason, age, count in hourly:
        series.setdefault((stage, reason), [0] * HOURS)[HOURS - 1 - age] += count
    out: list[ReasonStats] = []
    for r in reasons:
        per_hour = series.get((r.stage, r.reason), [0] * HOURS)
        usual = sum(per_hour[:-1]) / (HOURS - 1)
        stats = ReasonStats(
            r.stage, r.reason, r.count, r.back, redriven.get(r.reason, 0),
            r.first_seen, r.last_seen,
            None if not records else r.count / records, per_hour, usual,
        )  # fmt: skip
        first = first_seen.get((r.stage, r.reason))
        if baseline and first is not None and first >= hour_ago:
            stats.marks.append("new")
        elif baseline and stats.last_hour >= SPIKE_MIN and stats.last_hour > SPIKE_FACTOR * usual:
            stats.marks.append("spike")
        out.append(stats)
    out.sort(key=lambda s: (-s.count, s.stage, s.reason))
    return out


_BLOCKS = "▁▂▃▄▅▆▇█"
_ASCII_BLOCKS = ".:-=+*#@"


def sparkline(values: Sequence[int]) -> str:
    """One character per value (``·`` for none), scaled to the largest."""
    blocks, zero = _BLOCKS, "·"
    if "utf" not in (getattr(sys.stdout, "encoding", "") or "").lower():
        blocks, zero = _ASCII_BLOCKS, " "
    top = max(values, default=0)
    if top <= 0:
        return zero * len(values)
    return "".join(
        zero if v <= 0 else blocks[min(len(blocks) - 1, (v * len(blocks) - 1) // top)]
        for v in values
    )


def _mark_text(s: ReasonStats) -> str:
    if "new" in s.marks:
        return "NEW: first seen in the last hour"
    if "spike" in s.marks:
        return f"SPIKE: {s.last_hour} in the last hour, usually {s.usual_per_hour:.1f}/h"
    return ""


def render_stats(
    stats: Sequence[ReasonStats],
    *,
    records: int | None,
    behind: int | None,
    topic: str,
    since: datetime | None,
    now: datetime,
) -> str:
    total = sum(s.count for s in stats)
    back = sum(s.back for s in stats)
    head = f"dead letters: {total:,}"
    if records and since is None:
        head += f" of {records:,} records read by the stream ({total / records:.2%})"
    if since is not None:
        head += f" since {_short_time(since.astimezone(UTC))} UTC"
    if back:
        head += f"; {back:,} redriven records came back still invalid"
    index = "up to date" if behind == 0 else "?" if behind is None else f"{behind:,} behind"
    lines = [
        head,
        f"index of {topic}: {index}; at {_short_time(now.astimezone(UTC))} UTC",
    ]
    if not stats:
        lines.append("no dead letters")
        return "\n".join(lines)
    width = max(len(s.reason) for s in stats)
    lines.append("")
    lines.append(
        f"{'stage':<7} {'reason':<{width}} {'count':>7} {'share':>7} {'back':>5}  "
        f"{'first seen':<19}  {'last seen':<19}  last {HOURS} h, per hour"
    )
    for s in stats:
        share = "-" if s.share is None or since is not None else f"{s.share:.2%}"
        lines.append(
            f"{s.stage:<7} {s.reason:<{width}} {s.count:>7,} {share:>7} {s.back:>5,}  "
            f"{_short_time(s.first_seen)}  {_short_time(s.last_seen)}  "
            f"{sparkline(s.per_hour)} {_mark_text(s)}".rstrip()
        )
    return "\n".join(lines)


# -- letters -------------------------------------------------------------------------------


def source_of(letter: Letter) -> str:
    where = f"{letter.source_topic}:{letter.source_partition}:{letter.source_offset}"
    return where if letter.source_index is None else f"{where}[{letter.source_index}]"


def list_line(letter: Letter, width: int = 100) -> str:
    """One dead letter on one line: name, time, stage, reason, id, source, detail, record."""
    tid = "-" if letter.transaction_id is None else printable(letter.transaction_id.encode(), 40)
    came_back = f" (redriven from {letter.redrive_of})" if letter.redrive_of else ""
    return (
        f"{letter.partition}:{letter.offset}  {_short_time(letter.dead_at)}  {letter.stage}  "
        f"{letter.reason}  tx={tid}  {source_of(letter)}{came_back}  "
        f"{printable(letter.detail.encode(), 120)}  "
        f"{printable(letter.raw, width)} ({letter.raw_length:,} B)"
    )


def letter_json(letter: Letter, *, preview: int | None = None) -> dict[str, Any]:
    """A dead letter as JSON: its record as UTF-8 text, or base64 when it is not UTF-8."""
    import base64

    raw = letter.raw
    doc: dict[str, Any] = {
        "dead_letter": f"{letter.partition}:{letter.offset}",
        "dead_at": moment(letter.dead_at),
        "stage": letter.stage,
        "reason": letter.reason,
        "detail": letter.detail,
        "transaction_id": letter.transaction_id,
        "source_topic": letter.source_topic,
        "partition": letter.source_partition,
        "offset": letter.source_offset,
        "index": letter.source_index,
        "raw_length": letter.raw_length,
        "raw_stored": letter.stored,
        "redrive_of": letter.redrive_of,
    }
    if preview is not None:
        doc["raw_preview"] = printable(raw, preview)
    elif is_utf8(raw):
        doc["raw"], doc["raw_encoding"] = raw.decode("utf-8"), "utf-8"
    else:
        doc["raw"], doc["raw_encoding"] = base64.b64encode(raw).decode("ascii"), "base64"
    return doc


def render_letter(letter: Letter, topic: str) -> str:
    """The whole envelope, then the whole record as the index holds it, escaped."""
    kind = "UTF-8 text" if is_utf8(letter.raw) else "binary, not UTF-8: shown escaped"
    held = (
        "all of it"
        if letter.complete
        else f"the first {letter.stored:,} (the envelope cut the rest)"
    )
    batch = "" if letter.source_index is None else f" (record {letter.source_index} of a batch)"
    rows = [
        ("dead letter", f"{letter.partition}:{letter.offset} of {topic}"),
        ("dead at", moment(letter.dead_at)),
        ("stage", letter.stage),
        ("reason", letter.reason),
        ("detail", printable(letter.detail.encode())),
        ("transaction", printable((letter.transaction_id or "-").encode())),
        ("source", source_of(letter) + batch),
        ("redriven from", letter.redrive_of or "-"),
        ("raw", f"{letter.raw_length:,} bytes, {kind}; the index holds {held}"),
    ]
    lines = [f"{name:<14} {value}" for name, value in rows]
    lines.append("-" * 20)
    lines.append(printable(letter.raw))
    return "\n".join(lines)


# -- redrive -------------------------------------------------------------------------------


def render_report(report: Any, *, stopped: bool = False) -> str:
    """A ``RedriveReport`` for people: what went back, and what the stream will make of it."""
    e = report.expected
    verb = "would publish" if report.dry_run else "published"
    lines = [
        f"redrive {report.run_id}"
        + (" (dry run: nothing published, nothing recorded)" if report.dry_run else ""),
        f"  {report.selected:,} dead letters selected; {verb} {report.published:,} records; "
        f"{report.already:,} already redriven before (left alone)",
    ]
    if report.published:
        lines.append(
            f"  the stream will take {e['new']:,} as new versions, drop {e['duplicate']:,} "
            f"duplicates and {e['stale']:,} stale records (older than the transaction's "
            f"current version); {e['invalid']:,} are still invalid and go back to the DLQ "
            "once, marked as redriven"
            + (f"; {e['unknown']:,} undecided (Redis did not answer)" if e["unknown"] else "")
        )
    if report.invalid:
        reasons = ", ".join(f"{r}={n:,}" for r, n in sorted(report.invalid.items()))
        lines.append(f"  still invalid: {reasons}")
    for item in report.stale[:10]:
        lines.append(
            f"  stale: {item['dead_letter']} transaction {item['transaction_id']} updated_at "
            f"{item['updated_at']} is older than its current version {item['current_updated_at']}"
        )
    if len(report.stale) > 10:
        lines.append(f"  … and {len(report.stale) - 10:,} more stale (see --json)")
    for why, count in sorted(report.skipped.items()):
        lines.append(f"  left out: {count:,} {why}")
    if stopped:
        lines.append("  stopped before the end: run the same command again to continue")
    return "\n".join(lines)
