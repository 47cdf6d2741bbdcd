"""What a window hands out: the matrix to fit, and its contents to snapshot and resume from.

Both are plain, immutable views built by :class:`streamrec.core.window.sliding.SlidingWindow`; they
share nothing with the ring buffer, so the trainer can fit or write them on another thread.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..events.event import Event

__all__ = ["WindowContents", "WindowMatrix"]


@dataclass(frozen=True, eq=False)
class WindowMatrix:
    """The window as a matrix, ready to fit.

    ``user_items[u, i]`` is the summed (and, with decay, decayed) weight of user
    ``user_ids[u]`` on item ``item_ids[i]``; ``popularity[i]`` counts the item's events
    (decayed the same way). Only ids present in the window appear, densely numbered.
    """

    user_items: sp.csr_matrix
    user_ids: list[str]
    item_ids: list[str]
    popularity: npt.NDArray[np.float64]
    events: int


@dataclass(frozen=True, eq=False)
class WindowContents:
    """The window's events in arrival order, as plain arrays: enough to resume exactly.

    ``users[k]``/``items[k]`` index ``user_ids``/``item_ids``; ``ts[k]`` is NaN for an event
    without a timestamp; ``event_ids[k]`` is the event's client id or None (``event_ids`` is
    None when no event has one).
    """

    users: npt.NDArray[np.int32]
    items: npt.NDArray[np.int32]
    weights: npt.NDArray[np.float64]
    ts: npt.NDArray[np.float64]
    user_ids: list[str]
    item_ids: list[str]
    total_appended: int
    capacity: int
    decay_half_life: float | None = None
    event_ids: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.users)

    def events(self) -> Iterator[Event]:
        """The events, oldest first."""
        eids = self.event_ids if self.event_ids is not None else [None] * len(self.users)
        for u, i, w, t, e in zip(
            self.users.tolist(),
            self.items.tolist(),
            self.weights.tolist(),
            self.ts.tolist(),
            eids,
            strict=True,
        ):
            yield Event(self.user_ids[u], self.item_ids[i], w, None if math.isnan(t) else t,
                        event_id=e)
