"""Ranking a user's vector into recommendations, one user or many at a time.

Every endpoint shares the same rules: ``banned`` item indices (the blacklist, the items the
user gave negative feedback, plus the user's known items when ``exclude_seen``) are never
returned; ``candidates`` (a whitelist), when
given, is all that may be returned; a missing vector means popular items, marked as a
fallback. The batch form scores blocks of users with one matrix product and gives the same
answers as calling the single form per user.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from . import ranking
from .modeltypes import Recommendations

if TYPE_CHECKING:
    from .model import Model, Pairs

__all__ = ["rank_popular", "rank_scores", "rank_vector", "recommend_many"]

Idx = npt.NDArray[np.intp]
EMPTY: Idx = np.empty(0, dtype=np.intp)

# Score at most this many (user, item) cells at once in a batch: 16 MiB of float32.
_BLOCK_CELLS = 1 << 22


def check_n(n: int) -> None:
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")


def result(
    model: Model, idx: Idx, scores: npt.NDArray[np.floating], fallback: str | None = None
) -> Recommendations:
    return Recommendations(
        [model.item_ids[i] for i in idx.tolist()], [float(s) for s in scores.tolist()], fallback
    )


def rank_popular(
    model: Model, n: int, banned: Idx, candidates: Idx | None, fallback: str | None
) -> Recommendations:
    """The ``n`` most popular allowed items."""
    popularity = model.popularity
    if candidates is not None and _wide(model, candidates):
        allowed = np.zeros(len(popularity), dtype=bool)
        allowed[candidates] = True
        allowed[banned] = False
        order = model.popular_order
        best = order[allowed[order]][:n]
        return result(model, best, popularity[best], fallback)
    if candidates is not None:
        pool = np.setdiff1d(candidates, banned)
        best = pool[ranking.top_n(np.asarray(popularity[pool], dtype=np.float64), n)]
        return result(model, best, popularity[best], fallback)
    # Walk the model's precomputed order: O(n + banned), not a pass over every item.
    order = model.popular_order[: n + len(banned)]
    best = order[~np.isin(order, banned)][:n]
    return result(model, best, popularity[best], fallback)


def rank_vector(
    model: Model,
    vector: npt.NDArray[np.floating] | None,
    n: int,
    banned: Idx,
    candidates: Idx | None,
) -> Recommendations:
    """The ``n`` best allowed items for a user vector; popular ones when there is none (or it
    is all zeros, which scores every item alike: the fold-in's answer to a system it could
    not solve)."""
    if vector is None or not np.any(vector):
        return rank_popular(model, n, banned, candidates, "popular")
    if candidates is None or _wide(model, candidates):
        scores = np.asarray(model.item_factors @ vector, dtype=np.float32)
        return rank_scores(model, scores, n, banned, candidates)
    candidates = np.setdiff1d(candidates, banned)
    scores = np.asarray(model.item_factors[candidates] @ vector, dtype=np.float32)
    best = ranking.top_n(scores, n)
    return result(model, candidates[best], scores[best])


def _wide(model: Model, candidates: Idx) -> bool:
    """Whether a whitelist is wide enough (a category filter, say) that scoring every item and
    masking the rest beats copying the whitelist's factors and a set difference."""
    return len(candidates) * 8 > len(model.item_ids)


def _only(scores: npt.NDArray[np.float32], candidates: Idx) -> npt.NDArray[np.float32]:
    """``scores`` with everything outside ``candidates`` at -inf (a new array)."""
    out = np.full(len(scores), -np.inf, dtype=np.float32)
    out[candidates] = scores[candidates]
    return out


def rank_scores(
    model: Model,
    scores: npt.NDArray[np.float32] | None,
    n: int,
    banned: Idx,
    candidates: Idx | None,
) -> Recommendations:
    """The ``n`` best allowed items by precomputed ``scores`` (shape ``(items,)``, modified in
    place); popular ones when there are none."""
    if scores is None:
        return rank_popular(model, n, banned, candidates, "popular")
    if candidates is not None and _wide(model, candidates):
        scores, candidates = _only(scores, candidates), None
    if candidates is None:
        ranking.ban(scores, banned)
        best = ranking.top_n(scores, n)
        return result(model, best, scores[best])
    candidates = np.setdiff1d(candidates, banned)
    best = ranking.top_n(scores[candidates], n)
    return result(model, candidates[best], scores[candidates[best]])


def recommend_many(
    model: Model,
    users: Sequence[str],
    n: int,
    exclude_seen: bool,
    candidates: Idx | None,
    blocked: Idx,
    extra: Mapping[str, Pairs],
) -> dict[str, Recommendations]:
    """:meth:`Model.recommend` for each distinct user, keyed by user, in input order.

    ``candidates`` (the whitelist, None: every item) and ``blocked`` (never returned) are
    model item indices, sorted and unique."""
    check_n(n)
    done: dict[str, Recommendations] = {}
    pending: list[tuple[str, npt.NDArray[np.floating], Idx]] = []
    for user in dict.fromkeys(users):
        vector, seen, rejected = model.vector_and_seen(user, extra.get(user))
        banned_own = seen if exclude_seen else rejected  # negative feedback: always banned
        if vector is None or not np.any(vector):
            done[user] = rank_popular(model, n, np.union1d(blocked, banned_own), candidates,
                                      "popular")
        else:
            pending.append((user, vector, banned_own))

    # Columns to score: every item, or the whitelist minus the blacklist.
    cols = None if candidates is None else np.setdiff1d(candidates, blocked)
    factors = model.item_factors if cols is None else model.item_factors[cols]
    position = None
    if cols is not None:
        position = np.full(len(model.item_ids), -1, dtype=np.intp)
        position[cols] = np.arange(len(cols))
    block = max(1, _BLOCK_CELLS // max(1, factors.shape[0]))
    for start in range(0, len(pending), block):
        chunk = pending[start : start + block]
        scores = np.asarray(np.stack([v for _, v, _ in chunk]) @ factors.T, dtype=np.float32)
        if cols is None and len(blocked):
            scores[:, blocked] = -np.inf
        for r, (_, _, own) in enumerate(chunk):
            at = own if position is None else position[own]
            scores[r, at[at >= 0]] = -np.inf
        for r, best in enumerate(ranking.top_n_rows(scores, n)):
            idx = best if cols is None else cols[best]
            done[chunk[r][0]] = result(model, idx, scores[r, best])
    return {user: done[user] for user in dict.fromkeys(users)}
