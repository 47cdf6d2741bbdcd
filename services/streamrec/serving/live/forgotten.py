"""A serving worker's tombstones: what it must never show, whatever its snapshot still holds.

Erasures reach a worker two ways: in the served snapshot (``Snapshot.tombstones``, everything
the trainer had erased when it wrote it) and live, as control records on the interactions topic
that the fold-in consumer reads (``foldin.py``), or from a ``DELETE`` this worker answered
itself. :class:`Forgotten` keeps their union and gives the routes two things:

- :attr:`items`, the plain set of erased item ids, which every list-returning route adds to
  its exclusions (a ranking filter takes it as it is);
- a per-snapshot mask of users (``Model.masked_users``): the users erased *after* the served
  snapshot was trained, whose rows that snapshot still holds. They are scored as unknown until
  a snapshot without them arrives.

Thread-safe: the fold-in thread adds, request threads read (copy-on-write sets).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from streamrec.core.erasure import Erasure, Tombstones

from .holder import Served

__all__ = ["Forgotten", "UserMask"]


class UserMask:
    """Users erased later than ``snapshot`` says (a ``Container[str]`` for ``Model``)."""

    def __init__(self, live: Forgotten, snapshot: Tombstones) -> None:
        self._live, self._snapshot = live, snapshot

    def __contains__(self, user: object) -> bool:
        if not isinstance(user, str):
            return False
        at = self._live.user_erased_at(user)
        if at is None:
            return False
        before = self._snapshot.users.get(user)
        return before is None or at > before


class Forgotten:
    """The union of the served snapshot's tombstones and the erasures read since.

    ``on_item`` is called with each newly erased item id (serving drops its catalogue record),
    and again for every erased item by :meth:`scrub` after a snapshot's catalogue is taken.
    """

    def __init__(self, on_item: Callable[[str], object] | None = None) -> None:
        self._lock = threading.Lock()
        self._tombstones = Tombstones()
        self._on_item = on_item
        self.items: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self._tombstones)

    def add(self, erasure: Erasure) -> bool:
        """Record one erasure; True if it erased something new."""
        with self._lock:
            changed = self._tombstones.add(erasure)
            if changed and erasure.kind == "item":
                self.items = frozenset(self._tombstones.items)
        if changed and erasure.kind == "item" and self._on_item is not None:
            self._on_item(erasure.id)
        return changed

    def merge(self, tombstones: Tombstones) -> None:
        with self._lock:
            self._tombstones.merge(tombstones)
            self.items = frozenset(self._tombstones.items)

    def snapshot(self) -> Tombstones:
        """A copy of the whole set."""
        with self._lock:
            return self._tombstones.copy()

    def item_erased(self, item: str) -> bool:
        """Whether ``item`` is erased (for good)."""
        return item in self.items

    def scrub(self, _served: Served) -> None:
        """Holder listener, after the catalogue was taken from a new snapshot: an older
        snapshot's catalogue may still hold erased items; drop them again."""
        if self._on_item is not None:
            for item in self.items:
                self._on_item(item)

    def user_erased_at(self, user: str) -> float | None:
        return self._tombstones.users.get(user)  # one dict read: atomic under the GIL

    def erased(self, user: str, item: str, ts: float | None) -> bool:
        """Whether an event is erased (``Tombstones.erased``)."""
        return self._tombstones.erased(user, item, ts)

    def before_swap(self, served: Served) -> None:
        """Holder hook, before a snapshot is served: take in its tombstones and mask the users
        it still holds that were erased after it was made."""
        snapshot = served.snapshot
        self.merge(snapshot.tombstones)
        snapshot.model.masked_users = UserMask(self, snapshot.tombstones)
