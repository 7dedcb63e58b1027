"""``txnpipe dlq export``: the raw records of dead letters, one per line, exactly as received.

``FILE.jsonl`` holds the bytes of each record as the stream received them, one per line, in
the raw topic's order; ``FILE.jsonl.ids`` names, line for line, the dead letter each comes
from (``PARTITION:OFFSET`` in the DLQ), so that ``dlq redrive --from-file`` can say where a
corrected copy comes from. A record that cannot be one line of a text file exactly as
received (not UTF-8, holding a line break, cut in the DLQ) is left out and named.
Both files are written next to their final names and renamed into place at the end.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sinks.dead_letter_queries import DeadLetterIndex
from txnpipe.redrive import IDS_SUFFIX


@dataclass
class ExportResult:
    path: Path
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    skipped_names: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [
            f"export: {self.written:,} records to {self.path} "
            f"(their dead letters, line for line, in {self.path.name}{IDS_SUFFIX})"
        ]
        for why, count in sorted(self.skipped.items()):
            lines.append(f"  left out: {count:,} {why}")
        if self.skipped_names:
            shown = ", ".join(self.skipped_names[:10])
            more = "" if len(self.skipped_names) <= 10 else ", …"
            lines.append(f"  (see `txnpipe dlq show P:O` for {shown}{more})")
        return "\n".join(lines)


def _unfit(raw: bytes, complete: bool) -> str | None:
    if not complete:
        return "cut in the DLQ (longer than 256 KiB)"
    if b"\n" in raw or b"\r" in raw:
        return "holding a line break"
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return "not UTF-8"
    return None


def export(
    index: DeadLetterIndex, raw_topic: str, reason: str, since: datetime | None, out: Path
) -> ExportResult:
    """Write the records of the stream's dead letters with ``reason`` (and ``since``)."""
    result = ExportResult(out)
    ids = out.with_name(out.name + IDS_SUFFIX)
    tmp_out = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp_ids = out.with_name(f".{ids.name}.{os.getpid()}.tmp")
    try:
        with tmp_out.open("wb") as records, tmp_ids.open("w", encoding="utf-8") as names:
            for letter in index.in_source_order(
                source_topic=raw_topic, reason=reason, since=since, originals_only=True
            ):
                why = _unfit(letter.raw, letter.complete)
                if why is not None:
                    result.skipped[why] += 1
                    result.skipped_names.append(f"{letter.partition}:{letter.offset}")
                    continue
                records.write(letter.raw + b"\n")
                names.write(f"{letter.partition}:{letter.offset}\n")
                result.written += 1
        os.replace(tmp_out, out)
        os.replace(tmp_ids, ids)
    finally:
        for tmp in (tmp_out, tmp_ids):
            tmp.unlink(missing_ok=True)
    return result
