"""``pytest -n N --dist loadgroup`` (pytest-xdist) for this suite, as ``make test`` runs it.

The tests of a module that share a fixture wider than one test (``scope="module"``: one
expensive pipeline that each test builds on, in order) run on one worker, in file order;
every other test goes to whichever worker is free. Tests isolate by namespace (topics,
groups, Redis keys, database, state dir under ``tmp_path``), so any two may run at once.

xdist's own loadgroup reads ``xdist_group`` marks by renaming node ids, which pytest 9.2's
node ids no longer allow; so here the workers tell the controller which modules to keep
together: each writes the modules it collected with such fixtures to a file in a directory
the controller gave it, and the controller reads them before it hands out the first test.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

GROUPS_DIR = "txnpipe_groups_dir"  # key of the controller's directory in a worker's input
SHARED_SCOPES = ("class", "module", "package")


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def shares_a_fixture(item: pytest.Item) -> bool:
    """True when ``item`` uses (directly or not) a fixture shared by several tests of its
    module: such tests depend on one another's order and state."""
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    return any(d.scope in SHARED_SCOPES for ds in defs for d in ds)


def report_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Worker side: write the modules to keep together where the controller reads them."""
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    directory = workerinput.get(GROUPS_DIR)
    if directory is None:
        return
    modules = sorted({module_of(i.nodeid) for i in items if shares_a_fixture(i)})
    path = Path(directory) / f"{workerinput['workerid']}.json"
    path.with_suffix(".tmp").write_text(json.dumps(modules))
    os.replace(path.with_suffix(".tmp"), path)  # read whole or not at all


def make_scheduler(config: pytest.Config, log: Any, directory: Path) -> Any:
    """Controller side: xdist's scope scheduling, the scope being a module for the modules
    the workers reported and a single test otherwise (xdist hands out the biggest scopes
    first, then single tests in collection order: the slow ones are sorted first)."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):  # type: ignore[misc]
        grouped: frozenset[str] = frozenset()

        def schedule(self) -> None:
            if self.collection is None:  # every worker has collected (and written its file)
                found: set[str] = set()
                for path in directory.glob("*.json"):
                    found.update(json.loads(path.read_text()))
                self.grouped = frozenset(found)
            super().schedule()

        def _split_scope(self, nodeid: str) -> str:
            module = module_of(nodeid)
            return module if module in self.grouped else nodeid

    return SharedFixtureScheduling(config, log)
