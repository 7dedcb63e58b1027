"""DLQ messages → index rows: ours, old ones, foreign ones, junk; never an exception."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime

from schemas import DeadLetter, Rejection
from sinks.dead_letter_rows import COLUMNS, read_envelope, row

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _ours(raw: bytes, **extra: object) -> bytes:
    letter = DeadLetter.from_rejection(
        Rejection("invalid_status", "unknown status 'x'", raw, "t9", 4),
        topic="ns.transactions.raw",
        partition=2,
        offset=40,
    )
    return letter.model_copy(update=extra).model_dump_json().encode()


def test_our_envelope_becomes_a_row_with_its_bytes_and_source() -> None:
    raw = b'{"transaction_id":"t9","status":"x"}'
    env = read_envelope(_ours(raw, redrive_of="ns.transactions.dlq:1:3"), "ns.dlq", 5, 6)
    r = dict(zip(COLUMNS, row(env, 5, 6, 1_764_590_400_000, NOW), strict=True))
    assert r["raw"] == raw and r["raw_length"] == len(raw)
    assert r["raw_sha256"] == hashlib.sha256(raw).hexdigest()
    assert (r["stage"], r["reason"], r["transaction_id"]) == ("stream", "invalid_status", "t9")
    assert (r["source_topic"], r["source_partition"], r["source_offset"], r["source_index"]) == (
        "ns.transactions.raw", 2, 40, 4,
    )  # fmt: skip
    assert r["redrive_of"] == "ns.transactions.dlq:1:3"
    assert r["dead_at"] == datetime(2025, 12, 1, 12, 0)  # the message's timestamp, naive UTC
    assert (r["dlq_partition"], r["dlq_offset"]) == (5, 6)


def test_binary_raw_is_decoded_from_base64() -> None:
    env = read_envelope(_ours(b"\xff\x00\x1b[2J"), "ns.dlq", 0, 0)
    assert env.raw == b"\xff\x00\x1b[2J" and env.source_index == 4


def test_an_older_envelope_without_raw_length_reads_the_cut_from_its_detail() -> None:
    doc = json.loads(_ours(b"x" * 10))
    doc.pop("raw_length")
    doc.pop("redrive_of")
    doc["detail"] = "bad (raw cut to 10 of 700000 bytes)"
    env = read_envelope(json.dumps(doc).encode(), "ns.dlq", 0, 0)
    assert (env.raw_length, len(env.raw), env.redrive_of) == (700_000, 10, None)


def test_junk_on_the_dlq_topic_is_indexed_as_itself() -> None:
    bad_base64 = b'{"reason":"r","raw":"%%","raw_encoding":"base64"}'
    for value in (b"", b"\xff\xfe", b"[1,2]", b'{"reason": 5}', bad_base64, None):
        env = read_envelope(value, "ns.dlq", 3, 9)
        assert (env.reason, env.stage, env.source_topic) == (
            "unreadable_envelope",
            "unknown",
            "ns.dlq",
        )
        assert (env.source_partition, env.source_offset, env.raw) == (3, 9, value or b"")


def test_foreign_values_are_cut_to_their_columns() -> None:
    doc = {
        "reason": "ré" * 100,
        "detail": "\ud800" + "d" * 2000,
        "raw": "x",
        "source_topic": "t",
        "partition": 2**40,
        "offset": True,
        "index": -5,
        "transaction_id": "i" * 300,
        "stage": "a-very-long-stage-name",
    }
    env = read_envelope(json.dumps(doc).encode(), "ns.dlq", 0, 0)
    assert env.reason.isascii() and len(env.reason) == 128
    assert len(env.detail) == 1000 and env.detail.encode("utf-8")
    assert (env.source_partition, env.source_offset, env.source_index) == (-1, -1, -1)
    assert env.transaction_id is not None and len(env.transaction_id) == 255
    assert len(env.stage) == 16
    b64 = {"reason": "r", "raw": base64.b64encode(b"\x00").decode(), "raw_encoding": "base64"}
    assert read_envelope(json.dumps(b64).encode(), "d", 0, 0).raw == b"\x00"
