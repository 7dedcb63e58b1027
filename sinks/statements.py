"""The two ways the sink sends rows: multi-row ``INSERT`` and ``LOAD DATA LOCAL INFILE``.

Statement mechanics (chunks of ``ROWS_PER_STATEMENT``, escaping a row in one C call, the
private infile directory, LOAD DATA warnings promoted to errors so a bad row is bisected
and never truncated) live here, apart from the writer that decides what is written when.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mysql.connector.errors import DataError

from sinks import db
from sinks.dialect import Dialect

ROWS_PER_STATEMENT = 2000
INFILE_PREFIX = "txnpipe-sink-"


def marks(n: int) -> str:
    """``%s,%s,...``: ``n`` placeholders for an ``IN (...)`` list."""
    return ",".join(["%s"] * n)


def make_infile_dir() -> str:
    """A private directory for LOAD DATA files (in memory when ``/dev/shm`` exists).

    It is the only directory the connection may read from; ones left by sink processes
    that no longer exist (kill -9) are removed first.
    """
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    _remove_orphaned_dirs(base or tempfile.gettempdir())
    return tempfile.mkdtemp(prefix=f"{INFILE_PREFIX}{os.getpid()}-", dir=base)


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


@dataclass(frozen=True)
class Statements:
    """Row-writing statements on one connection (made anew on every reconnect)."""

    conn: Any
    dialect: Dialect
    infile_dir: str | None

    def incoming(self, column: str) -> str:
        """The incoming row's ``column`` inside ``ON DUPLICATE KEY UPDATE``."""
        return self.dialect.incoming(column)

    def insert(
        self, cur: Any, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], tail: str
    ) -> int:
        """Multi-row INSERT, ``ROWS_PER_STATEMENT`` rows a statement; returns affected rows.

        Values are escaped by the C extension (``prepare_for_mysql``) and joined as bytes:
        the connector's own ``%s`` substitution costs a Python call per value.
        """
        if not rows:
            return 0
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

    def load(
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
        assert self.infile_dir is not None
        path = os.path.join(self.infile_dir, f"{table}.tsv")
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
