"""What `txnpipe dlq` prints: safe for any terminal, and stats marked as the docs say."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from common.errors import ConfigError
from sinks.dead_letter_queries import Letter, ReasonCount
from txnpipe.commands.dlq import parse_since
from txnpipe.dlq_view import build_stats, list_line, printable, render_letter, sparkline
from txnpipe.redrive import from_file, parse_position, redrive_key

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
NAIVE_NOW = NOW.replace(tzinfo=None)


def _safe(text: str) -> bool:
    """No character a terminal would act on (controls, format characters, bidi overrides)."""
    return all(unicodedata.category(ch)[0] != "C" or ch == "\n" for ch in text)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (b"\xff\xfe", "\\xff\\xfe"),
        (b"\x1b[2J\x07", "\\x1b[2J\\x07"),
        (b"a\nb\tc\rd\x00", "a\\nb\\tc\\rd\\x00"),
        ("bidi\u202eevil\u200b".encode(), "bidi\\u202eevil\\u200b"),
        ("café ✓".encode(), "café ✓"),
    ],
)
def test_printable_escapes_what_a_terminal_would_act_on(raw: bytes, shown: str) -> None:
    assert printable(raw) == shown
    assert _safe(printable(raw))


def test_printable_cuts_without_splitting_an_escape() -> None:
    assert printable(b"\xff" * 10, limit=9) == "\\xff\\xff…"
    assert printable(b"abc", limit=3) == "abc"


def _letter(raw: bytes, **changes: Any) -> Letter:
    fields: dict[str, Any] = {
        "partition": 3, "offset": 17, "dead_at": NAIVE_NOW, "stage": "stream",
        "reason": "not_utf8", "detail": "not UTF-8 at byte 0\x1b[2J", "transaction_id": None,
        "source_topic": "ns.transactions.raw", "source_partition": 1, "source_offset": 9,
        "source_index": None, "raw_length": len(raw), "stored": len(raw), "redrive_of": None,
        "raw": raw,
    }  # fmt: skip
    fields.update(changes)
    return Letter(**fields)


def test_list_and_show_stay_safe_and_say_how_long_the_record_was() -> None:
    binary = _letter(b"\xff\x1b]0;owned\x07" * 50)
    line = list_line(binary, width=40)
    assert _safe(line) and "\n" not in line
    assert "(550 B)" in line and "…" in line
    huge = _letter(b"A" * 1000, stored=1000, raw_length=700_000, reason="not_json")
    shown = render_letter(huge, "ns.transactions.dlq")
    assert "700,000 bytes" in shown and "the first 1,000" in shown
    assert _safe(render_letter(binary, "ns.transactions.dlq"))
    assert "binary, not UTF-8" in render_letter(binary, "t")


def _reason(reason: str, count: int, first: datetime) -> ReasonCount:
    return ReasonCount("stream", reason, count, 0, first, NAIVE_NOW)


def test_new_and_spiking_reasons_are_marked_against_the_day_before() -> None:
    day_ago = NAIVE_NOW - timedelta(hours=20)
    reasons = [
        _reason("usual", 46, day_ago),
        _reason("burst", 50, day_ago),
        _reason("fresh", 3, NAIVE_NOW - timedelta(minutes=10)),
    ]
    hourly = [("stream", "usual", age, 2) for age in range(23)]  # 2/h incl. the last hour
    hourly += [("stream", "burst", 0, 40)] + [("stream", "burst", age, 1) for age in (3, 9)]
    hourly += [("stream", "fresh", 0, 3)]
    first = {("stream", r.reason): r.first_seen for r in reasons}
    stats = build_stats(reasons, hourly, first, day_ago, NOW, 1000, {"burst": 4})
    marks = {s.reason: s.marks for s in stats}
    assert marks == {"usual": [], "burst": ["spike"], "fresh": ["new"]}
    burst = next(s for s in stats if s.reason == "burst")
    assert burst.per_hour[-1] == 40 and sum(burst.per_hour) == 42 and burst.redriven == 4
    assert burst.share == pytest.approx(0.05)
    assert [s.reason for s in stats] == ["burst", "usual", "fresh"]  # busiest first


def test_nothing_is_marked_without_older_dead_letters_to_compare_with() -> None:
    start = NAIVE_NOW - timedelta(minutes=30)
    stats = build_stats([_reason("r", 90, start)], [("stream", "r", 0, 90)],
                        {("stream", "r"): start}, start, NOW, None, {})  # fmt: skip
    assert stats[0].marks == [] and stats[0].share is None


def test_sparkline_scales_to_the_busiest_hour() -> None:
    line = sparkline([0, 1, 8, 4])
    assert len(line) == 4 and line[0] != line[1] != line[2]


def test_since_and_positions_parse_or_fail_with_a_usage_error() -> None:
    assert parse_since("90m", NOW) == NOW - timedelta(minutes=90)
    assert parse_since("2d", NOW) == NOW - timedelta(days=2)
    assert parse_since("2026-11-30T08:00:00") == datetime(2026, 11, 30, 8, tzinfo=UTC)
    with pytest.raises(ConfigError):
        parse_since("yesterday")
    assert parse_position("3:17") == (3, 17)
    assert parse_position("17") == (None, 17)
    with pytest.raises(ConfigError):
        parse_position("3:x")


def test_a_redrive_key_names_the_dead_letter_and_the_bytes() -> None:
    assert redrive_key("t:0:1", b"x") == redrive_key("t:0:1", b"x")
    assert len({redrive_key("t:0:1", b"x"), redrive_key("t:0:2", b"x"),
                redrive_key("t:0:1", b"y")}) == 3  # fmt: skip


class _NoIndex:
    def letter(self, partition: int | None, offset: int) -> list[Letter]:
        return []


def test_from_file_needs_its_ids_file_line_for_line(tmp_path: Path) -> None:
    records = tmp_path / "fix.jsonl"
    records.write_bytes(b'{"a":1}\n\n{"b":2}\n')
    with pytest.raises(ConfigError, match="not found"):
        from_file(_NoIndex(), records)  # type: ignore[arg-type]
    (tmp_path / "fix.jsonl.ids").write_text("0:1\n0:2\n")
    with pytest.raises(ConfigError, match=r"3 lines but fix\.jsonl\.ids names 2"):
        from_file(_NoIndex(), records)  # type: ignore[arg-type]
    (tmp_path / "fix.jsonl.ids").write_text("0:1\n0:2\n4:7\n")
    got = from_file(_NoIndex(), records)  # type: ignore[arg-type]
    assert [(c.partition, c.offset, c.raw, c.origin) for c in got] == [
        (0, 1, b'{"a":1}', "file"),
        (4, 7, b'{"b":2}', "file"),  # the emptied line is skipped
    ]
