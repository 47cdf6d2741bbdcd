"""Per-user events that arrived after the served snapshot: the input of real-time fold-in.

Each entry remembers the (partition, offset) it came from. A snapshot's offsets say, per
partition, the next offset the trainer had *not* read, so on a model swap every entry with
``offset < snapshot_offsets[partition]`` is already inside the new model and is dropped, and
later arrivals below that floor are ignored: an event is never counted twice. Nor is a client's
retry: an event whose ``event_id`` is in the served snapshot's window or was folded in since is
dropped and counted in ``duplicates`` (``freshids.py``).

Two bounds keep memory flat, and neither un-sees an item (docs/serving.md, "Bounds"):

- the fold-in *history* holds at most ``max_per_user`` events per user (oldest dropped) and
  ``max_total`` in all (least recently active users' histories dropped first): a longer history
  only refines the vector, it costs O(k·f²) per request;
- the *seen* set (each item a user took since the snapshot, with the newest offset) is kept
  whole for every user, whatever the history bound dropped, so ``exclude_seen`` stays true.
  Only past ``max_seen`` distinct (user, item) pairs in all, which means no snapshot for a very
  long time, are the least recently active users' seen sets dropped; that is counted.

Thread-safe: the fold-in consumer writes, request threads read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from streamrec.core.events import Event
from streamrec.core.events.erasure import Tombstones

from .freshids import FreshIds

#: Default bounds; an entry costs roughly 150 bytes, so 200k events are ~30 MB per worker.
MAX_PER_USER = 500
MAX_TOTAL = 200_000
#: Distinct fresh (user, item) pairs kept as seen, across users (~100 bytes each).
MAX_SEEN = 1_000_000


@dataclass(frozen=True, slots=True)
class Fresh:
    partition: int
    offset: int
    item: str
    weight: float
    ts: float | None = None  # event time, Unix seconds (time-based recency)


class FreshEvents:
    """Events since the snapshot, per user, with an offset floor per partition."""

    def __init__(self, max_per_user: int = MAX_PER_USER, max_total: int = MAX_TOTAL,
                 max_seen: int = MAX_SEEN) -> None:
        if max_per_user < 1 or max_total < 1 or max_seen < 1:
            raise ValueError("bounds must be >= 1")
        self.max_per_user, self.max_total, self.max_seen = max_per_user, max_total, max_seen
        self._users: OrderedDict[str, deque[Fresh]] = OrderedDict()
        # user -> item -> (partition, offset) of the newest event: the seen set.
        self._seen: OrderedDict[str, dict[str, tuple[int, int]]] = OrderedDict()
        self._seen_total = 0
        self.seen_dropped = 0  # (user, item) pairs dropped for max_seen
        self._floor: dict[int, int] = {}
        self._total = 0
        self._ids = FreshIds(max_seen)
        self._lock = threading.Lock()
        self.duplicates = 0  # events dropped as retries of one already folded in (event_id)
        self.evicted = 0  # events dropped for a bound (per user or total)
        self.stale = 0  # events ignored because the snapshot already holds them

    def __len__(self) -> int:
        return self._total

    @property
    def users(self) -> int:
        return len(self._users)

    def floor(self) -> dict[int, int]:
        with self._lock:
            return dict(self._floor)

    def add(self, event: Event, partition: int, offset: int) -> bool:
        """Keep ``event``; False when the served snapshot already includes it, or when it is a
        retry (its ``event_id`` is in the snapshot's window or was folded in since)."""
        with self._lock:
            if offset < self._floor.get(partition, 0):
                self.stale += 1
                return False
            if event.event_id is not None:
                if event.event_id in self._ids:
                    self.duplicates += 1
                    return False
                self._ids.add(event.event_id, partition, offset)
            events = self._users.get(event.user)
            if events is None:
                events = self._users[event.user] = deque()
            else:
                self._users.move_to_end(event.user)
            events.append(Fresh(partition, offset, event.item, event.weight, event.ts))
            self._total += 1
            self._see(event.user, event.item, partition, offset)
            if len(events) > self.max_per_user:
                events.popleft()
                self._total -= 1
                self.evicted += 1
            while self._total > self.max_total:
                _, oldest = self._users.popitem(last=False)
                self._total -= len(oldest)
                self.evicted += len(oldest)
            return True

    def _see(self, user: str, item: str, partition: int, offset: int) -> None:
        items = self._seen.get(user)
        if items is None:
            items = self._seen[user] = {}
        else:
            self._seen.move_to_end(user)
        if item not in items:
            self._seen_total += 1
        items[item] = (partition, offset)
        while self._seen_total > self.max_seen and len(self._seen) > 1:
            _, dropped = self._seen.popitem(last=False)
            self._seen_total -= len(dropped)
            self.seen_dropped += len(dropped)

    def seen(self, user: str) -> list[str]:
        """Every item ``user`` took since the snapshot, history bound or not (sorted)."""
        with self._lock:
            return sorted(self._seen.get(user, ()))

    def beyond_history(self, user: str) -> list[str]:
        """The user's fresh items that the history bound dropped from :meth:`pairs` (sorted):
        what ``exclude_seen`` must still exclude."""
        with self._lock:
            items = self._seen.get(user)
            if not items:
                return []
            kept = {f.item for f in self._users.get(user, ())}
            return sorted(i for i in items if i not in kept)

    def pairs(self, user: str) -> list[tuple[str, float]]:
        """The user's fresh (item, weight) pairs, oldest first (``extra`` for the model)."""
        with self._lock:
            return [(f.item, f.weight) for f in self._users.get(user, ())]

    def timed(self, user: str) -> list[tuple[str, float, float | None]]:
        """The user's fresh (item, weight, ts) triples, oldest first (recency-aware ``extra``)."""
        with self._lock:
            return [(f.item, f.weight, f.ts) for f in self._users.get(user, ())]

    def count(self, user: str) -> int:
        with self._lock:
            return len(self._users.get(user, ()))

    def advance(self, offsets: Mapping[int, int], event_ids: frozenset[str] | None = None
                ) -> int:
        """A new snapshot covers the log below ``offsets``: drop those events; return how many.
        ``event_ids`` is the snapshot's window's event ids (``Snapshot.event_ids``).

        The floor only moves forward, so an older snapshot served again (a rollback) cannot
        make events count twice: it may only lose some freshness until the next snapshot.
        """
        with self._lock:
            for p, o in offsets.items():
                if o > self._floor.get(p, 0):
                    self._floor[int(p)] = int(o)
            self._ids.advance(self._floor, event_ids)
            dropped = self._filter(lambda _, f: f.offset >= self._floor.get(f.partition, 0))
            for user in list(self._seen):
                items = self._seen[user]
                for item, (p, o) in list(items.items()):
                    if o < self._floor.get(p, 0):
                        del items[item]
                        self._seen_total -= 1
                if not items:
                    del self._seen[user]
            return dropped

    def erase(self, tombstones: Tombstones) -> int:
        """Drop what ``tombstones`` erases: an erased user's events dated up to the erasure
        (and their seen set), and every event of an erased item. Returns the events dropped."""
        with self._lock:
            dropped = self._filter(lambda user, f: not tombstones.erased(user, f.item, f.ts))
            for user in list(self._seen):
                items = self._seen[user]
                gone = list(items) if tombstones.user_at(user) is not None else [
                    i for i in items if tombstones.has_item(i)]
                for item in gone:
                    del items[item]
                self._seen_total -= len(gone)
                if not items:
                    del self._seen[user]
            return dropped

    def _filter(self, keep: Callable[[str, Fresh], bool]) -> int:
        """Keep the history events for which ``keep(user, event)``; return how many went.
        The caller holds the lock."""
        dropped = 0
        for user in list(self._users):
            events = self._users[user]
            kept = deque(f for f in events if keep(user, f))
            dropped += len(events) - len(kept)
            if kept:
                self._users[user] = kept
            else:
                del self._users[user]
        self._total -= dropped
        return dropped

    def reset(self, offsets: Mapping[int, int], event_ids: frozenset[str] = frozenset()
              ) -> None:
        """Forget everything and set the floor exactly (the first snapshot of a worker)."""
        with self._lock:
            self._ids.clear()
            self._ids.advance({}, event_ids)
            self._users.clear()
            self._total = 0
            self._seen.clear()
            self._seen_total = 0
            self._floor = {int(p): int(o) for p, o in offsets.items()}
