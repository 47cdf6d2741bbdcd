"""The fixtures' process handling: whatever a test does to a component, nothing it started
outlives the teardown (the leak where a restarted Kafka and MinIO survived `make test`)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from tests.infra.process import (
    SESSION_ENV,
    InfraError,
    ManagedProcess,
    process_group,
    session_survivors,
)

# A server that forks a child into its process group and then serves "forever" (10 min bound).
TREE = ("import os, time\n"
        "if os.fork() == 0:\n    time.sleep(600)\n    os._exit(0)\n"
        "time.sleep(600)\n")


def _tree(tmp_path: Path, name: str = "tree") -> ManagedProcess:
    return ManagedProcess(name, [sys.executable, "-c", TREE], tmp_path / f"{name}.log")


def _group(proc: ManagedProcess) -> set[int]:
    assert proc.proc is not None
    pgid = proc.proc.pid
    return {pid for pid in session_survivors(os.environ[SESSION_ENV])
            if process_group(pid) == pgid}


def test_restart_over_a_live_process_ends_the_old_tree_first(tmp_path: Path) -> None:
    proc = _tree(tmp_path)
    proc.start()
    proc.wait_ready(lambda: len(_group(proc)) == 2, 30)
    first = _group(proc)
    proc.start()  # a fault test "restarting" a component that never went down
    proc.wait_ready(lambda: len(_group(proc)) == 2, 30)
    proc.stop()
    alive = first & set(session_survivors(os.environ[SESSION_ENV]))
    assert alive == set() and _group(proc) == set()


def test_stop_ends_children_that_outlive_their_leader(tmp_path: Path) -> None:
    proc = _tree(tmp_path)
    proc.start()
    proc.wait_ready(lambda: len(_group(proc)) == 2, 30)
    assert proc.proc is not None
    os.kill(proc.proc.pid, signal.SIGKILL)  # the leader dies; its child lives on in the group
    proc.proc.wait(10)
    assert len(_group(proc)) == 1
    proc.stop()
    assert _group(proc) == set()


def test_a_start_that_never_gets_ready_leaves_nothing_running(tmp_path: Path) -> None:
    proc = _tree(tmp_path)
    proc.start()
    with pytest.raises(InfraError, match="tree not ready after 1s"):
        proc.wait_ready(lambda: False, 1)
    assert not proc.running and _group(proc) == set()


def test_every_child_of_the_session_carries_its_marker(tmp_path: Path) -> None:
    proc = _tree(tmp_path)
    proc.start()
    try:
        proc.wait_ready(lambda: len(_group(proc)) == 2, 30)
        assert proc.proc is not None
        assert proc.proc.pid in session_survivors(os.environ[SESSION_ENV])
    finally:
        proc.stop()
