"""Helpers for the serving fault tests: real snapshots in a `LocalStore`, `streamrec serve` running.

Not a test module (no ``test_`` prefix). A snapshot is a real ALS fit over a small synthetic
window, written by the production `write_snapshot` and published by the production
`LocalStore`; the server is the real CLI under real gunicorn, on a free port of 127.0.0.1.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.core.events import Event
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow
from tests.infra.process import free_port


def version_name(k: int) -> str:
    return f"{k:012d}"


def build_snapshot(directory: Path, version: str, *, users: int = 40, items: int = 30,
                   factors: int = 8, seed: int = 0) -> Path:
    """Fit a real model over a deterministic synthetic window and write its snapshot."""
    window = SlidingWindow(users * items)
    window.extend(Event(f"u{u}", f"i{i}", 1.0 + (u * 7 + i * 3 + seed) % 4)
                  for u in range(users) for i in range(items)
                  if (u * 31 + i * 17 + seed) % 5 < 2)
    model = fit(window.build(), ALSParams(factors=factors, iterations=8, num_threads=1))
    path = directory / version
    write_snapshot(path, model, window.contents(), {0: 0}, version)
    return path


def publish_snapshot(store: LocalStore, work: Path, k: int, **kw: int) -> str:
    """Build snapshot number ``k`` under ``work`` and publish it; its version name."""
    version = version_name(k)
    store.publish(build_snapshot(work, version, seed=k, **kw), version)
    return version


@dataclass
class Served:
    """A running `streamrec serve`: ``base`` URL, the master ``proc``, its ``log`` path."""

    base: str
    proc: subprocess.Popen[bytes]
    log: Path

    def worker_pids(self) -> list[int]:
        """gunicorn's workers: the master's child processes."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.proc.pid:  # ppid
                pids.append(int(stat.parent.name))
        return sorted(pids)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def rss_bytes(pid: int) -> int | None:
    """Resident set size of one process (``VmRSS``), None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def wait_for(check, seconds: float):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns something truthy; the last value either way."""
    deadline = time.monotonic() + seconds
    value = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.1)
    return value


@contextmanager
def serve(tmp: Path, store_root: Path, *, bootstrap: str, topic: str, workers: int = 2,
          threads: int = 2, env: dict[str, str | None] | None = None,
          reload_interval: float = 0.5) -> Iterator[Served]:
    """Run ``streamrec serve`` on a LocalStore until the block ends (SIGTERM, then kill).
    ``env`` adds variables; one given as None is removed from the inherited environment."""
    port = free_port()
    full_env = {k: v for k, v in {**os.environ, "OPENBLAS_NUM_THREADS": "1", **(env or {})}
                .items() if v is not None}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "streamrec.cli", "serve", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--threads", str(threads), "--store", str(store_root),
           "--bootstrap-servers", bootstrap, "--topic", topic, "--notify-topic", "",
           "--reload-interval", str(reload_interval), "--cache-dir", str(tmp / "cache")]
    log_path = tmp / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
        served = Served(f"http://127.0.0.1:{port}", proc, log_path)
        try:
            ready = wait_for(lambda: requests.get(f"{served.base}/readyz", timeout=2)
                             .status_code == 200, 90)
            assert ready, served.log_text()[-3000:]
            # Every worker forked and up (a worker accepts only once its snapshot is loaded).
            assert wait_for(lambda: len(served.worker_pids()) == workers, 30), (
                served.worker_pids(), served.log_text()[-3000:])
            yield served
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
