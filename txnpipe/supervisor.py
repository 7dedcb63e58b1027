"""A small process supervisor for ``txnpipe run``: start stages, restart crashes with
backoff, stop everything cleanly (in reverse order) on Ctrl-C, SIGTERM or a deadline.

Each stage is a child ``txnpipe <command>`` process in its own session, so a Ctrl-C in the
terminal reaches only the supervisor, which then stops the children in order: the poller
first (no new input), the sink last (it drains what the stream wrote).

Stages that are members of one consumer group (``Stage.group``: the stream workers, the
sinks) are stopped one after another, and before each the supervisor waits — at most
``settle_limit`` seconds — until the group is not rebalancing (``settled``): the bundled
broker (Tansu 0.6) wedges a group for good when its last member leaves mid-rebalance, and
stopping the first member starts exactly such a rebalance for the next one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

MAX_BACKOFF = 30.0


@dataclass
class Stage:
    """One supervised child: its command line and what happened to it so far."""

    name: str
    argv: Sequence[str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    last_exit: int | None = None
    next_start: float = 0.0
    backoff: float = 1.0
    started_at: float = 0.0
    events: list[str] = field(default_factory=list)
    stop_rank: int = 0  # lower stops first: the poller before the API it reads
    group: str | None = None  # the consumer group this stage is a member of, if any

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    @property
    def state(self) -> str:
        if self.proc is not None and self.proc.poll() is None:
            return "running"
        if self.next_start > time.monotonic():
            return f"restarting in {self.next_start - time.monotonic():.0f}s"
        return "stopped"


class Supervisor:
    """Runs stages as child processes; ``poll()`` restarts the ones that died."""

    def __init__(
        self,
        stages: Sequence[Stage],
        env: Mapping[str, str],
        *,
        settled: Callable[[str], bool] | None = None,
        settle_limit: float = 15.0,
    ) -> None:
        self.stages = list(stages)
        self.env = dict(env)
        self._logs: dict[str, IO[bytes]] = {}
        self.stopping = False
        self.settled = settled  # group -> not rebalancing (``common.kafka.group_settled``)
        self.settle_limit = settle_limit

    def _spawn(self, stage: Stage) -> None:
        stage.log_path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._logs.get(stage.name)
        if handle is None:
            handle = open(stage.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
            self._logs[stage.name] = handle
        stage.proc = subprocess.Popen(
            [sys.executable, "-m", "txnpipe", *stage.argv],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        stage.started_at = time.monotonic()
        log.info("started %s pid=%d", stage.name, stage.proc.pid)

    def start(self) -> None:
        for stage in self.stages:
            self._spawn(stage)

    def add(self, stage: Stage) -> None:
        """Start one more stage now (scaling out a running tree: one more worker or sink)."""
        self.stages.append(stage)
        self._spawn(stage)

    def poll(self) -> list[str]:
        """Restart crashed stages (capped exponential backoff); return what happened."""
        happened: list[str] = []
        now = time.monotonic()
        for stage in self.stages:
            if self.stopping:
                break
            if stage.proc is not None and stage.proc.poll() is not None:
                code = stage.proc.returncode
                stage.last_exit = code
                stage.proc = None
                # a stage that ran for a while before dying gets a fresh backoff
                if now - stage.started_at > 60:
                    stage.backoff = 1.0
                stage.next_start = now + stage.backoff
                msg = f"{stage.name} exited with code {code}; restarting in {stage.backoff:.0f}s"
                stage.events.append(msg)
                happened.append(msg)
                log.warning("%s (log: %s)", msg, stage.log_path)
                stage.backoff = min(stage.backoff * 2, MAX_BACKOFF)
            elif stage.proc is None and stage.next_start and now >= stage.next_start:
                stage.restarts += 1
                stage.next_start = 0.0
                self._spawn(stage)
                happened.append(f"{stage.name} restarted (restart #{stage.restarts})")
        return happened

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM each stage in order, wait, SIGKILL what is left; nothing keeps running."""
        self.stopping = True
        members: dict[str, int] = {}
        for stage in self.stages:
            if stage.group is not None:
                members[stage.group] = members.get(stage.group, 0) + 1
        for stage in sorted(self.stages, key=lambda s: s.stop_rank):
            proc = stage.proc
            if proc is None or proc.poll() is not None:
                continue
            if stage.group is not None and members[stage.group] > 1:
                self._wait_settled(stage.group)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", stage.name, timeout)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
            log.info("stopped %s (exit %s)", stage.name, proc.returncode)
        for stage in self.stages:  # anything a stage left in its process group
            if stage.proc is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(stage.proc.pid, signal.SIGKILL)
        for handle in self._logs.values():
            handle.close()

    def _wait_settled(self, group: str) -> bool:
        """Wait (bounded) until ``group`` is not rebalancing; False when the limit ran out."""
        if self.settled is None:
            return True
        deadline = time.monotonic() + self.settle_limit
        while not self.settled(group):
            if time.monotonic() >= deadline:
                log.warning("group=%s still rebalancing after %.0fs; stopping the next member "
                            "anyway", group, self.settle_limit)  # fmt: skip
                return False
            time.sleep(0.25)
        return True
