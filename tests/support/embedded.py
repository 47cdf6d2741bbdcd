"""`streamrec run` as a subprocess on 127.0.0.1, and small HTTP helpers for tests against it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def http(method: str, url: str, body: Any = None) -> Any:
    """JSON in, JSON out; an HTTP error answers ``{"status": code, **body}``."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return {"status": e.code, **json.loads(e.read() or b"{}")}


def until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` every 0.2 s until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Embedded:
    """One `streamrec run` on ``data_dir``; ``url`` once it listens."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        self.data_dir = data_dir
        self.log = (data_dir.parent / f"{data_dir.name}.log").open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamrec.cli", "run", "--data-dir", str(data_dir),
             "--bind", "127.0.0.1:0", "--retrain-interval", "1", *extra],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=ENV)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        assert match, f"no listening line: {line!r}"
        self.url = match.group(1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        return self.proc.wait(60)

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
        self.log.close()
