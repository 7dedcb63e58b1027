"""Tables of the sink and their versioned, idempotent migrations.

``migrate`` runs on every start: under a named lock it applies, in order, each migration
not yet recorded in ``sink_migrations``. DDL is not transactional in MySQL, so every
statement is written to be safe to run again (``IF NOT EXISTS``) should a sink die half-way.

Ids and categories use ``utf8mb4_bin``: exact comparison, so ``café``/``cafe`` or
``ü``/``u`` or ``A``/``a`` stay distinct. Money is ``DECIMAL(12,2)``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from sinks import asof_sql, partitions

log = logging.getLogger(__name__)

LEDGER = "transaction_ledger"
VERSIONS = "transaction_versions"
CURRENT = "transactions"
OFFSETS = "sink_offsets"
PENDING = "sink_pending_entries"
RAW_POSITIONS = "sink_raw_positions"
MIGRATIONS = "sink_migrations"
DEAD_LETTERS = "dead_letters"
REDRIVES = "dead_letter_redrives"

# Months of ledger partitions made at creation, before and after the current month.
INITIAL_MONTHS_BACK = 24
MONTHS_AHEAD = 3

_TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin"
_ID = "VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL"
_ASCII = "CHARACTER SET ascii COLLATE ascii_bin"


def _ledger_ddl(today: date) -> str:
    return f"""
CREATE TABLE IF NOT EXISTS {LEDGER} (
  entry_id VARCHAR(64) {_ASCII} NOT NULL,
  transaction_id {_ID},
  version_updated_at DATETIME(6) NOT NULL,
  entry_type VARCHAR(8) {_ASCII} NOT NULL,
  customer_id {_ID},
  product_category {_ID},
  transaction_date DATE NOT NULL,
  amount DECIMAL(12,2) NOT NULL,
  `count` TINYINT NOT NULL,
  source_partition INT NOT NULL,
  source_offset BIGINT NOT NULL,
  ledger_partition INT NOT NULL,
  ledger_offset BIGINT NOT NULL,
  written_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (entry_id, transaction_date),
  KEY ix_ledger_transaction (transaction_id, version_updated_at),
  KEY ix_ledger_customer (customer_id, transaction_date),
  CONSTRAINT ck_ledger_type CHECK (entry_type IN ('reversal', 'new')),
  CONSTRAINT ck_ledger_count CHECK (`count` IN (-1, 1))
) {_TABLE_OPTIONS}
{partitions.initial_clause(today, INITIAL_MONTHS_BACK, MONTHS_AHEAD)}
"""


_VERSIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {VERSIONS} (
  transaction_id {_ID},
  updated_at DATETIME(6) NOT NULL,
  customer_id {_ID},
  product_category {_ID},
  transaction_amount DECIMAL(12,2) NOT NULL,
  transaction_date DATE NOT NULL,
  status VARCHAR(16) {_ASCII} NOT NULL,
  counted BOOLEAN NOT NULL,
  previous_updated_at DATETIME(6) NULL,
  entry_ids VARCHAR(200) {_ASCII} NOT NULL,
  accepted_at DATETIME(6) NOT NULL,
  source_partition INT NOT NULL,
  source_offset BIGINT NOT NULL,
  ledger_partition INT NOT NULL,
  ledger_offset BIGINT NOT NULL,
  written_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (transaction_id, updated_at),
  KEY ix_versions_customer (customer_id, updated_at),
  KEY ix_versions_accepted (accepted_at)
) {_TABLE_OPTIONS}
"""

_CURRENT_DDL = f"""
CREATE TABLE IF NOT EXISTS {CURRENT} (
  transaction_id {_ID},
  customer_id {_ID},
  product_category {_ID},
  transaction_amount DECIMAL(12,2) NOT NULL,
  transaction_date DATE NOT NULL,
  status VARCHAR(16) {_ASCII} NOT NULL,
  updated_at DATETIME(6) NOT NULL,
  accepted_at DATETIME(6) NOT NULL,
  PRIMARY KEY (transaction_id),
  KEY ix_current_category (product_category, transaction_amount),
  KEY ix_current_customer (customer_id, transaction_amount),
  KEY ix_current_date (transaction_date, transaction_amount)
) {_TABLE_OPTIONS}
"""

_OFFSETS_DDL = f"""
CREATE TABLE IF NOT EXISTS {OFFSETS} (
  consumer_group VARCHAR(255) {_ASCII} NOT NULL,
  topic VARCHAR(255) {_ASCII} NOT NULL,
  kafka_partition INT NOT NULL,
  next_offset BIGINT NOT NULL,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (consumer_group, topic, kafka_partition)
) {_TABLE_OPTIONS}
"""

_PENDING_DDL = f"""
CREATE TABLE IF NOT EXISTS {PENDING} (
  entry_id VARCHAR(64) {_ASCII} NOT NULL,
  transaction_id {_ID},
  version_updated_at DATETIME(6) NOT NULL,
  payload MEDIUMTEXT NOT NULL,
  ledger_partition INT NOT NULL,
  ledger_offset BIGINT NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (entry_id),
  KEY ix_pending_version (transaction_id, version_updated_at)
) {_TABLE_OPTIONS}
"""

_RAW_POSITIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {RAW_POSITIONS} (
  raw_partition INT NOT NULL,
  last_source_offset BIGINT NOT NULL,
  updated_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (raw_partition)
) {_TABLE_OPTIONS}
"""


# The dead-letter index (sinks/dead_letter_index.py): one row per dead letter of the DLQ
# topic, named by its place there. ``uq_dead_source`` makes a dead letter published twice
# for the same record (a stream outbox published again after a crash) one row;
# ``uq_dead_redrive`` makes a redriven record that is still invalid come back once, however
# often the same bytes are redriven. ``raw`` holds the bytes as the envelope carries them
# (cut at 256 KiB; ``raw_length`` is the record's full length).
_DEAD_LETTERS_DDL = f"""
CREATE TABLE IF NOT EXISTS {DEAD_LETTERS} (
  dlq_partition INT NOT NULL,
  dlq_offset BIGINT NOT NULL,
  dead_at DATETIME(6) NOT NULL,
  stage VARCHAR(16) {_ASCII} NOT NULL,
  reason VARCHAR(128) {_ASCII} NOT NULL,
  detail VARCHAR(1000) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
  transaction_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL,
  source_topic VARCHAR(255) {_ASCII} NOT NULL,
  source_partition INT NOT NULL,
  source_offset BIGINT NOT NULL,
  source_index INT NOT NULL,
  raw MEDIUMBLOB NOT NULL,
  raw_length INT NOT NULL,
  raw_sha256 CHAR(64) {_ASCII} NOT NULL,
  redrive_of VARCHAR(300) {_ASCII} NULL,
  indexed_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (dlq_partition, dlq_offset),
  UNIQUE KEY uq_dead_source (stage, source_topic, source_partition, source_offset, source_index),
  UNIQUE KEY uq_dead_redrive (redrive_of, raw_sha256),
  KEY ix_dead_reason (reason, dead_at),
  KEY ix_dead_time (dead_at),
  KEY ix_dead_transaction (transaction_id)
) {_TABLE_OPTIONS}
"""

# What `txnpipe dlq redrive` has published, one row per (dead letter, bytes sent): written
# after the broker acknowledged them, so a second redrive of the same selection publishes
# nothing, and one killed half-way publishes again only what it had not recorded.
_REDRIVES_DDL = f"""
CREATE TABLE IF NOT EXISTS {REDRIVES} (
  redrive_key CHAR(64) {_ASCII} NOT NULL,
  dlq_partition INT NOT NULL,
  dlq_offset BIGINT NOT NULL,
  origin VARCHAR(8) {_ASCII} NOT NULL,
  raw_sha256 CHAR(64) {_ASCII} NOT NULL,
  expected VARCHAR(16) {_ASCII} NOT NULL,
  run_id CHAR(32) {_ASCII} NOT NULL,
  raw_partition INT NOT NULL,
  raw_offset BIGINT NOT NULL,
  redriven_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (redrive_key),
  KEY ix_redrive_letter (dlq_partition, dlq_offset)
) {_TABLE_OPTIONS}
"""


# A statement, or (check, statement): the check's count > 0 means it was applied already.
Statement = str | tuple[str, str]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[date], list[Statement]]


MIGRATIONS_LIST: tuple[Migration, ...] = (
    Migration(
        1,
        "ledger (monthly partitions), versions, current transactions, offsets, pending entries",
        lambda today: [
            _ledger_ddl(today),
            _VERSIONS_DDL,
            _CURRENT_DDL,
            _OFFSETS_DDL,
            _PENDING_DDL,
            _RAW_POSITIONS_DDL,
        ],
    ),
    Migration(
        2,
        "dead-letter index and redrive journal",
        lambda today: [_DEAD_LETTERS_DDL, _REDRIVES_DDL],
    ),
    Migration(
        3,
        "as of: stale-flagged versions, covering indexes, as-of procedures (docs/as-of.md)",
        lambda today: [*asof_sql.GUARDED, *asof_sql.statements()],
    ),
)


def migrate(conn: Any, today: date) -> list[int]:
    """Apply missing migrations in order (idempotent, safe with concurrent sinks); return them."""
    cur = conn.cursor()
    cur.execute(
        f"CREATE TABLE IF NOT EXISTS {MIGRATIONS} ("
        "version INT NOT NULL PRIMARY KEY, name VARCHAR(255) NOT NULL, "
        f"applied_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)) {_TABLE_OPTIONS}"
    )
    lock = f"txnpipe.sink.migrate.{conn.database}"
    cur.execute("SELECT GET_LOCK(%s, 120)", (lock,))
    got = cur.fetchone()
    if not got or got[0] != 1:
        cur.close()
        raise TimeoutError(f"migration lock={lock} not granted in 120 s")
    applied: list[int] = []
    try:
        cur.execute(f"SELECT version FROM {MIGRATIONS}")
        done = {int(row[0]) for row in cur.fetchall()}
        for migration in MIGRATIONS_LIST:
            if migration.version in done:
                continue
            for statement in migration.statements(today):
                if isinstance(statement, tuple):
                    check, statement = statement
                    cur.execute(check)
                    found = cur.fetchone()
                    if found and int(found[0]) > 0:
                        continue
                cur.execute(statement)
            cur.execute(
                f"INSERT INTO {MIGRATIONS} (version, name) VALUES (%s, %s)",
                (migration.version, migration.name),
            )
            conn.commit()
            applied.append(migration.version)
            log.info("schema: applied migration %d (%s)", migration.version, migration.name)
    finally:
        cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))
        cur.fetchall()
        cur.close()
    return applied
