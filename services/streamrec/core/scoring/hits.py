"""Hits: where one held-out item lands in a ranked list, and the ranking metrics of that.

The one definition of a hit, shared by the offline prequential replay
(``streamrec.evaluation``) and the serving replicas' online hit rate
(``streamrec.serving.online``), so that the two report the same thing. With exactly one
relevant item per list (the one the user takes next), recall@k is a hit indicator, nDCG@k is
``1/log2(rank+1)`` (Järvelin & Kekäläinen 2002, one relevant item: the ideal DCG is 1) and the
reciprocal rank is ``1/rank`` (0 when the item is not in the top k: MRR@k).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Hit", "hit_rank", "score"]


@dataclass(frozen=True)
class Hit:
    """How one top-k list did on one held-out item; all three values are in [0, 1]."""

    recall: float
    ndcg: float
    rr: float


def hit_rank(recommended: Sequence[str], item: str) -> int | None:
    """1-based position of ``item`` in the list; None when absent (a miss)."""
    for position, candidate in enumerate(recommended, 1):
        if candidate == item:
            return position
    return None


def score(recommended: Sequence[str], held_out: str, k: int) -> Hit:
    """Recall@k, nDCG@k and reciprocal rank (truncated at k) of ``held_out`` in the list.

    Raises nothing: an empty list or ``k <= 0`` is a miss."""
    rank = hit_rank(recommended[:k], held_out)
    if rank is None:
        return Hit(0.0, 0.0, 0.0)
    return Hit(1.0, 1.0 / math.log2(rank + 1), 1.0 / rank)
