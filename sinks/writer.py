"""``LedgerWriter``: one MySQL transaction per batch, together with the offsets it covers.

Per batch, in one transaction:

1. fence: ``SELECT ... FOR UPDATE`` the stored offsets of the batch's partitions; they must be
   where this sink left them (another sink that took a partition over, or our own COMMIT
   that succeeded although the connection died before the reply, shows up here);
2. units (a version + its entries): ledger rows and version rows (``LOAD DATA ... IGNORE``:
   a redelivered row is skipped by its unique key), then ``transactions`` set to each
   transaction's newest version (``LOAD DATA ... REPLACE`` if its status counts, a
   ``DELETE`` if not; only versions that are the newest the audit trail knows get there,
   so it never regresses to an older ``updated_at``). Without LOAD DATA (a single unit, or
   ``local_infile=OFF``): multi-row ``INSERT ... ON DUPLICATE KEY UPDATE``, guarded;
3. orphan entries into ``sink_pending_entries``;
4. the next offsets; dead letters are flushed to the DLQ topic before COMMIT.

A statement the database refuses for a data reason is retried on halves of the batch
inside savepoints until the refused unit is alone; it becomes a dead letter and the rest
commits. Transient errors (connection lost or killed, deadlock, gone away) propagate to
the caller, which rolls back, reconnects and retries the whole batch.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, TypeVar

from mysql.connector.errors import DataError
from mysql.connector.errors import Error as MySQLError

from common.errors import TxnpipeError
from common.settings import Settings
from schemas import LEDGER_ADAPTER, DeadLetter, LedgerEntry, VersionRecord
from sinks import db, partitions, schema
from sinks.batch import (
    CURRENT_COLUMNS,
    LEDGER_COLUMNS,
    VERSION_COLUMNS,
    BatchPlan,
    Received,
    Unit,
    current_row,
    dead_letter,
    latest_units,
    naive_utc,
    raw_positions,
    version_row,
)
from sinks.batch import ledger_row as _ledger_row
from sinks.dialect import Dialect

log = logging.getLogger(__name__)

T = TypeVar("T")
OFFSET_BEGINNING = -2  # librdkafka's OFFSET_BEGINNING: nothing stored yet
ROWS_PER_STATEMENT = 2000


INFILE_PREFIX = "txnpipe-sink-"


def _remove_orphaned_dirs(base: str) -> None:
    """Remove LOAD DATA directories left by sink processes that no longer exist (kill -9)."""
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        if not name.startswith(INFILE_PREFIX):
            continue
        pid = name[len(INFILE_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _marks(n: int) -> str:
    return ",".join(["%s"] * n)


class FencedError(TxnpipeError):
    """The stored offsets moved under us: another sink owns (or owned) these partitions."""

    retriable = True

    def __init__(self, stored: dict[int, int]) -> None:
        super().__init__(f"stored offsets moved to {stored}; re-seeking")
        self.stored = stored


@dataclass
class BatchResult:
    """What a batch wrote (``already`` = an earlier attempt had committed it)."""

    units: int = 0
    entries: int = 0
    orphans: int = 0
    dead: list[DeadLetter] = field(default_factory=list)
    already: bool = False
    seconds: float = 0.0


class LedgerWriter:
    """Writes ``BatchPlan``s exactly once; owns one MySQL connection."""

    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        topic: str,
        dlq_topic: str,
        send_dead: Callable[[list[DeadLetter]], None],
        clock: Callable[[], datetime],
        bulk: bool = True,
    ) -> None:
        self.settings = settings
        # ``transactions`` holds the newest version when its status counts *by these
        # settings* (CONTRACT §2, configurable): after a change of rules, `txnpipe replay`
        # re-applies every version and the table follows. The audit trail keeps the
        # stream app's ``counted`` as it was decided.
        self.counted = settings.counted
        self.group = group
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.send_dead = send_dead
        self.clock = clock
        self.conn: Any = None
        self.dialect: Dialect | None = None
        self.keeper = partitions.PartitionKeeper(
            schema.LEDGER,
            ahead=schema.MONTHS_AHEAD,
            lock_name=f"txnpipe.sink.partitions.{settings.mysql_database}",
        )
        self._savepoints = 0
        # LOAD DATA LOCAL INFILE for ledger and version rows (faster than multi-row INSERT
        # here, see README); files live in a private directory, the only one allowed.
        self.bulk = bulk
        self._infile_dir: str | None = None
        # entry ids waiting in sink_pending_entries (small); None = read it again
        self._pending_ids: set[str] | None = None

    # -- connection and start-up -------------------------------------------------------

    def today(self) -> date:
        return self.clock().date()

    def connect(self) -> Any:
        """(Re)connect; on the first connection create the database, migrate and add partitions."""
        if self.conn is not None:
            return self.conn
        if self.dialect is None:
            db.ensure_database(self.settings)
        if self.bulk and self._infile_dir is None:
            base = "/dev/shm" if os.path.isdir("/dev/shm") else None
            _remove_orphaned_dirs(base or tempfile.gettempdir())
            self._infile_dir = tempfile.mkdtemp(prefix=f"{INFILE_PREFIX}{os.getpid()}-", dir=base)
        conn = db.connect(self.settings, infile_dir=self._infile_dir if self.bulk else None)
        if self.dialect is None:
            self.dialect = db.dialect_of(conn)
            if self.bulk and not db.local_infile_enabled(conn):
                log.info("sink: the server has local_infile=OFF; writing with multi-row INSERT")
                self.bulk = False
            log.info(
                "sink: MySQL is %s (%s)",
                self.dialect.describe(),
                "LOAD DATA LOCAL INFILE" if self.bulk else "multi-row INSERT",
            )
            schema.migrate(conn, self.today())
            self.keeper.ensure(conn, [], self.today())
            conn.commit()
        self.conn = conn
        return conn

    def reset(self) -> None:
        """Forget the connection after an error (the next call reconnects)."""
        conn, self.conn = self.conn, None
        self._pending_ids = None
        if conn is not None:
            try:
                conn.rollback()
            except Exception:
                log.debug("rollback on a broken connection failed", exc_info=True)
            db.close_quietly(conn)

    def close(self) -> None:
        self.reset()
        if self._infile_dir is not None:
            shutil.rmtree(self._infile_dir, ignore_errors=True)
            self._infile_dir = None

    def upkeep(self, months: Iterable[partitions.Month] = ()) -> int:
        """Make sure partitions exist ahead of the clock and for ``months``; rows in pmax."""
        conn = self.connect()
        stray = self.keeper.ensure(conn, months, self.today())
        conn.commit()
        return stray

    def load_offsets(self, partitions_: Sequence[int]) -> dict[int, int]:
        """Stored next offsets of ``partitions_`` (creating ``OFFSET_BEGINNING`` rows if new)."""
        conn = self.connect()
        cur = conn.cursor()
        rows = [(self.group, self.topic, p, OFFSET_BEGINNING) for p in partitions_]
        if rows:
            self._insert(
                cur,
                schema.OFFSETS,
                ("consumer_group", "topic", "kafka_partition", "next_offset"),
                rows,
                "ON DUPLICATE KEY UPDATE next_offset = next_offset",
            )
        stored = self._read_offsets(cur, partitions_, lock=False)
        cur.close()
        conn.commit()
        self._pending_ids = None  # newly assigned partitions may have entries waiting
        return stored

    # -- one batch -----------------------------------------------------------------------

    def write(self, plan: BatchPlan, expected: dict[int, int]) -> BatchResult:
        """Write ``plan`` and move the offsets from ``expected`` to ``plan.next_offsets``."""
        started = time.monotonic()
        conn = self.connect()
        result = BatchResult(dead=list(plan.invalid))
        if self._pending_ids is None:
            self._pending_ids = self._read_pending_ids(conn)
        waiting = self._pending_ids
        units = list(plan.units)
        need = [i for u in units for i in u.missing]
        pending = self._load_pending(conn, need) if need else {}
        months = {
            partitions.month_of(e.message.transaction_date)
            for u in units
            for e in u.entries
            if isinstance(e.message, LedgerEntry)
        } | {
            partitions.month_of(e.message.transaction_date)
            for e in pending.values()
            if isinstance(e.message, LedgerEntry)
        }
        if self.keeper.needs_work(months, self.today()):
            self.keeper.ensure(conn, months, self.today())
        conn.commit()  # end the read view of the look-ups; the batch starts afresh
        cur = conn.cursor()
        cur.execute("START TRANSACTION")
        partitions_ = sorted(plan.next_offsets)
        stored = self._read_offsets(cur, partitions_, lock=True)
        if any(stored.get(p) != expected.get(p) for p in partitions_):
            conn.rollback()
            cur.close()
            if all(stored.get(p) == plan.next_offsets[p] for p in partitions_):
                result.already = True
                return result
            raise FencedError(stored)
        units, resolved = self._complete(cur, units, pending, waiting, result)
        self._bisect(cur, units, self._write_units, lambda u, e: self._dead_unit(u, e, result))
        orphans = self._live_orphans(cur, plan.orphans)
        self._bisect(
            cur, orphans, self._write_orphans, lambda o, e: self._dead_items([o], e, result)
        )
        positions = raw_positions(units)
        if positions:
            self._insert(
                cur,
                schema.RAW_POSITIONS,
                ("raw_partition", "last_source_offset"),
                sorted(positions.items()),
                "ON DUPLICATE KEY UPDATE last_source_offset = GREATEST(last_source_offset, "
                f"{self._incoming('last_source_offset')}), updated_at = CURRENT_TIMESTAMP(6)",
            )
        if partitions_:
            self._insert(
                cur,
                schema.OFFSETS,
                ("consumer_group", "topic", "kafka_partition", "next_offset"),
                [(self.group, self.topic, p, plan.next_offsets[p]) for p in partitions_],
                f"ON DUPLICATE KEY UPDATE next_offset = {self._incoming('next_offset')}, "
                "updated_at = CURRENT_TIMESTAMP(6)",
            )
        if result.dead:
            self.send_dead(
                result.dead
            )  # durable before COMMIT: a crash now repeats them, never loses
        conn.commit()
        cur.close()
        waiting.difference_update(resolved)
        waiting.update(o.message.entry_id for o in orphans if isinstance(o.message, LedgerEntry))
        result.units = len(units)
        result.entries = sum(len(u.entries) for u in units)
        result.orphans = len(orphans)
        result.seconds = time.monotonic() - started
        return result

    # -- pieces --------------------------------------------------------------------------

    def _incoming(self, column: str) -> str:
        assert self.dialect is not None
        return self.dialect.incoming(column)

    def _read_offsets(self, cur: Any, partitions_: Sequence[int], *, lock: bool) -> dict[int, int]:
        if not partitions_:
            return {}
        marks = ",".join(["%s"] * len(partitions_))
        cur.execute(
            f"SELECT kafka_partition, next_offset FROM {schema.OFFSETS} "
            f"WHERE consumer_group = %s AND topic = %s AND kafka_partition IN ({marks})"
            + (" FOR UPDATE" if lock else ""),
            (self.group, self.topic, *partitions_),
        )
        return {int(p): int(o) for p, o in cur.fetchall()}

    def _insert(
        self, cur: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str
    ) -> int:
        """Multi-row INSERT, ``ROWS_PER_STATEMENT`` rows a statement; returns affected rows.

        Values are escaped by the C extension (``prepare_for_mysql``) and joined as bytes:
        the connector's own ``%s`` substitution costs a Python call per value.
        """
        if not rows:
            return 0
        assert self.dialect is not None
        head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ".encode()
        suffix = f"{self.dialect.insert_suffix()} {tail}".encode()
        prepare = db.escaper(self.conn)
        affected = 0
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            chunk = rows[start : start + ROWS_PER_STATEMENT]
            values = b",".join(b"(" + b",".join(prepare(row)) + b")" for row in chunk)
            cur.execute(head + values + suffix)
            affected += max(cur.rowcount, 0)
        return affected

    def _load(
        self,
        cur: Any,
        table: str,
        columns: Sequence[str],
        lines: list[str],
        *,
        replace: bool = False,
    ) -> int:
        """``LOAD DATA LOCAL INFILE ... IGNORE|REPLACE``; returns the affected rows.

        LOCAL turns data errors into warnings; every warning beyond one per skipped
        duplicate (IGNORE) is raised as an error so that the batch is bisected, never
        truncated. With IGNORE the count is the rows inserted (duplicates skipped).
        """
        if not lines:
            return 0
        assert self._infile_dir is not None
        path = os.path.join(self._infile_dir, f"{table}.tsv")
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write("".join(lines))
        try:
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{path}' {'REPLACE' if replace else 'IGNORE'} "
                f"INTO TABLE {table} "
                f"CHARACTER SET utf8mb4 ({', '.join(columns)})"
            )
        finally:
            os.unlink(path)  # /dev/shm is memory: nothing stays behind, even after kill -9
        inserted = max(int(cur.rowcount), 0)
        warnings = int(cur.warning_count or 0)
        if warnings > (0 if replace else len(lines) - inserted):
            cur.execute("SHOW WARNINGS LIMIT 20")
            found = [
                (int(code), str(text)) for _, code, text in cur.fetchall() if int(code) != 1062
            ]
            code, text = found[0] if found else (1265, "data truncated")
            raise DataError(msg=f"LOAD DATA into {table}: {text}", errno=code)
        return inserted

    def _load_pending(self, conn: Any, entry_ids: Sequence[str]) -> dict[str, Received]:
        cur = conn.cursor()
        found: dict[str, Received] = {}
        for start in range(0, len(entry_ids), ROWS_PER_STATEMENT):
            chunk = entry_ids[start : start + ROWS_PER_STATEMENT]
            cur.execute(
                f"SELECT entry_id, payload, ledger_partition, ledger_offset FROM {schema.PENDING} "
                f"WHERE entry_id IN ({','.join(['%s'] * len(chunk))})",
                tuple(chunk),
            )
            for entry_id, payload, partition, offset in cur.fetchall():
                raw = payload.encode() if isinstance(payload, str) else bytes(payload)
                found[str(entry_id)] = Received(
                    int(partition), int(offset), None, raw, LEDGER_ADAPTER.validate_json(raw)
                )
        cur.close()
        return found

    def _existing_versions(
        self, cur: Any, keys: Sequence[tuple[str, datetime]]
    ) -> set[tuple[str, datetime]]:
        if not keys:
            return set()
        marks = ",".join(["(%s,%s)"] * len(keys))
        flat = [x for t, u in keys for x in (t, naive_utc(u))]
        cur.execute(
            f"SELECT transaction_id, updated_at FROM {schema.VERSIONS} "
            f"WHERE (transaction_id, updated_at) IN ({marks})",
            tuple(flat),
        )
        return {(str(t), u) for t, u in cur.fetchall()}

    def _read_pending_ids(self, conn: Any) -> set[str]:
        cur = conn.cursor()
        cur.execute(f"SELECT entry_id FROM {schema.PENDING}")
        ids = {str(row[0]) for row in cur.fetchall()}
        cur.close()
        return ids

    def _complete(
        self,
        cur: Any,
        units: list[Unit],
        pending: dict[str, Received],
        waiting: set[str],
        result: BatchResult,
    ) -> tuple[list[Unit], list[str]]:
        """Attach pending entries; a version still lacking some is a duplicate or a dead letter.

        Pending copies of entries that this batch also carries (a re-publication) are
        deleted too; returns the units to write and the pending entry ids deleted.
        """
        out: list[Unit] = []
        resolved: list[str] = []
        incomplete: list[Unit] = []
        for unit in units:
            if waiting:
                resolved.extend(
                    i for i in unit.record.entry_ids if i in waiting and i not in pending
                )
            if not unit.missing:
                out.append(unit)
                continue
            found = [pending[i] for i in unit.missing if i in pending]
            resolved.extend(i for i in unit.missing if i in pending)
            unit = Unit(
                unit.version,
                (*unit.entries, *found),
                tuple(i for i in unit.missing if i not in pending),
            )
            (incomplete if unit.missing else out).append(unit)
        if resolved:
            for start in range(0, len(resolved), ROWS_PER_STATEMENT):
                chunk = resolved[start : start + ROWS_PER_STATEMENT]
                cur.execute(
                    f"DELETE FROM {schema.PENDING} WHERE entry_id IN ({_marks(len(chunk))})",
                    tuple(chunk),
                )
        if incomplete:
            known = self._existing_versions(
                cur, [(u.record.transaction_id, u.record.updated_at) for u in incomplete]
            )
            for unit in incomplete:
                key = (unit.record.transaction_id, naive_utc(unit.record.updated_at))
                if key in known:
                    continue  # a redelivered copy of a version already written with its entries
                log.error(
                    "version transaction_id=%s updated_at=%s lacks entries %s: dead letter",
                    unit.record.transaction_id,
                    unit.record.updated_at.isoformat(),
                    unit.missing,
                )
                result.dead.extend(
                    dead_letter(
                        self.topic,
                        item,
                        "missing_entries",
                        f"entries {','.join(unit.missing)} never arrived before their version",
                    )
                    for item in unit.messages()
                )
        return out, resolved

    def _live_orphans(self, cur: Any, orphans: list[Received]) -> list[Received]:
        """Orphans whose version is already stored are late duplicates: drop them."""
        if not orphans:
            return []
        keys = [
            (o.message.transaction_id, o.message.version_updated_at)
            for o in orphans
            if isinstance(o.message, LedgerEntry)
        ]
        known = self._existing_versions(cur, keys)
        return [
            o
            for o in orphans
            if isinstance(o.message, LedgerEntry)
            and (o.message.transaction_id, naive_utc(o.message.version_updated_at)) not in known
        ]

    def _bisect(
        self,
        cur: Any,
        items: list[T],
        write: Callable[[Any, list[T]], None],
        refuse: Callable[[T, MySQLError], None],
    ) -> None:
        """``write(items)``; on a permanent SQL error, halves in savepoints down to one item."""
        if not items:
            return
        self._savepoints += 1
        name = f"sp{self._savepoints}"
        cur.execute(f"SAVEPOINT {name}")
        try:
            write(cur, items)
        except MySQLError as exc:
            if db.is_transient(exc, self.conn):
                raise
            cur.execute(f"ROLLBACK TO SAVEPOINT {name}")
            if len(items) == 1:
                refuse(items[0], exc)
                return
            middle = len(items) // 2
            self._bisect(cur, items[:middle], write, refuse)
            self._bisect(cur, items[middle:], write, refuse)
            return
        cur.execute(f"RELEASE SAVEPOINT {name}")

    def _dead_unit(self, unit: Unit, exc: MySQLError, result: BatchResult) -> None:
        self._dead_items(list(unit.messages()), exc, result)

    def _dead_items(self, items: list[Received], exc: MySQLError, result: BatchResult) -> None:
        detail = f"MySQL error {getattr(exc, 'errno', '?')}: {getattr(exc, 'msg', str(exc))}"[:1000]
        log.warning(
            "sink: the database refused %d message(s) at partition=%d offset=%d (%s): dead letter",
            len(items),
            items[-1].partition,
            items[-1].offset,
            detail,
        )
        result.dead.extend(dead_letter(self.topic, item, "db_rejected", detail) for item in items)

    def _write_units(self, cur: Any, units: list[Unit]) -> None:
        if self.bulk and len(units) > 1:
            # One unit alone (the end of a bisection) takes the INSERT path: its error is the
            # strict-mode error itself rather than a LOAD DATA warning. Lines sorted are in
            # primary-key order (each starts with its key): InnoDB fills leaf pages in turn
            # instead of jumping between random ones (entry ids are hashes).
            ledger_lines: list[str] = []
            version_lines: list[str] = []
            for unit in units:
                entry_lines, version_line = unit.lines()
                ledger_lines.extend(entry_lines)
                version_lines.append(version_line)
            ledger_lines.sort()
            version_lines.sort()
            self._load(cur, schema.LEDGER, LEDGER_COLUMNS, ledger_lines)
            inserted = self._load(cur, schema.VERSIONS, VERSION_COLUMNS, version_lines)
        else:
            entries = [_ledger_row(e) for u in units for e in u.entries]
            self._insert(
                cur,
                schema.LEDGER,
                LEDGER_COLUMNS,
                entries,
                "ON DUPLICATE KEY UPDATE entry_id = entry_id",
            )
            inserted = self._insert(
                cur,
                schema.VERSIONS,
                VERSION_COLUMNS,
                [version_row(u.version) for u in units],
                "ON DUPLICATE KEY UPDATE transaction_id = transaction_id",
            )
        latest = latest_units(units)
        if inserted != len(units):
            # Some versions were already stored (redelivery): show only those that are the
            # newest the audit trail knows, so a stale copy can never win.
            latest = self._newest_only(cur, latest)
        if self.bulk and len(units) > 1:
            self._replace_current(cur, list(latest.values()))
        else:
            self._apply_current(cur, [u.record for u in latest.values()])

    def _replace_current(self, cur: Any, latest: list[Unit]) -> None:
        """``transactions`` := the newest versions: LOAD DATA REPLACE, then delete the gone.

        Safe without an ``updated_at`` guard: ``latest`` holds only versions that are the
        newest the audit trail knows (all new, or checked by ``_newest_only``), and no other
        sink writes these transactions meanwhile (their partitions' offset rows are locked
        by this transaction since its first statement).
        """
        counted = sorted(u.current() for u in latest if u.record.status in self.counted)
        self._load(cur, schema.CURRENT, CURRENT_COLUMNS, counted, replace=True)
        gone = [u.record.transaction_id for u in latest if u.record.status not in self.counted]
        for start in range(0, len(gone), ROWS_PER_STATEMENT):
            chunk = gone[start : start + ROWS_PER_STATEMENT]
            cur.execute(
                f"DELETE FROM {schema.CURRENT} WHERE transaction_id IN ({_marks(len(chunk))})",
                tuple(chunk),
            )

    def _newest_only(self, cur: Any, latest: dict[str, Unit]) -> dict[str, Unit]:
        ids = list(latest)
        newest: dict[str, datetime] = {}
        for start in range(0, len(ids), ROWS_PER_STATEMENT):
            chunk = ids[start : start + ROWS_PER_STATEMENT]
            cur.execute(
                f"SELECT transaction_id, MAX(updated_at) FROM {schema.VERSIONS} "
                f"WHERE transaction_id IN ({_marks(len(chunk))}) GROUP BY transaction_id",
                tuple(chunk),
            )
            newest.update({str(t): u for t, u in cur.fetchall()})
        return {t: u for t, u in latest.items() if newest.get(t) == naive_utc(u.record.updated_at)}

    def _apply_current(self, cur: Any, versions: list[VersionRecord]) -> None:
        counted = sorted(
            (v for v in versions if v.status in self.counted), key=lambda v: v.transaction_id
        )
        gone = [v for v in versions if v.status not in self.counted]
        if counted:
            inc = self._incoming
            # Guarded upsert: an older updated_at never overwrites a newer row; updated_at last.
            sets = ", ".join(
                f"{c} = IF({inc('updated_at')} >= updated_at, {inc(c)}, {c})"
                for c in CURRENT_COLUMNS
                if c not in ("transaction_id", "updated_at")
            )
            sets += f", updated_at = GREATEST(updated_at, {inc('updated_at')})"
            self._insert(
                cur,
                schema.CURRENT,
                CURRENT_COLUMNS,
                [current_row(v) for v in counted],
                f"ON DUPLICATE KEY UPDATE {sets}",
            )
        for start in range(0, len(gone), ROWS_PER_STATEMENT):
            chunk = gone[start : start + ROWS_PER_STATEMENT]
            derived = " UNION ALL ".join(["SELECT %s AS id, %s AS upto"] * len(chunk))
            flat = [x for v in chunk for x in (v.transaction_id, naive_utc(v.updated_at))]
            cur.execute(
                f"DELETE t FROM {schema.CURRENT} t JOIN ({derived}) d "
                "ON t.transaction_id = d.id AND t.updated_at <= d.upto",
                tuple(flat),
            )

    def _write_orphans(self, cur: Any, orphans: list[Received]) -> None:
        rows = []
        for o in orphans:
            e = o.message
            assert isinstance(e, LedgerEntry)
            rows.append(
                (
                    e.entry_id,
                    e.transaction_id,
                    naive_utc(e.version_updated_at),
                    o.raw.decode("utf-8"),
                    o.partition,
                    o.offset,
                )
            )
        self._insert(
            cur,
            schema.PENDING,
            (
                "entry_id",
                "transaction_id",
                "version_updated_at",
                "payload",
                "ledger_partition",
                "ledger_offset",
            ),
            rows,
            "ON DUPLICATE KEY UPDATE entry_id = entry_id",
        )
