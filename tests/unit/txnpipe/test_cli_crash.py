"""A native crash in any command leaves a Python stack on stderr, not just exit -11."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import faulthandler, sys
from txnpipe.cli import main
faulthandler.disable()
try:
    main(["--help"])
except SystemExit:
    pass
print(faulthandler.is_enabled())
"""


def test_main_turns_on_the_fault_handler() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "True"
