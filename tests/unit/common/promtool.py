"""``promtool check metrics`` (Debian ``prometheus``) on an exposition; shared by the unit
and integration tests. Skipped only when the binary is absent and CI is unset."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def binary(name: str) -> str:
    """Path of a Prometheus tool; in CI a missing one fails, elsewhere it skips."""
    found = shutil.which(name) or (
        f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None
    )
    if found is None:
        if IN_CI:
            pytest.fail(f"{name} is not installed and CI=true (.ci/run installs it)", pytrace=False)
        pytest.skip(f"{name} is not installed (apt-get install prometheus)")
    return found


def check_metrics(text: bytes) -> None:
    """Fail with promtool's own words when it finds a problem (or a lint warning)."""
    proc = subprocess.run(
        [binary("promtool"), "check", "metrics"], input=text, capture_output=True, timeout=60
    )
    output = (proc.stdout + proc.stderr).decode(errors="replace")
    assert proc.returncode == 0 and not output.strip(), output
