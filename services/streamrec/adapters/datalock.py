"""One process per data directory, and a free port, checked before anything is touched.

`streamrec run` keeps its log and snapshots under ``--data-dir``; a second process on the same
directory (a second `make run`, which wipes it first) would destroy or interleave a running
one's data. The running process holds an exclusive ``fcntl.flock`` on ``<data-dir>/.lock`` for
its whole life: the kernel drops it when the process ends, however it ends (no stale lock after
a crash or SIGKILL), and the file records the holder's pid for the message. `port_free` tries the
``HOST:PORT`` bind the way the server will, so a port in use is reported before any file exists.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from pathlib import Path

LOCK_NAME = ".lock"


class Busy(Exception):
    """The data directory or the port is in use; ``str()`` is the one line to print."""


class DataDirLock:
    """An exclusive, non-blocking lock on ``<directory>/<name>`` (``.lock``); released by
    `release` or when the process exits. `acquire` creates the directory (and only it, and
    the lock file) and raises `Busy` naming the holder's pid when another process holds the lock."""

    def __init__(self, directory: Path, name: str = LOCK_NAME) -> None:
        self.directory = directory
        self.path = directory / name
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            who = f" (pid {holder})" if holder else ""
            raise Busy(f"{self.directory} is in use by another streamrec process{who}; stop it "
                       "first, or give another --data-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


def is_locked(directory: Path) -> str | None:
    """The `Busy` message when another process holds ``directory``'s lock, else None. Touches
    nothing: a directory or lock file that does not exist is simply not locked."""
    try:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CLOEXEC)
    except OSError:  # no such file or directory, not a directory: no one holds it
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _read_pid(fd)
        who = f" (pid {holder})" if holder else ""
        return (f"{directory} is in use by another streamrec process{who}; stop it first, or "
                "give another --data-dir")
    finally:
        os.close(fd)  # a lock we took is dropped again at once
    return None


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


def port_free(bind: str) -> str | None:
    """None when ``HOST:PORT`` can be bound now (port 0 always can), else the one-line reason.
    ``SO_REUSEADDR`` as the servers set it, so a port in TIME_WAIT counts as free."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    if int(port) == 0:
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, int(port)))
    except OSError as e:
        return f"cannot listen on {bind}: {e.strerror or e}"
    except (ValueError, OverflowError) as e:
        return f"cannot listen on {bind}: {e}"
    return None
