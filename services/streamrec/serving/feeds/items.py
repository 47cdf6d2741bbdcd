"""Following the items topic: every worker's catalogue, live, from the served snapshot on.

As the fold-in follows interactions (``foldin.py``), each gunicorn worker runs one consumer of
the items topic, started after the fork, and applies each record to its own `Catalogue`, so
hiding or re-categorising an item shows on every worker as soon as its consumer reads it
(a poll waits at most ``POLL_TIMEOUT``). The trainer keeps the catalogue in each snapshot with
the items-topic offsets it holds. A worker takes the snapshot's catalogue and seeks to those
offsets on its first snapshot, and again whenever a snapshot is ahead of what it has read
(say, after the broker lost the consumer's position). Otherwise its own is at least as new:
it rebases onto the newer snapshot's catalogue (a mapped table from format 8) and applies
again the records it read past that snapshot's offsets, so what it holds as Python objects is
only what changed since the newest snapshot. Records below the offsets it last took are
skipped, so an older record read just before the swap cannot overwrite the snapshot's newer
one.

Malformed records are counted here; the trainer (one per service) dead-letters them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from streamrec.adapters.source import EventSource
from streamrec.core.catalog.records import (
    Catalogue,
    InvalidItem,
    ItemRecord,
    parse_record_bytes,
)

from .. import metrics
from ..live.holder import Served
from .consumer import POLL_MAX, POLL_TIMEOUT, BackgroundConsumer

log = logging.getLogger(__name__)



class ItemsFollower(BackgroundConsumer):
    """Owns one items-topic `EventSource` and keeps ``catalogue``; `step` is one poll."""

    name = "items"

    def __init__(self, factory: Callable[[], EventSource], catalogue: Catalogue,
                 erased: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self.factory, self.catalogue = factory, catalogue
        #: Items erased for good (``DELETE /items``, serving/live/forgotten.py): records dropped.
        self.erased = erased
        self._read: dict[int, int] = {}  # next offset per partition, of what was applied
        self._floor: dict[int, int] = {}  # the offsets of the catalogue last taken
        # What was applied over it, the latest per item: item -> (partition, offset, record).
        self._since: dict[str, tuple[int, int, ItemRecord]] = {}
        self._lock = threading.Lock()

    def on_swap(self, served: Served) -> None:
        """Holder listener: take the snapshot's catalogue if it is ahead of this worker's;
        rebase onto it if it is newer than the one this worker's rests on but behind what the
        worker read (the records past its offsets applied again), so the Python records over
        a mapped table are only those since the newest snapshot."""
        snap = served.snapshot
        with self._lock:
            first = self.source is None and self._pending is None
            ahead = any(o > self._read.get(p, 0) for p, o in snap.item_offsets.items())
            if first or ahead:
                self.catalogue.replace(snap.catalog)
                self._floor = dict(snap.item_offsets)
                self._read = dict(snap.item_offsets)
                self._pending = dict(snap.item_offsets)
                self._since = {}
                how = "taken"
            elif self._newer_base(snap.item_offsets):
                again = {i: (p, o, r) for i, (p, o, r) in self._since.items()
                         if o >= snap.item_offsets.get(p, 0)
                         and not (self.erased is not None and self.erased(i))}
                # Built aside, then one swap: requests never see the snapshot's older records.
                rebased = snap.catalog.copy()
                for _, _, record in again.values():
                    rebased.upsert(record)
                self.catalogue.replace(rebased)
                self._floor, self._since = dict(snap.item_offsets), again
                how = f"rebased on ({len(again)} newer records applied again)"
            else:
                return
        metrics.CATALOG_ITEMS.set(len(self.catalogue))
        log.info("catalogue of snapshot %s %s: %d items, items offsets %s", served.version,
                 how, len(snap.catalog), snap.item_offsets)

    def _newer_base(self, offsets: dict[int, int]) -> bool:
        """The snapshot holds every record the current base holds and some more."""
        floor = self._floor
        return (all(o >= floor.get(p, 0) for p, o in offsets.items())
                and all(p in offsets for p in floor)
                and any(o > floor.get(p, 0) for p, o in offsets.items()))

    def step(self) -> int:
        """Seek if needed, poll once, apply the records; return how many were applied."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            try:
                if self.source is None:
                    self.source = self.factory()
                self.source.seek(pending)
            except Exception:  # the broker or the topic is not there yet: seek next step
                with self._lock:
                    self._pending = self._pending or pending
                raise
        if self.source is None:
            return 0  # no snapshot yet
        messages = self.source.poll(POLL_MAX, 0.0) or self.source.poll(1, POLL_TIMEOUT)
        kept = stale = invalid = erased = 0
        with self._lock:
            for m in messages:
                if m.offset < self._floor.get(m.partition, 0):
                    stale += 1
                    continue
                self._read[m.partition] = max(self._read.get(m.partition, 0), m.offset + 1)
                try:
                    record = parse_record_bytes(m.value)
                except InvalidItem:
                    invalid += 1
                    continue
                if self.erased is not None and self.erased(record.item):
                    erased += 1
                    continue
                self.catalogue.upsert(record)
                self._since[record.item] = (m.partition, m.offset, record)
                kept += 1
        if messages:
            for result, count in (("kept", kept), ("stale", stale), ("invalid", invalid),
                                  ("erased", erased)):
                metrics.ITEM_RECORDS.labels(result).inc(count)
            metrics.CATALOG_ITEMS.set(len(self.catalogue))
        return kept
