"""A serving worker's tombstones: what it must never show, whatever its snapshot still holds.

Erasures reach a worker two ways: in the served snapshot (``Snapshot.tombstones``, everything
the trainer had erased when it wrote it) and live, as control records on the interactions topic
that the fold-in consumer reads (``foldin.py``), or from a ``DELETE`` this worker answered
itself. :class:`Forgotten` keeps their union, as keyed hashes (``core/events/erasurekey.py``), and
gives the routes two things:

- :attr:`items`, the plain set of erased item ids this worker could show (the served
  snapshot's items and the catalogue's, matched by hash; the answering worker knows the id),
  which every list-returning route adds to its exclusions (a ranking filter takes it as it
  is). It lives in memory only;
- a per-snapshot mask of users (``Model.masked_users``): the users erased *after* the served
  snapshot was trained, whose rows that snapshot still holds. They are scored as unknown until
  a snapshot without them arrives.

Thread-safe: the fold-in thread adds, request threads read (copy-on-write sets).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from streamrec.core.events.erasure import Erasure, Tombstones
from streamrec.core.events.erasurekey import ErasureHasher

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
        before = self._snapshot.user_at(user)
        return before is None or at > before


class Forgotten:
    """The union of the served snapshot's tombstones and the erasures read since.

    ``on_item`` is called with each newly erased item id this worker knows (serving drops its
    catalogue record), and again by :meth:`scrub` after a snapshot's catalogue is taken.
    ``known_items`` lists the item ids this worker could show (the served snapshot's and the
    catalogue's): an erasure read from the topic holds only a hash, matched against them.
    """

    def __init__(self, hasher: ErasureHasher, on_item: Callable[[str], object] | None = None,
                 known_items: Callable[[], Iterable[str]] | None = None) -> None:
        self.hasher = hasher
        self._lock = threading.Lock()
        self._tombstones = Tombstones(hasher)
        self._on_item = on_item
        self._known_items = known_items
        self.items: frozenset[str] = frozenset()

    def __len__(self) -> int:
        return len(self._tombstones)

    def _resolve(self, digests: set[str], candidates: Iterable[str] | None = None) -> list[str]:
        """The known item ids whose hash is one of ``digests`` (O(known items))."""
        if not digests:
            return []
        if candidates is None:
            candidates = self._known_items() if self._known_items is not None else ()
        return [i for i in set(candidates) if self.hasher.digest("item", i) in digests]

    def _drop_items(self, ids: Iterable[str]) -> None:
        ids = [i for i in ids if i not in self.items]
        if not ids:
            return
        with self._lock:
            self.items = self.items | frozenset(ids)
        if self._on_item is not None:
            for item in ids:
                self._on_item(item)

    def add(self, erasure: Erasure) -> bool:
        """Record one erasure; True if it erased something new."""
        erasure = erasure.keyed(self.hasher)
        with self._lock:
            changed = self._tombstones.add(erasure)
        if changed and erasure.kind == "item":
            assert erasure.digest is not None
            self._drop_items([erasure.id] if erasure.id is not None
                             else self._resolve({erasure.digest}))
        return changed

    def merge(self, tombstones: Tombstones) -> None:
        with self._lock:
            self._tombstones.merge(tombstones)

    def snapshot(self) -> Tombstones:
        """A copy of the whole set."""
        with self._lock:
            return self._tombstones.copy()

    def item_erased(self, item: str) -> bool:
        """Whether ``item`` is erased (for good)."""
        return item in self.items or self._tombstones.has_item(item)

    def scrub(self, served: Served) -> None:
        """Holder listener, after the catalogue was taken from a new snapshot: an older
        snapshot's catalogue may still hold erased items, and items erased after this
        snapshot was trained are still in it; drop them again."""
        if self._on_item is not None:
            for item in self.items:
                self._on_item(item)
        with self._lock:
            later = set(self._tombstones.items) - set(served.snapshot.tombstones.items)
        self._drop_items(self._resolve(later))

    def user_erased_at(self, user: str) -> float | None:
        return self._tombstones.user_at(user)  # a hash and one dict read

    def erased(self, user: str, item: str, ts: float | None) -> bool:
        """Whether an event is erased (``Tombstones.erased``)."""
        return self._tombstones.erased(user, item, ts)

    def before_swap(self, served: Served) -> None:
        """Holder hook, before a snapshot is served: take in its tombstones and mask the users
        it still holds that were erased after it was made."""
        snapshot = served.snapshot
        snapshot.tombstones.bind(self.hasher)  # a format-5 snapshot's ids become hashes
        self.merge(snapshot.tombstones)
        snapshot.model.masked_users = UserMask(self, snapshot.tombstones)
