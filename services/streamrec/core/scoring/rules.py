"""Ranking scores into a top ``n`` under the rules every endpoint shares, over plain arrays.

``banned`` item indices (the blacklist, the items the user gave negative feedback, plus the
user's known items when ``exclude_seen``) are never returned; ``candidates`` (a whitelist,
sorted and unique), when given, is all that may be returned. Each helper returns the chosen
item indices (intp) and their scores, best first; the model turns indices into ids and decides
the fallback (a user with no vector or no scores gets :func:`rank_popular`). The batch form
scores blocks of users with one matrix product and gives the same answers as
:func:`rank_vector` per user.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from . import ranking

__all__ = ["EMPTY", "Ranked", "check_n", "rank_many", "rank_popular", "rank_scores", "rank_vector"]

Idx = npt.NDArray[np.intp]
F32 = npt.NDArray[np.float32]
Ranked = tuple[Idx, npt.NDArray[np.floating]]
EMPTY: Idx = np.empty(0, dtype=np.intp)

# Score at most this many (user, item) cells at once in a batch: 16 MiB of float32.
_BLOCK_CELLS = 1 << 22


def check_n(n: int) -> None:
    """``ValueError`` for a negative ``n``."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")


def _wide(items: int, candidates: Idx) -> bool:
    """Whether a whitelist is wide enough (a category filter, say) that scoring every item and
    masking the rest beats copying the whitelist's factors and a set difference."""
    return len(candidates) * 8 > items


def rank_popular(popularity: npt.NDArray[np.floating], order: Idx, n: int, banned: Idx,
                 candidates: Idx | None) -> Ranked:
    """The ``n`` most popular allowed items; ``order`` is every item index by decreasing
    ``popularity`` (shape ``(items,)`` each)."""
    if candidates is not None and _wide(len(popularity), candidates):
        allowed = np.zeros(len(popularity), dtype=bool)
        allowed[candidates] = True
        allowed[banned] = False
        best = order[allowed[order]][:n]
        return best, popularity[best]
    if candidates is not None:
        pool = np.setdiff1d(candidates, banned)
        best = pool[ranking.top_n(np.asarray(popularity[pool], dtype=np.float64), n)]
        return best, popularity[best]
    # Walk the precomputed order: O(n + banned), not a pass over every item.
    head = order[: n + len(banned)]
    best = head[~np.isin(head, banned)][:n]
    return best, popularity[best]


def rank_vector(item_factors: npt.NDArray[np.floating], vector: npt.NDArray[np.floating],
                n: int, banned: Idx, candidates: Idx | None) -> Ranked:
    """The ``n`` best allowed items for a user vector (``(f,)``) against ``item_factors``
    (``(items, f)``)."""
    if candidates is None or _wide(len(item_factors), candidates):
        scores = np.asarray(item_factors @ vector, dtype=np.float32)
        return rank_scores(scores, n, banned, candidates)
    candidates = np.setdiff1d(candidates, banned)
    scores = np.asarray(item_factors[candidates] @ vector, dtype=np.float32)
    best = ranking.top_n(scores, n)
    return candidates[best], scores[best]


def _only(scores: F32, candidates: Idx) -> F32:
    """``scores`` with everything outside ``candidates`` at -inf (a new array)."""
    out = np.full(len(scores), -np.inf, dtype=np.float32)
    out[candidates] = scores[candidates]
    return out


def rank_scores(scores: F32, n: int, banned: Idx, candidates: Idx | None) -> Ranked:
    """The ``n`` best allowed items by precomputed ``scores`` (float32, shape ``(items,)``,
    modified in place)."""
    if candidates is not None and _wide(len(scores), candidates):
        scores, candidates = _only(scores, candidates), None
    if candidates is None:
        ranking.ban(scores, banned)
        best = ranking.top_n(scores, n)
        return best, scores[best]
    candidates = np.setdiff1d(candidates, banned)
    best = ranking.top_n(scores[candidates], n)
    return candidates[best], scores[candidates[best]]


def rank_many(
    item_factors: npt.NDArray[np.floating],
    vectors: Sequence[npt.NDArray[np.floating]],
    own_banned: Sequence[Idx],
    n: int,
    candidates: Idx | None,
    blocked: Idx,
) -> list[Ranked]:
    """:func:`rank_vector` for many users at once: ``vectors[k]`` is user k's vector and
    ``own_banned[k]`` what only they may not get; ``blocked`` nobody gets. ``candidates``
    (None: every item) and ``blocked`` are sorted and unique."""
    # Columns to score: every item, or the whitelist minus the blacklist.
    cols = None if candidates is None else np.setdiff1d(candidates, blocked)
    factors = item_factors if cols is None else item_factors[cols]
    position = None
    if cols is not None:
        position = np.full(len(item_factors), -1, dtype=np.intp)
        position[cols] = np.arange(len(cols))
    out: list[Ranked] = []
    block = max(1, _BLOCK_CELLS // max(1, factors.shape[0]))
    for start in range(0, len(vectors), block):
        chunk = range(start, min(start + block, len(vectors)))
        scores = np.asarray(np.stack([vectors[k] for k in chunk]) @ factors.T, dtype=np.float32)
        if cols is None and len(blocked):
            scores[:, blocked] = -np.inf
        for r, k in enumerate(chunk):
            own = own_banned[k]
            at = own if position is None else position[own]
            scores[r, at[at >= 0]] = -np.inf
        for r, best in enumerate(ranking.top_n_rows(scores, n)):
            out.append((best if cols is None else cols[best], scores[r, best]))
    return out
