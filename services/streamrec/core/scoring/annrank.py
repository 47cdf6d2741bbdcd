"""Top ``n`` for a user vector through the HNSW graph (``ann.py``), under the ranking rules.

The same contract as ``rules.rank_vector``: ``banned`` items are never returned, only
``candidates`` (sorted, unique) when given, and ``n`` items whenever ``n`` are allowed. How:

- a **selective whitelist** (at most an eighth of the catalogue, ``rules._wide``: a narrow
  category, an explicit ``items`` list) is scored exactly over its own factors: faster than
  the graph, and exact;
- otherwise the graph is asked for more than ``n`` (**over-fetch**: ``n`` plus the banned
  count, divided by the whitelist's share of the catalogue), the banned and the
  non-candidates are dropped, and the ask grows ×4 while fewer than ``n`` are left;
- when the ask would pass a quarter of the catalogue (thousands of hidden items, a
  user who has seen most of it), or the graph still leaves fewer than ``n``, the answer is
  the exact one (``rules.rank_vector``), so a request always gets its ``n``.

Scores are exact inner products; ties rank by item index, as the exact path does.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from .ann import ItemIndex
from .rules import Ranked, rank_vector

__all__ = ["rank_vector_ann"]

Idx = npt.NDArray[np.intp]

#: Ask the graph for at least this many, whatever ``n``: a few more cost nothing.
_MIN_ASK = 32
#: Past this share of the catalogue, exact scoring is cheaper than the graph.
_EXACT_SHARE = 4
#: Rounds of over-fetch (×4 each) before falling back to exact scoring.
_ROUNDS = 3


def rank_vector_ann(index: ItemIndex, item_factors: npt.NDArray[np.floating],
                    vector: npt.NDArray[np.floating], n: int, banned: Idx,
                    candidates: Idx | None) -> Ranked:
    """The ``n`` best allowed items for ``vector`` (``(f,)``) as ``rules.rank_vector``
    chooses them, found through ``index`` (the graph over ``item_factors``, ``(items, f)``)
    when that is faster: approximate (its recall is measured, docs/benchmarks.md)."""
    items = len(item_factors)
    if n <= 0:
        return rank_vector(item_factors, vector, n, banned, candidates)
    if candidates is not None and len(candidates) * 8 <= items:  # selective: exact subset
        return rank_vector(item_factors, vector, n, banned, candidates)
    banned = np.unique(banned) if len(banned) else banned
    share = 1.0 if candidates is None else max(len(candidates), 1) / items
    ask = max(_MIN_ASK, math.ceil((n + len(banned)) / share * 1.25))
    for _ in range(_ROUNDS):
        if ask * _EXACT_SHARE > items:
            break
        ids, scores = index.search(vector, ask)
        keep = ~np.isin(ids, banned, assume_unique=True) if len(banned) else \
            np.ones(len(ids), dtype=bool)
        if candidates is not None:
            keep &= np.isin(ids, candidates, assume_unique=True)
        ids, scores = ids[keep], scores[keep]
        if len(ids) >= n:
            order = np.lexsort((ids, -scores))[:n]
            return ids[order], scores[order]
        ask *= 4
    return rank_vector(item_factors, vector, n, banned, candidates)
