"""``txnpipe dlq redrive``: dead letters back onto the raw topic, exactly once in effect.

Per chunk of the selection (in the raw topic's order, so a transaction's records keep
theirs): decide what the stream will do with each record — the same cleaning and rules,
against the current versions it holds in Redis — then publish (``producers.redrive``),
and only once the broker has acknowledged the chunk, journal it in MySQL
(``dead_letter_redrives``, keyed by the dead letter and the bytes sent). So:

- the same selection redriven again publishes nothing (each key is journaled);
- a redrive killed between the acks and the journal publishes that chunk again when run
  again: valid records are then duplicates the stream drops (``(transaction_id,
  updated_at)``), still-invalid ones come back to the DLQ with the same ``redrive_of``
  and bytes, which the index holds once (``uq_dead_redrive``). No answer changes.

Dead letters that came back from a redrive (``redrive_of``) are never selected: nothing
loops. ``--again`` ignores the journal (after a change of rules, say); what is still
invalid still comes back once.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from common.errors import ConfigError
from common.settings import Settings
from producers.redrive import Outgoing, RedrivePublisher, route
from schemas import Accepted, parse_message
from schemas.deadletter import letter_name
from schemas.rules import Rules, enabled
from sinks.dead_letter_queries import DeadLetterIndex

CHUNK = 500
IDS_SUFFIX = ".ids"


@dataclass(frozen=True)
class Candidate:
    """A record to put back: the dead letter it comes from and the bytes to send."""

    partition: int
    offset: int
    origin: str  # "topic": as received; "file": a copy from --from-file
    raw: bytes
    element: bool  # it was one record of a batch message


@dataclass
class RedriveReport:
    """What a redrive did (or, with --dry-run, would do)."""

    run_id: str
    dry_run: bool
    selected: int = 0  # dead letters (or file lines) considered
    published: int = 0  # records sent (a split batch sends several)
    already: int = 0  # records skipped: redriven before
    skipped: Counter[str] = field(default_factory=Counter)  # why dead letters were left out
    expected: Counter[str] = field(default_factory=Counter)  # new, duplicate, stale, invalid
    invalid: Counter[str] = field(default_factory=Counter)  # still-invalid records by reason
    stale: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "selected": self.selected,
            "published": self.published,
            "already_redriven": self.already,
            "skipped": dict(self.skipped),
            "expected": {k: self.expected.get(k, 0) for k in EXPECTED},
            "still_invalid_by_reason": dict(sorted(self.invalid.items())),
            "stale": self.stale,
        }


EXPECTED = ("new", "duplicate", "stale", "invalid", "unknown")


def redrive_key(letter: str, record: bytes) -> str:
    """The journal's key: this dead letter sent with these bytes."""
    return hashlib.sha256(letter.encode("utf-8") + b"\n" + record).hexdigest()


def parse_position(text: str) -> tuple[int | None, int]:
    """``P:O`` (or a bare ``O``) → (partition, offset); ConfigError when neither."""
    head, sep, tail = text.strip().partition(":")
    if sep and head.isdigit() and tail.isdigit():
        return int(head), int(tail)
    if not sep and head.isdigit():
        return None, int(head)
    raise ConfigError(f"{text!r} is not a dead letter's PARTITION:OFFSET (e.g. 3:17)")


def from_index(
    index: DeadLetterIndex,
    raw_topic: str,
    *,
    reason: str | None,
    since: datetime | None,
    report: RedriveReport,
) -> Iterator[Candidate]:
    """The selection's records as received; those that cannot go back are counted."""
    other = index.count_other_stages(source_topic=raw_topic, reason=reason, since=since)
    if other:
        report.skipped["not from the raw topic (sink stage): fix and `txnpipe replay`"] += other
    for letter in index.in_source_order(
        source_topic=raw_topic, reason=reason, since=since, originals_only=False
    ):
        if letter.redrive_of is not None:
            report.skipped["came back from a redrive (never redriven again)"] += 1
        elif not letter.complete:
            report.skipped["cut in the DLQ (longer than 256 KiB): fix upstream"] += 1
        else:
            yield Candidate(
                letter.partition,
                letter.offset,
                "topic",
                letter.raw,
                letter.source_index is not None,
            )


def from_file(index: DeadLetterIndex, path: Path) -> list[Candidate]:
    """Corrected copies: ``path`` (one record per line) and ``path.ids`` (their dead letters)."""
    ids_path = path.with_name(path.name + IDS_SUFFIX)
    try:
        lines = path.read_bytes().split(b"\n")
        names = ids_path.read_text("utf-8").split("\n")
    except FileNotFoundError as exc:
        raise ConfigError(
            f"{exc.filename}: not found; --from-file takes a file written by `dlq export` "
            f"(with its {IDS_SUFFIX} file naming each line's dead letter)"
        ) from None
    if lines and lines[-1] == b"":
        lines.pop()
    if names and names[-1] == "":
        names.pop()
    if len(lines) != len(names):
        raise ConfigError(
            f"{path} has {len(lines)} lines but {ids_path.name} names {len(names)} dead letters: "
            "correct records in place, one per line (an emptied line is skipped)"
        )
    out: list[Candidate] = []
    for line, name in zip(lines, names, strict=True):
        partition, offset = parse_position(name)
        if partition is None or not line.strip():
            continue
        known = index.letter(partition, offset)
        element = known[0].source_index is not None if known else False
        out.append(Candidate(partition, offset, "file", line.rstrip(b"\r"), element))
    return out


class Redriver:
    """Runs one redrive: decide, publish, journal, chunk by chunk."""

    def __init__(
        self,
        settings: Settings,
        index: DeadLetterIndex,
        *,
        dry_run: bool = False,
        again: bool = False,
        chunk: int = CHUNK,
        publisher: RedrivePublisher | None = None,
        current: Callable[[dict[int, list[str]]], dict[str, datetime]] | None = None,
    ) -> None:
        self.settings = settings
        self.index = index
        self.dlq_topic = settings.topic("transactions.dlq")
        self.raw_topic = settings.topic("transactions.raw")
        self.rules: Rules = enabled(settings.cleaning_rules)
        self.dry_run = dry_run
        self.again = again
        self.chunk = max(1, chunk)
        self.publisher = publisher or RedrivePublisher(settings)
        self._current = current or self._redis_current
        self._seen: dict[str, datetime] = {}  # versions this run makes current
        self.report = RedriveReport(uuid.uuid4().hex, dry_run)

    def _redis_current(self, ids: dict[int, list[str]]) -> dict[str, datetime]:
        from stream_app.current import current_updated_at

        return current_updated_at(self.settings, ids)

    def run(
        self,
        candidates: Iterable[Candidate],
        *,
        progress: Callable[[RedriveReport], None] = lambda r: None,
        after_publish: Callable[[int], None] = lambda n: None,
        stop: Callable[[], bool] = lambda: False,
    ) -> RedriveReport:
        """Redrive ``candidates``; ``after_publish(chunk number)`` runs between the broker's
        acks and the journal (where a crash hurts most: the tests kill the process there).
        ``stop()`` is asked between chunks (SIGTERM, Ctrl-C): what is done stays done."""
        batch: list[Candidate] = []
        chunks = 0
        for candidate in candidates:
            if stop():
                return self.report
            batch.append(candidate)
            if len(batch) >= self.chunk:
                chunks += 1
                self._chunk(batch, chunks, after_publish)
                progress(self.report)
                batch = []
        if batch and not stop():
            chunks += 1
            self._chunk(batch, chunks, after_publish)
            progress(self.report)
        return self.report

    def _chunk(
        self, batch: list[Candidate], number: int, after_publish: Callable[[int], None]
    ) -> None:
        report = self.report
        report.selected += len(batch)
        sends: list[tuple[Candidate, Outgoing, str]] = []
        for c in batch:
            name = letter_name(self.dlq_topic, c.partition, c.offset)
            for out in route(c.raw, name, self.publisher.partitions, element=c.element):
                sends.append((c, out, redrive_key(name, out.record)))
        if not self.again:
            done = self.index.journaled([key for _, _, key in sends])
            report.already += sum(1 for _, _, key in sends if key in done)
            sends = [s for s in sends if s[2] not in done]
        if not sends:
            return
        expected = self._expect([out for _, out, _ in sends])
        if self.dry_run:  # decided and counted; nothing published, nothing journaled
            report.published += len(sends)
            return
        placed = self.publisher.publish([out for _, out, _ in sends])
        after_publish(number)
        self.index.record(
            [
                (
                    key,
                    c.partition,
                    c.offset,
                    c.origin,
                    hashlib.sha256(out.record).hexdigest(),
                    outcome,
                    report.run_id,
                    partition,
                    offset,
                )
                for (c, out, key), outcome, (partition, offset) in zip(
                    sends, expected, placed, strict=True
                )
            ]
        )
        report.published += len(sends)

    def _expect(self, outs: list[Outgoing]) -> list[str]:
        """What the stream will do with each record: new, duplicate, stale or invalid."""
        parsed = [parse_message(out.value, self.rules) for out in outs]
        wanted: dict[int, list[str]] = {}
        for out, results in zip(outs, parsed, strict=True):
            for r in results:
                if isinstance(r, Accepted):
                    wanted.setdefault(out.partition, []).append(r.transaction.transaction_id)
        try:
            current = self._current(wanted) if wanted else {}
        except Exception:  # no Redis: say so rather than guess
            current = None
        outcomes: list[str] = []
        for out, results in zip(outs, parsed, strict=True):
            result = results[0]  # one record per message (route() makes it so)
            if not isinstance(result, Accepted):
                outcome = "invalid"
                self.report.invalid[result.reason] += 1
            elif current is None:
                outcome = "unknown"
            else:
                txn = result.transaction
                tid = txn.transaction_id
                known = self._seen.get(tid, current.get(tid))
                if known is None or txn.updated_at > known:
                    outcome = "new"
                    self._seen[tid] = txn.updated_at
                elif txn.updated_at == known:
                    outcome = "duplicate"
                else:
                    outcome = "stale"
                    self.report.stale.append(
                        {
                            "dead_letter": out.letter,
                            "transaction_id": tid,
                            "updated_at": txn.updated_at.isoformat(),
                            "current_updated_at": known.isoformat(),
                        }
                    )
            self.report.expected[outcome] += 1
            outcomes.append(outcome)
        return outcomes
