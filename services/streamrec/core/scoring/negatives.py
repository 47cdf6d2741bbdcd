"""Negative feedback only ever lowers scores; a user with no positive signal gets popular items.

A "no" (a net weight <= 0, ``feedback.aggregate``) enters both scorers as the models define it:
ALS reads it as preference 0 with confidence ``1 + alpha·|w|`` (implicit's negative entries),
and the item-item scores ``Σ_i r_i B[i, :]`` take its negative weight. Neither is monotone in
a "no" for the *other* items:

- in the ALS fold-in, by Sherman-Morrison, a "no" on ``d`` changes item ``j``'s score by
  ``-k (y_jᵀA⁻¹y_d)(y_dᵀx)`` with ``k > 0``: items on the far side of ``d`` go *up*;
- in item-item, ``r_d < 0`` times a negative ``B[d, j]`` raises every item unlike ``d``;
- the blend divides each score vector by its standard deviation, which a "no" changes too.

A user whose only signal was one dislike got the items most unlike the disliked one, with
``fallback: null`` (issue 23). The rule here, applied to whatever a scorer computes
(`bounded`): each item's score is at most its score from the user's *positive* history alone
(the same history without the items whose net weight is <= 0), so negative feedback can lower a
score and never raise one; the rejected items themselves are banned by the ranker. A history
with no positive item scores nothing, and the caller falls back to popular items minus the
rejected ones (marked ``fallback: "popular"``). A history without negatives costs one scoring,
as before; one with both costs two.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

__all__ = ["bounded"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Idx = npt.NDArray[np.intp]


def bounded(items: Idx, weights: F64, full: Callable[[], F32 | None],
            positive: Callable[[Idx, F64], F32 | None]) -> F32 | None:
    """The scores of a history in which negative feedback only lowers scores.

    Parameters
    ----------
    items, weights : ndarray
        The user's aggregated history: distinct item indices (intp) and their net weights
        (float64, shape ``(k,)``; <= 0 is negative feedback, ``feedback.aggregate``).
    full : callable
        The scorer's scores (float32, shape ``(n_items,)``) for the whole history, negative
        feedback included; called only when the history has a positive item.
    positive : callable
        The same scorer for ``(items, weights)`` restricted to the positive items.

    Returns
    -------
    ndarray of float32, shape ``(n_items,)``, or None
        ``full()`` when no weight is negative; ``min(full(), positive(...))`` item by item
        when some are; None when no weight is positive (the popular fallback).
    """
    keep = np.asarray(weights) > 0
    if keep.all():
        return full()
    if not keep.any():
        return None
    with_no = full()
    without = positive(items[keep], weights[keep])
    if with_no is None or without is None:
        return without if with_no is None else with_no
    return np.minimum(with_no, without)
