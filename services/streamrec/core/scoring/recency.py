"""Recency: a user's events weighted by how recent they are, and the ordered history behind it.

The next item a user takes depends most on what they took last (see docs/evaluation.md for the
measurements). A user's history is their events oldest first; event ``j`` of ``m`` gets

    r_j = w_j * exp(-decay * (m - 1 - j)) * 2 ** (-(t_newest - t_j) / half_life)

so the newest event keeps its weight, each step back in *order* costs a factor ``exp(-decay)``
and, with ``half_life`` set, each ``half_life`` seconds of *time* before the user's newest event
halves it. ``decay=0`` and ``half_life=None`` give the plain summed weights. Events without a
timestamp (NaN) are not decayed by time. Repeated items are summed afterwards by the scorers, so
an item taken often and lately weighs most.

:class:`History` is the window's events grouped per user in arrival order, as CSR-like arrays
(``indptr`` per model user row; item indices, weights, timestamps), capped to the newest
``cap`` events per user. It goes into the snapshot so every scorer can weigh by recency; the
set of seen items stays the uncapped ``user_items`` matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["History", "recency_weights"]

F64 = npt.NDArray[np.float64]
Idx = npt.NDArray[np.intp]


def recency_weights(
    weights: npt.ArrayLike,
    ts: npt.ArrayLike | None = None,
    decay: float = 0.0,
    half_life: float | None = None,
) -> F64:
    """Recency-weighted ``weights`` of one user's events given oldest first (shape ``(m,)``).

    ``ts`` are Unix seconds (NaN: unknown), needed only with ``half_life`` (seconds).
    Raises ``ValueError`` for a negative ``decay``, a ``half_life`` that is not > 0, or
    arrays of different lengths.
    """
    if not (math.isfinite(decay) and decay >= 0.0):
        raise ValueError(f"recency decay must be a finite number >= 0, got {decay}")
    if half_life is not None and not (math.isfinite(half_life) and half_life > 0.0):
        raise ValueError(f"recency half-life must be a number > 0, got {half_life}")
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    m = len(w)
    out = w.copy()
    if decay > 0.0 and m:
        out *= np.exp(-decay * np.arange(m - 1, -1, -1, dtype=np.float64))
    if half_life is not None and ts is not None and m:
        t = np.asarray(ts, dtype=np.float64).reshape(-1)
        if len(t) != m:
            raise ValueError(f"{m} weights but {len(t)} timestamps")
        if not np.all(np.isnan(t)):
            age = np.nanmax(t) - t
            out *= np.where(np.isnan(age), 1.0, np.exp2(-np.maximum(age, 0.0) / half_life))
    return out


@dataclass(frozen=True, eq=False)
class History:
    """Per-user events in arrival order: row ``u`` is ``items[indptr[u]:indptr[u + 1]]``.

    ``indptr``: int64, shape ``(users + 1,)``; ``items``: int32 item indices; ``weights``:
    float32; ``ts``: seconds after ``ts_base`` (NaN: unknown), float64 in memory, float32 in a
    snapshot of format 8 (``ts_base`` then the earliest timestamp: 4 bytes less per event, a
    resolution of 0.15 s over a 30-day span, what recency weighs by the hour). Arrays may be
    memory-mapped.
    """

    indptr: npt.NDArray[np.integer]
    items: npt.NDArray[np.integer]
    weights: npt.NDArray[np.floating]
    ts: npt.NDArray[np.floating]
    ts_base: float = 0.0

    def __post_init__(self) -> None:
        n = len(self.items)
        if len(self.indptr) < 1 or int(self.indptr[0]) != 0 or int(self.indptr[-1]) != n:
            raise ValueError("history indptr does not cover its events")
        if len(self.weights) != n or len(self.ts) != n:
            raise ValueError("history arrays have different lengths")

    @property
    def users(self) -> int:
        return len(self.indptr) - 1

    def row(self, user: int) -> tuple[Idx, F64, F64]:
        """Item indices, weights and timestamps of user row ``user``, oldest first."""
        start, end = int(self.indptr[user]), int(self.indptr[user + 1])
        return (
            np.asarray(self.items[start:end], dtype=np.intp),
            np.asarray(self.weights[start:end], dtype=np.float64),
            np.asarray(self.ts[start:end], dtype=np.float64) + self.ts_base,
        )

    def compact_ts(self) -> tuple[npt.NDArray[np.float32], float]:
        """``ts`` as float32 seconds after a base (the earliest known timestamp; 0 when none),
        and that base: what a snapshot of format 8 stores (Unix seconds, NaN kept)."""
        t = np.asarray(self.ts, dtype=np.float64) + self.ts_base
        known = t[~np.isnan(t)]
        base = float(known.min()) if len(known) else 0.0
        return (t - base).astype(np.float32), base

    @classmethod
    def from_events(
        cls,
        rows: npt.ArrayLike,
        items: npt.ArrayLike,
        weights: npt.ArrayLike,
        ts: npt.ArrayLike,
        users: int,
        cap: int,
    ) -> History:
        """Group events given in arrival order by user row, keeping each user's newest ``cap``."""
        if cap < 1:
            raise ValueError(f"history cap must be >= 1, got {cap}")
        r = np.asarray(rows, dtype=np.intp).reshape(-1)
        order = np.argsort(r, kind="stable")  # stable: arrival order within a user
        counts = np.bincount(r, minlength=users)
        starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
        # Position of each sorted event from its user's newest: keep those < cap.
        from_newest = np.repeat(starts + counts, counts) - 1 - np.arange(len(r))
        keep = order[from_newest < cap]
        kept = np.minimum(counts, cap)
        indptr = np.concatenate(([0], np.cumsum(kept))).astype(np.int64)
        return cls(
            indptr=indptr,
            items=np.asarray(items, dtype=np.int32).reshape(-1)[keep],
            weights=np.asarray(weights, dtype=np.float32).reshape(-1)[keep],
            ts=np.asarray(ts, dtype=np.float64).reshape(-1)[keep],
        )
