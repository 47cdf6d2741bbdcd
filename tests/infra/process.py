"""Run a provisioned binary as a managed child process with a log file and a bounded wait.

Every process a test session starts, directly or through any descendant, carries the session's
marker in its environment (`SESSION_ENV`, set by tests/conftest.py before anything starts), so
`session_survivors()` can find whatever outlived a fixture, however it was started or restarted,
including daemons that left their process group (containerd's shims).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

#: The environment variable that marks every process of one pytest session.
SESSION_ENV = "STREAMREC_TEST_SESSION"


class InfraError(RuntimeError):
    """A test component could not be provisioned or started; the message says which and why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def provision(component: str) -> Path:
    """Run `scripts/provision-<component>.sh` (idempotent, fast when cached); return its dir."""
    script = REPO / "scripts" / f"provision-{component}.sh"
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise InfraError(
            f"{component}: provisioning failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


class ManagedProcess:
    """One long-running server process whose output goes to a log file we can tail on failure."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        # A start over a live predecessor (a fault test restarting a component that never went
        # down) must not orphan it: the teardown only knows the newest handle.
        self.stop()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        try:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, cwd=self.cwd,
                start_new_session=True,
            )
        except OSError as e:
            raise InfraError(f"{self.name}: cannot execute {self.argv[0]}: {e}") from e
        finally:
            log.close()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, check: Callable[[], bool], timeout: float) -> None:
        """Poll `check` until true; fail with the log tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        last_error: BaseException | None = None
        while time.monotonic() < deadline:
            if not self.running:
                code = self.proc.returncode if self.proc else None
                self.kill()  # its children may live on in the process group
                raise InfraError(f"{self.name} exited with code {code}:\n{self.log_tail()}")
            try:
                if check():
                    return
            except Exception as e:  # readiness probes raise while the server boots
                last_error = e
            time.sleep(0.2)
        self.kill()  # a half-started server must not outlive the failed start
        raise InfraError(
            f"{self.name} not ready after {timeout:.0f}s (last probe error: {last_error!r}):\n"
            f"{self.log_tail()}"
        )

    def stop(self, timeout: float = 20.0, sig: int = signal.SIGTERM) -> None:
        """Signal the whole process group, wait for the leader, then SIGKILL what is left of the
        group (children that ignored the signal, or outlived a leader that already exited)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            _killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        # The leader is reaped, so its id may be reused: only members that carry this session's
        # marker are ours to kill.
        marker = os.environ.get(SESSION_ENV)
        deadline = time.monotonic() + 10
        while marker and time.monotonic() < deadline:
            members = [p for p in session_survivors(marker) if process_group(p) == self.proc.pid]
            if not members:
                break
            for pid in members:
                _kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def kill(self) -> None:
        self.stop(timeout=5, sig=signal.SIGKILL)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"(no log at {self.log_path})"
        return f"--- last {lines} lines of {self.log_path} ---\n" + "\n".join(text[-lines:])


def _killpg(pgid: int, sig: int) -> None:
    # the group is gone (or its id was reused by someone else's: never touch it)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def session_survivors(marker: str) -> dict[int, str]:
    """Processes (pid -> command line) whose environment carries ``SESSION_ENV=marker``, other
    than this process and its ancestors. Read from /proc; processes that vanish are skipped."""
    mine = {os.getpid()}
    pid = os.getppid()
    while pid > 1 and pid not in mine:
        mine.add(pid)
        pid = _ppid(pid)
    needle = f"{SESSION_ENV}={marker}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            if needle in (entry / "environ").read_bytes().split(b"\0"):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found[int(entry.name)] = cmd.strip()
        except OSError:
            continue
    return found


def process_group(pid: int) -> int:
    """The process group of ``pid``; 0 if it is gone."""
    try:
        return os.getpgid(pid)
    except OSError:
        return 0


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def end_survivors(marker: str, grace: float = 5.0) -> dict[int, str]:
    """SIGTERM, then after ``grace`` seconds SIGKILL, every survivor of the session (by pid);
    returns what survived the session so the caller can fail loudly naming it."""
    survivors = session_survivors(marker)
    for pid in survivors:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and session_survivors(marker):
        time.sleep(0.1)
    for pid in session_survivors(marker):
        _kill(pid, signal.SIGKILL)
    return survivors


def _kill(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def wait_port(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
