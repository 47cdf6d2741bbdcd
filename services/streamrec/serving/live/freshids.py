"""The event ids a replica has folded in: the served snapshot's window ids plus the fresh ones.

Fold-in must count a client's retry once, as the trainer does (``core/events/eventids.py``): an
event
whose ``event_id`` is in the served snapshot's window (``Snapshot.event_ids``) or among the
events folded in since is dropped. Each fresh id remembers the (partition, offset) it came
from; when a newer snapshot covers that offset the id leaves this set, since the snapshot's own
ids now hold it (or it was itself a retry of one of them).

Bounded: the snapshot's ids are the trainer's window's (at most ``window_size``), and the fresh
ids are at most ``max_ids`` (the oldest leave first, counted in ``dropped``): a retry of an
event that old would have had to wait longer than the snapshot interval. Not thread-safe: the
caller (``FreshEvents``) holds its lock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping

__all__ = ["FreshIds"]


class FreshIds:
    """``snapshot`` ids plus fresh ``id -> (partition, offset)``, oldest first."""

    def __init__(self, max_ids: int) -> None:
        if max_ids < 1:
            raise ValueError("max_ids must be >= 1")
        self.max_ids = max_ids
        self.snapshot: frozenset[str] = frozenset()
        self._fresh: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self.dropped = 0  # fresh ids forgotten for max_ids

    def __len__(self) -> int:
        return len(self._fresh)

    def __contains__(self, eid: object) -> bool:
        return eid in self._fresh or eid in self.snapshot

    def add(self, eid: str, partition: int, offset: int) -> None:
        self._fresh[eid] = (partition, offset)
        while len(self._fresh) > self.max_ids:
            self._fresh.popitem(last=False)
            self.dropped += 1

    def advance(self, floor: Mapping[int, int], snapshot: frozenset[str] | None) -> None:
        """A snapshot covering the log below ``floor`` (partition -> offset) is served;
        ``snapshot`` is its window's ids (None: keep the current ones)."""
        if snapshot is not None:
            self.snapshot = snapshot
        for eid, (p, o) in list(self._fresh.items()):
            if o < floor.get(p, 0):
                del self._fresh[eid]

    def clear(self) -> None:
        self._fresh.clear()
