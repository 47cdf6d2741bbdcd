"""The fold-in's observer for online evaluation: every parsed event is judged by the tracker."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from streamrec.core.events import Event

from .tracker import OnlineTracker

__all__ = ["observe_batch"]


def observe_batch(tracker: OnlineTracker | None) -> (
        Callable[[Sequence[Event], Sequence[float | None]], None] | None):
    """The fold-in observer feeding ``tracker`` (None when tracking is off)."""
    if tracker is None:
        return None

    def observe(events: Sequence[Event], stamps: Sequence[float | None]) -> None:
        now = time.time()
        for e, ts in zip(events, stamps, strict=True):
            tracker.observe(e.user, e.item, e.weight, e.recommendation_id,
                            now if ts is None else ts, now)

    return observe
