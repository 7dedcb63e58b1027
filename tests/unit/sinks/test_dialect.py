"""The MariaDB / MySQL 8 seam: upsert spelling by server version."""

from __future__ import annotations

import pytest

from sinks.dialect import Dialect


@pytest.mark.parametrize(
    ("version", "flavor", "suffix", "incoming"),
    [
        ("10.11.19-MariaDB-0+deb12u1", "mariadb", "", "VALUES(x)"),
        ("8.0.36", "mysql", " AS new", "new.x"),
        ("8.4.2-commercial", "mysql", " AS new", "new.x"),
        ("8.0.18", "mysql", "", "VALUES(x)"),
    ],
    ids=["mariadb-10.11", "mysql-8.0.36", "mysql-8.4", "mysql-8.0.18-no-alias"],
)
def test_upsert_spelling(version: str, flavor: str, suffix: str, incoming: str) -> None:
    dialect = Dialect.from_version(version)
    assert dialect.flavor == flavor
    assert dialect.insert_suffix() == suffix and dialect.incoming("x") == incoming
