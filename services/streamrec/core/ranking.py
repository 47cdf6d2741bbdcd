"""Top-n selection over score vectors, with the exclusions every endpoint needs.

Scoring is a dot product; what takes care is choosing the best n without sorting a million
items, leaving out what must not be shown (banned items are set to -inf and never returned),
and staying deterministic so replicas agree: equal scores rank by item index.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ban", "top_n", "top_n_rows"]

Scores = npt.NDArray[np.floating]
Indices = npt.NDArray[np.intp]


def top_n(scores: Scores, n: int) -> Indices:
    """Positions of the ``n`` best finite scores, best first (ties: lower position first)."""
    k = min(n, len(scores))
    if k <= 0:
        return np.empty(0, dtype=np.intp)
    # argpartition is O(len); only the k survivors get sorted.
    whole = k == len(scores)
    candidates = np.arange(k) if whole else np.argpartition(-scores, k - 1)[:k]
    candidates = candidates[np.isfinite(scores[candidates])]
    order = np.lexsort((candidates, -scores[candidates]))
    return candidates[order].astype(np.intp, copy=False)


def top_n_rows(scores: Scores, n: int) -> list[Indices]:
    """:func:`top_n` for every row of a 2-d score matrix, vectorised."""
    rows, cols = scores.shape
    k = min(n, cols)
    if k <= 0 or rows == 0:
        return [np.empty(0, dtype=np.intp) for _ in range(rows)]
    if k < cols:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(cols), (rows, cols))
    picked = np.take_along_axis(scores, part, axis=1)
    # Sort each row by (-score, position): lexsort's last key is the primary one.
    order = np.lexsort((part, -picked), axis=1)
    part = np.take_along_axis(part, order, axis=1)
    picked = np.take_along_axis(picked, order, axis=1)
    return [
        row[np.isfinite(vals)].astype(np.intp, copy=False)
        for row, vals in zip(part, picked, strict=True)
    ]


def ban(scores: Scores, positions: npt.ArrayLike) -> None:
    """Set ``scores[positions]`` to -inf in place so :func:`top_n` never returns them."""
    scores[np.asarray(positions, dtype=np.intp)] = -np.inf
