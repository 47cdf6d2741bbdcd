"""A daemon thread that runs one step every few seconds and once more when stopped, so the
last counts survive the exit (the tracker's state files, experiments' parts in the store)."""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["Periodic"]


class Periodic:
    """Calls ``step`` every ``every`` seconds on a daemon thread named ``name``; `stop` joins
    it (at most 5 s) and calls ``step`` a last time. ``step`` handles its own errors."""

    def __init__(self, name: str, every: float, step: Callable[[], None]) -> None:
        self.every, self.step = every, step
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.step()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5.0)
        self.step()
