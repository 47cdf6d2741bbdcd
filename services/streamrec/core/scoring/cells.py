"""The window's cells as the rating rows of an external ALS engine (Spark MLlib).

Spark's ``ALS(implicitPrefs=True)`` reads one ``(user, item, rating)`` row per observation and
does **not** merge duplicate rows: two half-weight rows of one cell fit differently from one
full-weight row (measured: factors moved by up to 0.10). So the rows handed to it are the
window's cells, aggregated exactly as the window aggregates them (``SlidingWindow.build``:
repeated events add up, a negative event cancels the pair's earlier ones, optional decay),
one row per stored entry of the users × items matrix.

Spark then fits confidence ``1 + alpha·|r|`` and preference ``[r > 0]``
(``ALS.computeFactors``): the same Hu–Koren–Volinsky system as ours (``foldin.py``), except
for the per-cell cap, which Spark does not know. The rating is therefore clipped to
``±(cap − 1)/alpha``, so ``1 + alpha·|r|`` is exactly ``min(1 + alpha·|w|, cap)`` and the sign
(the preference) is the net weight's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..domains import MAX_CONFIDENCE

__all__ = ["RatingCells", "rating_cells"]


@dataclass(frozen=True, eq=False)
class RatingCells:
    """One row per (user, item) cell: ``users``/``items`` int32 row and column indices of the
    window matrix, ``ratings`` float32 signed ratings for an engine with the model's alpha;
    ``capped`` counts the cells whose confidence hit the cap."""

    users: npt.NDArray[np.int32]
    items: npt.NDArray[np.int32]
    ratings: npt.NDArray[np.float32]
    capped: int

    def __len__(self) -> int:
        return len(self.users)


def rating_cells(user_items: sp.csr_matrix, alpha: float,
                 cap: float = MAX_CONFIDENCE) -> RatingCells:
    """The stored entries of ``user_items`` (the window's users × items CSR of net weights,
    ``WindowMatrix.user_items``) as rating rows, each cell once, row-major.

    A net weight ``w`` becomes ``sign(w)·min(|w|, (cap − 1)/alpha)``; a cell of net weight 0
    stays 0 (preference 0, confidence 1: it adds nothing, here and in the fold-in).
    Raises ``ValueError`` for ``alpha <= 0`` or ``cap < 1``.
    """
    if not alpha > 0.0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    if not cap >= 1.0:
        raise ValueError(f"the confidence cap must be >= 1, got {cap}")
    csr = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
    csr.sum_duplicates()  # a hand-made CSR may repeat a cell; the window's never does
    coo = csr.tocoo()
    weights = np.asarray(coo.data, dtype=np.float64)
    limit = (cap - 1.0) / alpha
    ratings = np.clip(weights, -limit, limit)
    capped = int(np.count_nonzero(np.abs(weights) >= limit)) if limit > 0 else len(weights)
    return RatingCells(users=coo.row.astype(np.int32), items=coo.col.astype(np.int32),
                       ratings=ratings.astype(np.float32), capped=capped)
