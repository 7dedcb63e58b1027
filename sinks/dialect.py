"""The one place where MariaDB 10.11 and MySQL 8 differ in the SQL the sink writes.

Everything else the sink sends (``RANGE COLUMNS`` partitions, ``REORGANIZE PARTITION``,
``GET_LOCK``, ``information_schema.PARTITIONS``, multi-row ``INSERT``) is valid on both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Flavor = Literal["mariadb", "mysql"]


@dataclass(frozen=True)
class Dialect:
    """What the server is, and the spelling it wants for upserts."""

    flavor: Flavor
    version: tuple[int, int, int]

    @classmethod
    def from_version(cls, version: str) -> Dialect:
        """Parse ``SELECT VERSION()`` (e.g. ``10.11.19-MariaDB-0+deb12u1`` or ``8.0.36``)."""
        flavor: Flavor = "mariadb" if "mariadb" in version.lower() else "mysql"
        head = version.split("-", 1)[0]
        parts = [int(p) if p.isdigit() else 0 for p in head.split(".")[:3]]
        while len(parts) < 3:
            parts.append(0)
        return cls(flavor, (parts[0], parts[1], parts[2]))

    @property
    def row_alias(self) -> bool:
        """MySQL >= 8.0.19 names the incoming row (``AS new``); ``VALUES(col)`` is deprecated there.

        MariaDB has no row alias and keeps ``VALUES(col)``.
        """
        return self.flavor == "mysql" and self.version >= (8, 0, 19)

    def insert_suffix(self) -> str:
        """What goes between ``VALUES (...), (...)`` and ``ON DUPLICATE KEY UPDATE``."""
        return " AS new" if self.row_alias else ""

    def incoming(self, column: str) -> str:
        """The incoming row's value of ``column`` inside ``ON DUPLICATE KEY UPDATE``."""
        return f"new.{column}" if self.row_alias else f"VALUES({column})"

    def describe(self) -> str:
        return f"{self.flavor} {'.'.join(map(str, self.version))}"
