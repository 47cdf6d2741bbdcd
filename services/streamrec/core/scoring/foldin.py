"""Fold-in: a user's vector from their items, against fixed item factors.

This is the implicit-ALS user step (Hu, Koren & Volinsky 2008) solved exactly for one user:

    x_u = (YᵀY + λI + Yᵀ(C_u − I)Y)⁻¹ Yᵀ C_u p(u)

where ``p(u)`` is 1 on the user's items with a positive net weight and 0 elsewhere, and
``C_u`` is diagonal with confidence ``c_ui = 1 + alpha * |w_ui|`` (w = the net weight, see
``feedback.aggregate``). A non-positive net weight is negative feedback: preference 0 with that
confidence, exactly what implicit does with a negative entry of its input matrix
(``implicit.cpu.als``: "Negative items can also be passed with a higher confidence value by
passing a negative value"; ``_least_squares`` negates the confidence and adds nothing to b).

**Regularization scaling.** implicit regularizes every user with the same λ
(``constant``). Spark MLlib's ALS (``ALS.computeFactors``) follows ALS-WR (Zhou, Wilkinson,
Schreiber & Pan 2008, "Large-scale Parallel Collaborative Filtering for the Netflix Prize"):
it scales λ by the user's number of items with positive preference, ``λ·n⁺`` (``positives``).
``fold_in(..., ridge_per_positive=λ)`` with a ``gram`` built without λ solves that system.

Only the user's rows of Y enter the correction, so with ``YᵀY + λI`` cached per model a fold-in
costs O(k·f² + f³) for k items: this is what lets a serving replica answer with a user's events
from the last second. It is the same computation as implicit's ``recalculate_user``
(``_least_squares``), in float64.

It cannot be poisoned: confidence is capped at ``domains.MAX_CONFIDENCE`` as in the fit, the
Cholesky solve that fails on a numerically singular system (it did from c ≈ 1e16 before the
cap) falls back to a least-squares solve, and a vector that is still not finite becomes zeros
(the caller then ranks by popularity). Any accepted history gives a finite vector.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.linalg

from ..domains import MAX_CONFIDENCE
from ..events.feedback import aggregate

__all__ = ["CONSTANT", "POSITIVES", "SCALINGS", "confidence", "contributions", "fold_in", "gram",
           "preference", "signed_confidence", "solve"]

F64 = npt.NDArray[np.float64]

#: λ the same for every user (implicit; Hu, Koren & Volinsky 2008).
CONSTANT = "constant"
#: λ·n⁺, n⁺ the user's count of items with positive preference (ALS-WR; Spark MLlib).
POSITIVES = "positives"
#: The regularization scalings a model may record (``ALS.meta()["regularization_scaling"]``).
SCALINGS = (CONSTANT, POSITIVES)


def gram(item_factors: npt.NDArray[np.floating], regularization: float) -> F64:
    """``YᵀY + λI`` in float64: the part of every user's system that does not depend on them."""
    y = np.asarray(item_factors, dtype=np.float64)
    result = y.T @ y
    result[np.diag_indices_from(result)] += regularization
    return result


def confidence(weights: npt.ArrayLike, alpha: float, cap: float = MAX_CONFIDENCE) -> F64:
    """Confidence ``min(1 + alpha * |w|, cap)``, the value fitted as C_ui (see docs/core.md);
    the sign of ``w`` only sets the preference (:func:`preference`)."""
    with np.errstate(over="ignore"):
        return np.minimum(1.0 + alpha * np.abs(np.asarray(weights, dtype=np.float64)), cap)


def preference(weights: npt.ArrayLike) -> F64:
    """``p_ui``: 1 for a positive net weight, 0 for negative feedback (net weight <= 0)."""
    return (np.asarray(weights, dtype=np.float64) > 0).astype(np.float64)


def signed_confidence(weights: npt.ArrayLike, alpha: float, cap: float = MAX_CONFIDENCE) -> F64:
    """What implicit's input matrix holds: the confidence, negated where the preference is 0
    (never 0 itself, which implicit would read as confidence 0)."""
    return np.where(preference(weights) > 0, 1.0, -1.0) * confidence(weights, alpha, cap)


_POSV = scipy.linalg.lapack.dposv


def solve(a: F64, b: F64) -> F64:
    """``a⁻¹ b`` for a symmetric positive (semi)definite ``a``; finite whenever a and b are.

    Cholesky first (exact and cheapest); on a numerically singular ``a`` the minimum-norm
    least-squares solution (SVD), which exists for every finite system.
    """
    # LAPACK's dposv: the Cholesky factorisation (potrf) and solve (potrs) that
    # cho_factor/cho_solve call, in one call without their Python wrappers (and without
    # solve(assume_a="pos")'s ill-conditioning warning, which would flood a replica's log on
    # extreme histories). info > 0: not positive definite; a non-finite a or b gives a
    # non-finite x; both fall through to the least-squares answer.
    _, x, info = _POSV(a, b, lower=0)
    if info == 0 and np.isfinite(x).all():
        return np.asarray(x, dtype=np.float64)
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return np.zeros_like(b)
    x = scipy.linalg.lstsq(a, b, cond=None, lapack_driver="gelsd")[0]
    return x if np.isfinite(x).all() else np.zeros_like(b)


def _system(
    item_factors: npt.NDArray[np.floating], gram_: F64, items: npt.NDArray[np.intp], conf: F64,
    pref: F64, ridge_per_positive: float = 0.0,
) -> tuple[F64, F64]:
    y_u = np.asarray(item_factors[items], dtype=np.float64)
    a = gram_ + (y_u.T * (conf - 1.0)) @ y_u
    if ridge_per_positive:
        a[np.diag_indices_from(a)] += ridge_per_positive * float(np.count_nonzero(pref))
    b = y_u.T @ (conf * pref)
    return a, b


def fold_in(
    item_factors: npt.NDArray[np.floating],
    gram_: F64,
    items: npt.ArrayLike,
    weights: npt.ArrayLike,
    alpha: float,
    cap: float = MAX_CONFIDENCE,
    ridge_per_positive: float = 0.0,
) -> npt.NDArray[np.float32]:
    """The user vector for ``items`` with ``weights`` (oldest first, aggregated by
    ``feedback.aggregate``); zeros if none.

    Zeros for no items match implicit, which leaves such a user at the origin. ``cap`` is the
    confidence cap the model was fitted with. ``ridge_per_positive`` adds that much times n⁺
    (the user's count of items with a positive net weight) to the diagonal: λ for ALS-WR
    (Spark), with ``gram_`` then built with λ = 0; 0 for implicit's constant λ, which
    ``gram_`` holds. The result is always finite (see `solve`).
    """
    idx, w = aggregate(items, weights)
    if len(idx) == 0:
        return np.zeros(gram_.shape[0], dtype=np.float32)
    a, b = _system(item_factors, gram_, idx, confidence(w, alpha, cap), preference(w),
                   ridge_per_positive)
    # A is symmetric positive definite (λ > 0, c ≥ 1): Cholesky is exact and cheapest.
    x = solve(a, b)
    with np.errstate(over="ignore"):
        out = x.astype(np.float32)
    return out if np.isfinite(out).all() else np.zeros_like(out)


def contributions(
    item_factors: npt.NDArray[np.floating],
    gram_: F64,
    items: npt.ArrayLike,
    weights: npt.ArrayLike,
    alpha: float,
    target: int,
    cap: float = MAX_CONFIDENCE,
    ridge_per_positive: float = 0.0,
) -> tuple[npt.NDArray[np.intp], F64]:
    """How much each of the user's items adds to their score for item ``target``.

    The score is ``y_tᵀ x_u = Σ_j (y_tᵀ A⁻¹ y_j) c_uj p_uj``; term j is item j's share
    (implicit's ``explain``, which also skips negative items: their share is 0). Returns the
    user's (aggregated) items and their shares. ``ridge_per_positive`` as in :func:`fold_in`.
    """
    idx, w = aggregate(items, weights)
    if len(idx) == 0:
        return idx, np.zeros(0)
    conf, pref = confidence(w, alpha, cap), preference(w)
    a, _ = _system(item_factors, gram_, idx, conf, pref, ridge_per_positive)
    weighted = solve(a, np.asarray(item_factors[target], dtype=np.float64))
    shares = (np.asarray(item_factors[idx], dtype=np.float64) @ weighted) * conf * pref
    return idx, np.where(np.isfinite(shares), shares, 0.0)
