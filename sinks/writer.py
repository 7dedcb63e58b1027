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

This module is the order of the steps; each step's SQL lives with its role: the fence and
the offsets in ``offsets``, pending entries in ``pending``, ``transactions`` in
``current``, the bisection in ``bisection``, INSERT and LOAD DATA in ``statements``.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from mysql.connector.errors import Error as MySQLError

from common.settings import Settings
from schemas import DeadLetter, LedgerEntry
from sinks import db, offsets, partitions, pending, schema
from sinks.batch import (
    LEDGER_COLUMNS,
    VERSION_COLUMNS,
    BatchPlan,
    Received,
    Unit,
    latest_units,
    raw_positions,
    version_row,
)
from sinks.batch import ledger_row as _ledger_row
from sinks.bisection import SavepointBisector, refused
from sinks.current import apply_current, newest_only, replace_current
from sinks.dialect import Dialect
from sinks.offsets import FencedError
from sinks.statements import Statements, make_infile_dir

__all__ = ["BatchResult", "FencedError", "LedgerWriter"]

log = logging.getLogger(__name__)


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
        # set once migrations and partitions are in place: a connection lost half-way
        # through them (killed, or the server restarted) must run them again
        self._migrated = False
        self._sql: Statements | None = None
        self.keeper = partitions.PartitionKeeper(
            schema.LEDGER,
            ahead=schema.MONTHS_AHEAD,
            lock_name=f"txnpipe.sink.partitions.{settings.mysql_database}",
        )
        self._bisector = SavepointBisector()
        # LOAD DATA LOCAL INFILE for ledger and version rows (faster than multi-row INSERT
        # here, see README); files live in a private directory, the only one allowed.
        self.bulk = bulk
        self._infile_dir: str | None = None
        # entry ids waiting in sink_pending_entries (small); None = read it again
        self._pending_ids: set[str] | None = None

    # -- connection and start-up -------------------------------------------------------

    def today(self) -> date:
        return self.clock().date()

    @property
    def sql(self) -> Statements:
        """Row-writing statements on the current connection (after ``connect``)."""
        assert self._sql is not None
        return self._sql

    def connect(self) -> Any:
        """(Re)connect; on the first connection create the database, migrate and add partitions."""
        if self.conn is not None:
            return self.conn
        if self.dialect is None:
            db.ensure_database(self.settings)
        if self.bulk and self._infile_dir is None:
            self._infile_dir = make_infile_dir()
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
        if not self._migrated:
            schema.migrate(conn, self.today())
            self.keeper.ensure(conn, [], self.today())
            conn.commit()
            self._migrated = True
        self._sql = Statements(conn, self.dialect, self._infile_dir)
        self.conn = conn
        return conn

    def reset(self) -> None:
        """Forget the connection after an error (the next call reconnects)."""
        conn, self.conn = self.conn, None
        self._sql = None
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
        offsets.create(self.sql, cur, self.group, self.topic, partitions_)
        stored = offsets.read(cur, self.group, self.topic, partitions_, lock=False)
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
            self._pending_ids = pending.read_ids(conn)
        waiting = self._pending_ids
        units = list(plan.units)
        need = [i for u in units for i in u.missing]
        parked = pending.load(conn, need) if need else {}
        months = {
            partitions.month_of(e.message.transaction_date)
            for u in units
            for e in u.entries
            if isinstance(e.message, LedgerEntry)
        } | {
            partitions.month_of(e.message.transaction_date)
            for e in parked.values()
            if isinstance(e.message, LedgerEntry)
        }
        if self.keeper.needs_work(months, self.today()):
            self.keeper.ensure(conn, months, self.today())
        conn.commit()  # end the read view of the look-ups; the batch starts afresh
        cur = conn.cursor()
        cur.execute("START TRANSACTION")
        stored = offsets.read(cur, self.group, self.topic, sorted(plan.next_offsets), lock=True)
        state = offsets.fence(stored, expected, plan.next_offsets)
        if state != "ours":
            conn.rollback()
            cur.close()
            if state == "already":
                result.already = True
                return result
            raise FencedError(stored)
        units, resolved = pending.complete(cur, self.topic, units, parked, waiting, result.dead)
        self._bisector.write(
            cur,
            conn,
            units,
            self._write_units,
            lambda u, e: self._refuse(list(u.messages()), e, result),
        )
        orphans = pending.live_orphans(cur, plan.orphans)
        self._bisector.write(
            cur, conn, orphans, self._write_orphans, lambda o, e: self._refuse([o], e, result)
        )
        offsets.advance(
            self.sql, cur, self.group, self.topic, plan.next_offsets, raw_positions(units)
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

    def _refuse(self, items: list[Received], exc: MySQLError, result: BatchResult) -> None:
        result.dead.extend(refused(self.topic, items, exc))

    def _write_orphans(self, cur: Any, orphans: list[Received]) -> None:
        pending.write_orphans(self.sql, cur, orphans)

    def _write_units(self, cur: Any, units: list[Unit]) -> None:
        sql = self.sql
        if self.bulk and len(units) > 1:
            # One unit alone (the end of a bisection) takes the INSERT path: its error is the
            # strict-mode error itself rather than a LOAD DATA warning. Lines sorted are in
            # primary-key order (each starts with its key): InnoDB fills leaf pages in turn
            # instead of jumping between random ones (entry ids are hashes).
            # Stale-flagged versions (late replicas, often of a version already stored) go in
            # their own statement: the count of the others still tells a redelivery apart.
            ledger_lines: list[str] = []
            version_lines: list[str] = []
            stale_lines: list[str] = []
            for unit in units:
                entry_lines, version_line = unit.lines()
                ledger_lines.extend(entry_lines)
                (stale_lines if unit.record.stale else version_lines).append(version_line)
            ledger_lines.sort()
            version_lines.sort()
            stale_lines.sort()
            sql.load(cur, schema.LEDGER, LEDGER_COLUMNS, ledger_lines)
            inserted = sql.load(cur, schema.VERSIONS, VERSION_COLUMNS, version_lines)
            sql.load(cur, schema.VERSIONS, VERSION_COLUMNS, stale_lines)
        else:
            entries = [_ledger_row(e) for u in units for e in u.entries]
            sql.insert(
                cur,
                schema.LEDGER,
                LEDGER_COLUMNS,
                entries,
                "ON DUPLICATE KEY UPDATE entry_id = entry_id",
            )
            tail = "ON DUPLICATE KEY UPDATE transaction_id = transaction_id"
            rows = [version_row(u.version) for u in units if not u.record.stale]
            inserted = sql.insert(cur, schema.VERSIONS, VERSION_COLUMNS, rows, tail)
            stale = [version_row(u.version) for u in units if u.record.stale]
            sql.insert(cur, schema.VERSIONS, VERSION_COLUMNS, stale, tail)
        latest = latest_units(units)
        fresh = sum(1 for u in units if not u.record.stale)
        if inserted != fresh:
            # Some versions were already stored (redelivery): show only those that are the
            # newest the audit trail knows, so a stale copy can never win.
            latest = newest_only(cur, latest)
        if self.bulk and len(units) > 1:
            replace_current(sql, cur, list(latest.values()), self.counted)
        else:
            apply_current(sql, cur, [u.record for u in latest.values()], self.counted)
