"""Following the impressions topic: every worker's memory of what every user was shown.

Each gunicorn worker runs one consumer of the impressions topic (started after the fork, like
the fold-in and the items follower) and adds each impression to its `Impressions`, so a list
served by any worker or replica rotates the next answer of all of them. A worker starts
`MAX_AGE_S` back in time (Kafka's ``offsets_for_times``; a log without it is read from its
beginning, and what is older is dropped), so a new or restarted worker knows the last day.
Its own impressions it has already added when it served them: they are skipped by origin.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from streamrec.adapters.source import EventSource
from streamrec.core.placements.impressions import MAX_AGE_S, Impressions, decode

from .. import metrics
from ..feeds.consumer import POLL_MAX, POLL_TIMEOUT, BackgroundConsumer

log = logging.getLogger(__name__)

__all__ = ["ImpressionsFollower"]


class ImpressionsFollower(BackgroundConsumer):
    """Owns one impressions-topic `EventSource`; `step` is one poll into ``impressions``."""

    name = "impressions"

    def __init__(self, factory: Callable[[], EventSource], impressions: Impressions,
                 origin: str) -> None:
        super().__init__()
        self.factory, self.impressions, self.origin = factory, impressions, origin
        self._pending = {}  # start at once (no snapshot needed): positioned in `step`
        self._positioned = False

    def _position(self, source: EventSource) -> None:
        since = time.time() - MAX_AGE_S
        by_time = getattr(source, "offsets_for_time", None)
        source.seek(by_time(since) if callable(by_time) else {})

    def step(self) -> int:
        """Open and position the source if needed, poll once, add what was read."""
        if self.source is None:
            self.source = self.factory()
        if not self._positioned:
            self._position(self.source)
            self._positioned = True
        messages = self.source.poll(POLL_MAX, 0.0) or self.source.poll(1, POLL_TIMEOUT)
        now, added, invalid = time.time(), 0, 0
        for m in messages:
            try:
                imp = decode(m.value)
            except ValueError:
                invalid += 1
                continue
            if imp.origin == self.origin:
                continue
            self.impressions.add(imp, now)
            added += 1
        if added:
            metrics.IMPRESSIONS.labels("read").inc(added)
        if invalid:
            metrics.IMPRESSIONS.labels("invalid").inc(invalid)
            log.warning("%d impressions could not be read", invalid)
        return added
