"""The quick start never destroys data: a second `streamrec run` or `make run` is refused first.

A running `streamrec run` holds its data directory's lock (adapters/datalock.py). A second one on
the same directory, or on the port in use, and the demo (`make run`, which wipes its directory
before starting) against either, exit 2 with one line, before any file is created or removed;
the first one's log and snapshots are intact and it keeps serving.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.support.embedded import ENV, Embedded, until

from streamrec.adapters.datalock import DataDirLock

REPO = Path(__file__).resolve().parents[2]


def _files(root: Path) -> dict[str, str]:
    """Every file under ``root`` with its sha256."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedded]:
    data = tmp_path_factory.mktemp("first") / "data"
    e = Embedded(data)
    try:
        r = requests.post(f"{e.url}/interactions", timeout=10, json=[
            {"user": f"u{u}", "item": f"i{(u * 3 + k) % 9}"} for u in range(30) for k in range(3)])
        assert r.status_code == 202, r.text
        until("a snapshot", lambda: requests.get(f"{e.url}/readyz", timeout=5).ok, 120)
        yield e
    finally:
        e.cleanup()


def _run(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=ENV,
                          cwd=REPO)


def _one_line_exit_2(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _snapshot_state(e: Embedded) -> dict[str, str]:
    """The data: the event log's records and the published snapshots (not the consumer
    positions, caches and work files, which the running process keeps changing)."""
    return {k: v for k, v in _files(e.data_dir).items()
            if k.startswith(("log/", "snapshots/")) and "/.groups/" not in f"/{k}"}


def _port(e: Embedded) -> str:
    return e.url.rsplit(":", 1)[1]


def test_a_second_streamrec_run_on_a_data_dir_in_use_exits_2_and_changes_nothing(
    running: Embedded
):
    before = _snapshot_state(running)
    assert any(k.startswith("log/") for k in before) and any(
        k.startswith("snapshots/") for k in before)
    proc = _run(sys.executable, "-m", "streamrec.cli", "run", "--data-dir",
                str(running.data_dir), "--bind", "127.0.0.1:0")
    _one_line_exit_2(proc, "data_dir", "in use", f"pid {running.proc.pid}")
    assert _snapshot_state(running) == before
    assert requests.get(f"{running.url}/readyz", timeout=5).ok


def test_a_second_streamrec_run_on_the_port_in_use_exits_2_before_creating_its_data_dir(
    running: Embedded, tmp_path: Path
):
    fresh = tmp_path / "never-created"
    proc = _run(sys.executable, "-m", "streamrec.cli", "run", "--data-dir", str(fresh),
                "--bind", f"127.0.0.1:{_port(running)}")
    _one_line_exit_2(proc, "bind", _port(running))
    assert not fresh.exists()


def test_make_run_against_a_running_demos_data_exits_2_and_wipes_nothing(running: Embedded):
    before = _snapshot_state(running)
    proc = _run(sys.executable, str(REPO / "demo" / "run_demo.py"), "--data-dir",
                str(running.data_dir), "--bind", "127.0.0.1:0", "--once")
    _one_line_exit_2(proc, "in use")
    assert _snapshot_state(running) == before
    r = requests.post(f"{running.url}/interactions", json={"user": "after", "item": "i1"},
                      timeout=10)
    assert r.status_code == 202  # and it still writes to files that exist
    until("the fold-in", lambda: requests.get(f"{running.url}/users/after/items",
                                              timeout=5).ok, 30)


def test_make_run_on_a_port_in_use_exits_2_and_keeps_its_directory(running: Embedded,
                                                                     tmp_path: Path):
    data = tmp_path / "demo"
    data.mkdir()
    (data / "keep.txt").write_text("mine")
    proc = _run(sys.executable, str(REPO / "demo" / "run_demo.py"), "--data-dir", str(data),
                "--bind", f"127.0.0.1:{_port(running)}", "--once")
    _one_line_exit_2(proc, "cannot listen", _port(running))
    assert (data / "keep.txt").read_text() == "mine"


def test_two_demos_on_one_directory_the_second_exits_2(tmp_path: Path):
    data = tmp_path / "demo"
    held = DataDirLock(data.parent, f".{data.name}.demo.lock").acquire()  # as a running demo
    try:
        data.mkdir()
        (data / "keep.txt").write_text("mine")
        proc = _run(sys.executable, str(REPO / "demo" / "run_demo.py"), "--data-dir",
                    str(data), "--bind", "127.0.0.1:0", "--once")
        _one_line_exit_2(proc, "another demo")
        assert (data / "keep.txt").read_text() == "mine"
    finally:
        held.release()


def test_the_lock_dies_with_its_process_so_a_crashed_run_never_blocks_the_next(
    tmp_path: Path
):
    data = tmp_path / "data"
    first = Embedded(data)
    try:
        assert first.kill() == -9
    finally:
        first.cleanup()
    second = Embedded(data)  # starts: the kernel dropped the dead process's flock
    try:
        assert requests.get(f"{second.url}/healthz", timeout=5).ok
        assert (data / ".lock").read_text().strip() == str(second.proc.pid)
    finally:
        second.cleanup()
