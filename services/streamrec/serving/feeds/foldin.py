"""Real-time fold-in: a background consumer feeding each user's events since the snapshot.

Every gunicorn worker runs its own consumer over all partitions of the interactions topic (a
serving group's partitions only, ``core/groups.py``), from
the served snapshot's offsets, with no consumer group commits. Why per worker and not one per
replica: no state shared between processes (no locks across forks, no IPC on the request path),
and a worker that dies takes nothing with it. The cost: each worker reads the whole topic and
holds its own `FreshEvents` (bounded: ~150 bytes per event, 200k events ≈ 30 MB per worker by
default), and the broker serves W times the read traffic. It is started after the fork
(gunicorn's ``post_worker_init``), never before: librdkafka threads do not survive a fork.

Messages are parsed by the same `parse_batch` as the trainer's, with the Kafka timestamp as the
default. On a model swap the events the new snapshot already holds are dropped
(`FreshEvents.advance`), and the consumer skips ahead if the snapshot is ahead of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from streamrec.adapters.source import EventSource, SourceUnavailable
from streamrec.core.domains import arrival_times
from streamrec.core.events import Event, parse_batch
from streamrec.core.events.erasure import Erasure
from streamrec.core.events.erasurekey import KeyUnavailable

from .. import metrics
from ..live.holder import Served
from ..live.model import LiveModel
from .consumer import POLL_MAX, POLL_TIMEOUT, BackgroundConsumer

log = logging.getLogger(__name__)

SourceFactory = Callable[[Mapping[int, int]], EventSource]
#: Sees every parsed event with its message timestamp (online evaluation, `online.py`).
Observer = Callable[[Sequence[Event], Sequence[float | None]], None]
LAG_EVERY = 2.0  # seconds between lag checks (a watermark query per partition)


class FoldIn(BackgroundConsumer):
    """Owns one `EventSource` and writes into a `FreshEvents`; `step` is one poll."""

    name = "fold-in"

    def __init__(self, factory: SourceFactory, live: LiveModel, fmt: str = "auto",
                 min_weight: float | None = None, observe: Observer | None = None,
                 weights: Mapping[str, float] | None = None,
                 on_erase: Callable[[Sequence[Erasure]], None] | None = None,
                 owns: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        #: A serving group's test of its users (``core/groups.py``); None: every user is ours.
        #: An event of another group's user (a producer that partitions by another rule) is
        #: counted as ``foreign`` and not kept: its owner serves that user, never this group.
        self.owns = owns
        if owns is not None:  # the series is on /metrics from the start
            metrics.FOLDIN_EVENTS.labels("foreign")
        self.factory, self.live, self.observe = factory, live, observe
        self.fresh, self.forgotten = live.fresh, live.forgotten
        self.fmt, self.min_weight, self.weights = fmt, min_weight, weights
        self.on_erase = on_erase
        self._lock = threading.Lock()
        self.last_event_ts: float | None = None  # produce time of the last message read

    def on_swap(self, served: Served) -> None:
        """Holder listener: drop what the snapshot holds; skip the consumer ahead if needed."""
        offsets = served.snapshot.offsets
        dropped = self.fresh.advance(offsets, served.snapshot.event_ids)
        if dropped:
            log.info("snapshot %s holds %d fresh events; dropped", served.version, dropped)
        with self._lock:
            self._pending = dict(offsets)
        metrics.FRESH_EVENTS.set(len(self.fresh))

    def step(self) -> int:
        """Open/seek the source if needed, poll once, keep the events; return how many kept."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            try:
                self._seek(pending)
            except SourceUnavailable:
                with self._lock:  # try again next step, unless a newer snapshot came meanwhile
                    self._pending = self._pending or pending
                raise
        if self.source is None:
            return 0  # no snapshot yet: nothing to fold into
        # Without the erasure key yet (a read-only store that has none: nothing was ever erased
        # under one), events still fold in; only erasures and tombstones need it (below).
        keyed = self._has_key()
        # Drain what has arrived without waiting; when nothing has, block for the *first*
        # message only: a batch poll would wait out its timeout to fill the batch, which made
        # the timeout the floor of freshness.
        messages = self.source.poll(POLL_MAX, 0.0) or self.source.poll(1, POLL_TIMEOUT)
        if not messages:
            return 0
        stamps = [m.timestamp for m in messages if m.timestamp is not None]
        if stamps:
            self.last_event_ts = max(stamps)
        # The trainer's rules exactly (arrival times included), so what a replica folds in is
        # what the next snapshot holds.
        batch = parse_batch([m.value or b"" for m in messages], self.fmt, self.min_weight,
                            arrival_times([m.timestamp for m in messages], time.time()),
                            self.weights)
        if not keyed and (batch.erasures or len(self.forgotten)):
            try:
                self.forgotten.hasher.key()
            except KeyUnavailable:
                # Read these messages again next step, once the key can be read: none is skipped.
                self.source.seek(_first_offsets(messages, self.source.positions()))
                raise
        if batch.erasures:  # first, as the trainer does: the rule is by date, not position
            self.erase([e for _, e in batch.erasures])
        kept, oldest, erased, foreign, duplicates = 0, None, 0, 0, self.fresh.duplicates
        retries: set[int] = set()  # positions of events dropped as retries (event_id)
        owns = self.owns
        for event, pos in zip(batch.events, batch.positions, strict=True):
            m = messages[pos]
            if owns is not None and not owns(event.user):
                foreign += 1
                continue
            if len(self.forgotten) and self.forgotten.erased(event.user, event.item, event.ts):
                erased += 1
                continue
            before = self.fresh.duplicates
            if self.fresh.add(event, m.partition, m.offset):
                kept += 1
                if m.timestamp is not None and (oldest is None or m.timestamp < oldest):
                    oldest = m.timestamp
            elif self.fresh.duplicates != before:
                retries.add(pos)
        if oldest is not None:  # one sample per poll, its slowest event: cheap on a catch-up
            metrics.FOLDIN_VISIBLE.observe(max(0.0, time.time() - oldest))
        for _, error in batch.rejected:
            metrics.FOLDIN_INVALID.labels(error.reason).inc()
        duplicates = self.fresh.duplicates - duplicates  # retries (event_id), fresh.py
        metrics.FOLDIN_EVENTS.labels("kept").inc(kept)
        metrics.FOLDIN_EVENTS.labels("duplicate").inc(duplicates)
        metrics.FOLDIN_EVENTS.labels("stale").inc(len(batch.events) - kept - erased - duplicates
                                                  - foreign)
        metrics.FOLDIN_EVENTS.labels("erased").inc(erased)
        if foreign:
            metrics.FOLDIN_EVENTS.labels("foreign").inc(foreign)
        metrics.FOLDIN_EVENTS.labels("invalid").inc(len(batch.rejected))
        metrics.FOLDIN_EVENTS.labels("filtered").inc(batch.filtered)
        metrics.FRESH_EVENTS.set(len(self.fresh))
        if self.observe is not None:  # online evaluation sees a retried event once too
            seen = [(e, p) for e, p in zip(batch.events, batch.positions, strict=True)
                    if p not in retries]
            self.observe([e for e, _ in seen], [messages[p].timestamp for _, p in seen])
        return kept

    def erase(self, erasures: Sequence[Erasure]) -> int:
        """Apply erasures now (`LiveModel.forget`; ``on_erase`` hears of the new ones, the
        online tracker forgets erased users); returns how many were new."""
        applied = self.live.forget(erasures)
        if applied and self.on_erase is not None:
            self.on_erase(applied)
        metrics.FRESH_EVENTS.set(len(self.fresh))
        return len(applied)

    def _has_key(self) -> bool:
        try:
            self.forgotten.hasher.key()
        except KeyUnavailable:
            return False
        return True

    def _seek(self, offsets: dict[int, int]) -> None:
        if self.source is None:
            source = self.factory(offsets)
            try:
                source.seek(offsets)
            except SourceUnavailable:
                source.close()
                raise
            self.source = source
            return
        position = self.source.positions()
        ahead = {p: o for p, o in offsets.items() if o > position.get(p, 0)}
        if ahead:  # a Kafka source moves only these (and ignores partitions it does not read)
            self.source.seek({**position, **ahead})

    def _loop(self) -> None:
        evicted, seen_dropped, lag_at = 0, 0, 0.0
        while not self._stop.is_set():
            if self.source is not None and time.monotonic() - lag_at > LAG_EVERY:
                lag_at = time.monotonic()
                self.report_lag()  # here, not in a request thread: the source is not shared
            self._idle_or_step()
            if self.fresh.evicted != evicted:
                metrics.FOLDIN_EVICTED.inc(self.fresh.evicted - evicted)
                evicted = self.fresh.evicted
            if self.fresh.seen_dropped != seen_dropped:
                metrics.FOLDIN_SEEN_DROPPED.inc(self.fresh.seen_dropped - seen_dropped)
                seen_dropped = self.fresh.seen_dropped

    def lag(self) -> int | None:
        return None if self.source is None else self.source.lag()

    def report_lag(self, now: float | None = None) -> None:
        """Set the lag gauges (messages and seconds behind the end of the topic)."""
        lag = self.lag()
        if lag is None:
            return
        metrics.FOLDIN_LAG.set(lag)
        seconds = metrics.lag_seconds(lag, self.last_event_ts,
                                      time.time() if now is None else now)
        if seconds is not None:
            metrics.FOLDIN_LAG_SECONDS.set(seconds)


def _first_offsets(messages: Sequence[Any], positions: dict[int, int]) -> dict[int, int]:
    """``positions`` moved back to the first of ``messages`` on each partition."""
    first = dict(positions)
    for m in messages:
        first[m.partition] = min(first.get(m.partition, m.offset), m.offset)
    return first
