"""The one reference to the served snapshot; a swap is one assignment.

`Holder.current()` is read once per request; the request keeps that `Served` object (and the
memory-mapped arrays behind it) until it returns, so a swap (``feeds/reloader.py``) never
changes a model under a running request. Preparers run on a new snapshot before any request
can see it; listeners hear about it after.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from streamrec.core.snapshot.arrays import Snapshot

__all__ = ["Holder", "Served"]


@dataclass(frozen=True, eq=False)
class Served:
    """One loaded snapshot, as a request sees it."""

    snapshot: Snapshot
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        return self.snapshot.version


class Holder:
    """The one reference to the served snapshot; listeners hear about every swap."""

    def __init__(self) -> None:
        self._served: Served | None = None
        self._listeners: list[Callable[[Served], None]] = []
        self._preparers: list[Callable[[Served], None]] = []

    def current(self) -> Served | None:
        return self._served  # one attribute read: atomic under the GIL

    def on_swap(self, listener: Callable[[Served], None]) -> None:
        self._listeners.append(listener)

    def before_swap(self, preparer: Callable[[Served], None]) -> None:
        """Run ``preparer`` on each new snapshot before any request can see it."""
        self._preparers.append(preparer)

    def swap(self, served: Served) -> None:
        for preparer in self._preparers:
            preparer(served)
        self._served = served
        for listener in self._listeners:
            listener(served)
