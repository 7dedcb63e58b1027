"""The supervisor's stop order around consumer groups, and ``txnpipe run``'s stage plan.

Stopping one member of a group starts a rebalance; on the bundled broker the last member
leaving mid-rebalance wedges the group for good, so the supervisor waits (bounded) for the
group to settle before it stops the next member. Children here are plain ``sleep``
processes: what is checked is when the supervisor asks and whom it has stopped by then.
"""

from __future__ import annotations

import argparse
import logging
import subprocess
from pathlib import Path

import pytest

from common.settings import load_settings
from txnpipe.commands.run import plan, sink_group, stream_group
from txnpipe.supervisor import Stage, Supervisor


def sleeper(name: str, tmp_path: Path, group: str | None = None, rank: int = 0) -> Stage:
    stage = Stage(name, [], tmp_path / f"{name}.log", group=group, stop_rank=rank)
    stage.proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
    return stage


def test_members_of_one_group_are_stopped_only_once_it_has_settled(tmp_path: Path) -> None:
    stages = [
        sleeper("stream-1", tmp_path, "g"),
        sleeper("stream-2", tmp_path, "g"),
        sleeper("sink", tmp_path, "h"),  # the only member of its group: no wait
    ]
    asked: list[tuple[str, list[str]]] = []
    answers = iter([False, True, False, False, True])

    def settled(group: str) -> bool:
        alive = [s.name for s in stages if s.proc is not None and s.proc.poll() is None]
        asked.append((group, alive))
        return next(answers)

    Supervisor(stages, {}, settled=settled, settle_limit=10).stop()

    assert [group for group, _ in asked] == ["g"] * 5
    # the last two questions came after stream-1 had been stopped: stream-2 waited for them
    assert asked[-1][1] == ["stream-2", "sink"]
    assert asked[1][1] == ["stream-1", "stream-2", "sink"]
    assert all(s.proc is not None and s.proc.poll() is not None for s in stages)


def test_a_group_that_never_settles_holds_the_stop_only_as_long_as_the_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stages = [sleeper("sink-1", tmp_path, "h"), sleeper("sink-2", tmp_path, "h")]
    calls: list[str] = []

    def never(group: str) -> bool:
        calls.append(group)
        return False

    with caplog.at_level(logging.WARNING, logger="txnpipe.supervisor"):
        Supervisor(stages, {}, settled=never, settle_limit=0.3).stop()

    assert all(s.proc is not None and s.proc.poll() is not None for s in stages)
    assert calls and "still rebalancing" in caplog.text


def test_plan_gives_workers_and_sinks_their_groups(tmp_path: Path) -> None:
    settings = load_settings({"namespace": "scaleplan", "state_dir": tmp_path,
                              "api_url": "http://127.0.0.1:1"})  # fmt: skip
    args = argparse.Namespace(workers=3, sinks=2, web_port=7000, sim_port=0, seed=1, rate=1.0,
                              history_days=None)  # fmt: skip
    stages, _ = plan(args, settings)
    by_name = {s.name: s for s in stages}
    assert list(by_name) == ["poller", "stream-1", "stream-2", "stream-3", "sink-1", "sink-2"]
    assert {by_name[f"stream-{i}"].group for i in (1, 2, 3)} == {stream_group(settings)}
    assert {by_name[f"sink-{i}"].group for i in (1, 2)} == {sink_group(settings)}
    assert stream_group(settings) == "scaleplan-stream" and sink_group(settings) == "scaleplan.sink"
    assert [by_name[f"stream-{i}"].argv[-1] for i in (1, 2, 3)] == ["7000", "7001", "7002"]
    assert by_name["poller"].group is None

    one, _ = plan(argparse.Namespace(**{**vars(args), "sinks": 1}), settings)
    assert [s.name for s in one if s.name.startswith("sink")] == ["sink"]


def test_more_members_than_partitions_is_a_notice_naming_the_spares() -> None:
    from txnpipe.commands.run import idle_members

    assert idle_members(2, 2, 6) is None
    assert idle_members(6, 1, 6) is None
    notice = idle_members(8, 7, 6)
    assert notice is not None
    assert (
        "2 of 8 stream workers" in notice and "1 of 7 sinks" in notice and "6 partitions" in notice
    )
    assert "sinks" not in (idle_members(8, 1, 6) or "")
