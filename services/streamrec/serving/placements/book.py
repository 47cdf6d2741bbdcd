"""The placements a worker serves, read again when their file changes.

Given as a file (``--placements FILE``, or the ConfigMap the operator mounts in serving pods),
the file is watched: every `WATCH_INTERVAL_S` a thread compares its ``stat`` (inode, size,
mtime; a ConfigMap update swaps a symlink, so the inode changes) and reads it again when it
moved. A file that does not parse is refused, logged and counted
(``streamrec_placements_reloads_total{result="refused"}``) and the placements before it stay;
``GET /placements`` shows the refusal with the field it names. Placements given inline (JSON
on the command line or in a variable) are fixed for the process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable

from streamrec.core.placements.spec import Placement, to_json
from streamrec.settings.kinds import BadValue
from streamrec.settings.placements import PlacementSource, read_placements

from .. import metrics

log = logging.getLogger(__name__)

__all__ = ["WATCH_INTERVAL_S", "PlacementBook"]

#: Seconds between two looks at the watched file.
WATCH_INTERVAL_S = 0.25


def _digest(placements: tuple[Placement, ...]) -> str:
    text = json.dumps(to_json(placements), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


class PlacementBook:
    """The current placements (an immutable tuple, swapped whole) and where they came from."""

    def __init__(self, source: PlacementSource) -> None:
        self.path = source.path
        self.placements = source.placements
        self.version = _digest(self.placements)
        self.loaded_at = time.time()
        self.error: str | None = None  # the last refused change, until one is taken
        self._signature = _signature(self.path) if self.path is not None else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ticks: list[Callable[[], None]] = []
        metrics.PLACEMENTS.set(len(self.placements))

    def named(self, name: str) -> Placement | None:
        return next((p for p in self.placements if p.name == name), None)

    def on_tick(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after each look at the file (the masks' refresh)."""
        self._ticks.append(callback)

    def check(self) -> bool:
        """Read the file again if it changed; True when new placements were taken."""
        if self.path is None:
            return False
        sig = _signature(self.path)
        if sig is None or sig == self._signature:
            return False
        self._signature = sig
        try:
            with open(self.path, encoding="utf-8") as f:
                placements = read_placements(f.read())
        except (OSError, BadValue) as e:
            self.error = f"{self.path}: {e}"
            metrics.PLACEMENT_RELOADS.labels("refused").inc()
            log.error("placements not reloaded, the previous ones stay: %s", self.error)
            return False
        self.error = None
        if _digest(placements) == self.version:
            return False
        self.placements, self.version = placements, _digest(placements)
        self.loaded_at = time.time()
        metrics.PLACEMENT_RELOADS.labels("taken").inc()
        metrics.PLACEMENTS.set(len(placements))
        log.info("placements %s taken from %s: %s", self.version, self.path,
                 ", ".join(p.name for p in placements) or "none")
        return True

    def _loop(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_S):
            try:
                self.check()
                for tick in self._ticks:
                    tick()
            except Exception:  # keep watching after a bug in one look
                log.exception("placements watch failed; looking again")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="placements", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
