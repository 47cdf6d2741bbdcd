"""Per-user events that arrived after the served snapshot: the input of real-time fold-in.

Each entry remembers the (partition, offset) it came from. A snapshot's offsets say, per
partition, the next offset the trainer had *not* read, so on a model swap every entry with
``offset < snapshot_offsets[partition]`` is already inside the new model and is dropped, and
later arrivals below that floor are ignored: an event is never counted twice. Memory is bounded
per user (oldest events dropped) and in total (least recently active users evicted first).
Thread-safe: the fold-in consumer writes, request threads read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass

from streamrec.core.events import Event

#: Default bounds; an entry costs roughly 150 bytes, so 200k events are ~30 MB per worker.
MAX_PER_USER = 500
MAX_TOTAL = 200_000


@dataclass(frozen=True, slots=True)
class Fresh:
    partition: int
    offset: int
    item: str
    weight: float
    ts: float | None = None  # event time, Unix seconds (time-based recency)


class FreshEvents:
    """Events since the snapshot, per user, with an offset floor per partition."""

    def __init__(self, max_per_user: int = MAX_PER_USER, max_total: int = MAX_TOTAL) -> None:
        if max_per_user < 1 or max_total < 1:
            raise ValueError("bounds must be >= 1")
        self.max_per_user, self.max_total = max_per_user, max_total
        self._users: OrderedDict[str, deque[Fresh]] = OrderedDict()
        self._floor: dict[int, int] = {}
        self._total = 0
        self._lock = threading.Lock()
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
        """Keep ``event``; False when the served snapshot already includes it."""
        with self._lock:
            if offset < self._floor.get(partition, 0):
                self.stale += 1
                return False
            events = self._users.get(event.user)
            if events is None:
                events = self._users[event.user] = deque()
            else:
                self._users.move_to_end(event.user)
            events.append(Fresh(partition, offset, event.item, event.weight, event.ts))
            self._total += 1
            if len(events) > self.max_per_user:
                events.popleft()
                self._total -= 1
                self.evicted += 1
            while self._total > self.max_total:
                _, oldest = self._users.popitem(last=False)
                self._total -= len(oldest)
                self.evicted += len(oldest)
            return True

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

    def advance(self, offsets: Mapping[int, int]) -> int:
        """A new snapshot covers the log below ``offsets``: drop those events; return how many.

        The floor only moves forward, so an older snapshot served again (a rollback) cannot
        make events count twice: it may only lose some freshness until the next snapshot.
        """
        with self._lock:
            for p, o in offsets.items():
                if o > self._floor.get(p, 0):
                    self._floor[int(p)] = int(o)
            dropped = 0
            for user in list(self._users):
                events = self._users[user]
                keep = deque(f for f in events if f.offset >= self._floor.get(f.partition, 0))
                dropped += len(events) - len(keep)
                if keep:
                    self._users[user] = keep
                else:
                    del self._users[user]
            self._total -= dropped
            return dropped

    def reset(self, offsets: Mapping[int, int]) -> None:
        """Forget everything and set the floor exactly (the first snapshot of a worker)."""
        with self._lock:
            self._users.clear()
            self._total = 0
            self._floor = {int(p): int(o) for p, o in offsets.items()}
