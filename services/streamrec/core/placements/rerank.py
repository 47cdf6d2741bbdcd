"""A placement's list from one score vector: filter, boosts, rotation, promotions, exploration,
diversity, in that order.

`PlacementRanker` takes the scores every item got from the blend (float32, shape
``(items,)``; the model's ranking step hands them over, ``Model.recommend(ranker=...)``) and
returns the list with a mark per item:

1. **filter**: items outside the placement's filter (or banned: seen, hidden, expired,
   erased, negative feedback) are out;
2. **boosts**: ``s' = m·s`` for ``s > 0`` and ``s / m`` otherwise (so a multiplier above 1
   always lifts), then ``+ a``; ``m`` and ``a`` are the product and sum of the boosts whose
   condition holds for the item (``masks.py``);
3. **rotation**: an item shown to the user within the window is lowered by ``1 − factor`` of
   the score range: ``s' = s − (1 − factor)·(max − min)`` over the finite scores (`demote`):
   sign-blind, unlike a multiplication; ``factor = 0`` puts it at or below every item not shown;
4. **promotions**: ``k_p = max(1, round(share·n))`` slots go to the best items of the
   promotion pool, marked ``promoted``;
5. **exploration**: ``k_e = max(1, round(share·n))`` slots go to items of the exploration pool:
   among its ``EXPLORE_POOL`` best-scored, each draws ``θ ~ Beta(1 + clicks, 1 + shown −
   clicks)`` from its online counts and the highest draws win (Thompson sampling; Chapelle &
   Li 2011), marked ``exploration``;
6. **diversity** over the rest: at most ``k`` per category (greedy in score order, counting
   the promoted and explored items; an item in several categories counts in each), or MMR
   (Carbonell & Goldstein 1998): repeatedly take ``argmax λ·rel(i) − (1 − λ)·max_j cos(i, j)``
   with ``rel`` the score scaled to [0, 1] over the pool and ``cos`` over the ALS item
   factors. When the rule leaves too few, the best of the items it skipped fill the list, so
   a list is exactly ``n`` long whenever ``n`` items pass the filter.

Promoted items take evenly spread positions from the top (0, n/k_p, ...), explored ones evenly
spread positions from the bottom; the rest keep their order. Pure: no I/O; the caller passes
the random source.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from ..scoring import ranking
from .masks import PlacementArrays
from .spec import Placement, Promotion

__all__ = ["EXPLORE_POOL", "MARKS", "PlacementRanker", "Placed", "demote"]

F32 = npt.NDArray[np.float32]
Idx = npt.NDArray[np.intp]
#: Thompson sampling draws among this many of the best-scored exploration items.
EXPLORE_POOL = 50
#: Over-fetch for diversity: it picks from the best ``max(4 n, n + 50)``.
_POOL_FACTOR, _POOL_EXTRA = 4, 50
MARKS = ("promoted", "exploration")


class Placed(NamedTuple):
    """The list: item indices, their scores after boosts and rotation, and a mark each
    (``promoted``, ``exploration`` or None)."""

    items: Idx
    scores: F32
    marks: list[str | None]


def demote(scores: F32, rows: Idx, factor: float) -> None:
    """In place: ``scores[rows]`` lowered by ``(1 − factor)·(max − min)`` of the finite scores
    (-inf stays -inf)."""
    high = float(scores.max())
    if not np.isfinite(high):
        return
    low = float(np.min(scores, where=scores > -np.inf, initial=np.inf))
    scores[rows] -= np.float32((1.0 - factor) * (high - low))


def _slots(share: float, n: int) -> int:
    return 0 if n <= 0 else min(n, max(1, round(share * n)))


def _spread(k: int, length: int, from_end: bool, taken: set[int]) -> list[int]:
    """``k`` free positions of ``0..length-1`` spread evenly (from the top or the bottom)."""
    out: list[int] = []
    for j in range(k):
        want = (length * j) // max(k, 1)
        pos = length - 1 - want if from_end else want
        step = -1 if from_end else 1
        while pos in taken or pos in out:
            pos += step
            if not 0 <= pos < length:
                step, pos = -step, (length - 1 if from_end else 0)
        out.append(pos)
    return out


class PlacementRanker:
    """One request's placement step (see the module docstring).

    ``shown``: item rows shown to the user within the rotation window; ``categories``: an
    item row's categories (diversity); ``factors``: the ALS item factors ``(items, f)`` (MMR);
    ``counts``: an item row -> (times shown in exploration slots, clicks on them) (Thompson
    sampling); ``rng``: the random source of the draws.
    """

    def __init__(self, placement: Placement, arrays: PlacementArrays, *, shown: Idx | None = None,
                 categories: Callable[[int], Sequence[str]] | None = None,
                 factors: npt.NDArray[np.floating] | None = None,
                 counts: Callable[[Sequence[int]], Mapping[int, tuple[int, int]]] | None = None,
                 rng: random.Random | None = None) -> None:
        self.placement, self.arrays = placement, arrays
        self.shown, self.categories, self.factors = shown, categories, factors
        self.counts, self.rng = counts, rng or random.Random()

    def __call__(self, scores: F32, banned: Idx, candidates: Idx | None, n: int) -> Placed:
        """The list of ``n`` from ``scores`` (float32, ``(items,)``, modified in place)."""
        s = self._adjusted(scores, banned, candidates)
        chosen: set[int] = set()
        promoted = self._best_of(s, self.arrays.promoted, self.placement.promotion, n, chosen)
        explored = self._explore(s, n - len(promoted), chosen)
        organic = self._organic(s, n - len(promoted) - len(explored), chosen)
        length = len(promoted) + len(explored) + len(organic)
        slots: list[tuple[int, str | None] | None] = [None] * length
        taken: set[int] = set()
        for pos, row in zip(_spread(len(promoted), length, False, taken), promoted, strict=True):
            slots[pos] = (row, "promoted")
            taken.add(pos)
        for pos, row in zip(_spread(len(explored), length, True, taken), explored, strict=True):
            slots[pos] = (row, "exploration")
            taken.add(pos)
        rest = iter(organic)
        final = [slot if slot is not None else (next(rest), None) for slot in slots]
        items = np.asarray([r for r, _ in final], dtype=np.intp)
        return Placed(items, s[items], [m for _, m in final])

    def _adjusted(self, scores: F32, banned: Idx, candidates: Idx | None) -> F32:
        s = scores
        if candidates is not None:
            keep = np.zeros(len(s), dtype=bool)
            keep[candidates] = True
            s[~keep] = -np.inf
        ranking.ban(s, banned)
        a = self.arrays
        if a.floor is not None:
            s += a.floor  # 0 where the filter holds, -inf elsewhere: one pass
        if a.boosted is not None and len(a.boosted):  # only the rows a boost applies to
            v = s[a.boosted]
            if a.multiply is not None:
                m = a.multiply[a.boosted]
                v = np.where(v > 0, v * m, v / m)  # -inf stays -inf
            if a.add is not None:
                v = v + a.add[a.boosted]
            s[a.boosted] = v
        rotation = self.placement.rotation
        if rotation is not None and self.shown is not None and len(self.shown):
            demote(s, self.shown, rotation.factor)
        return s

    def _best_of(self, s: F32, pool: npt.NDArray[np.bool_] | None, rule: Promotion | None,
                 n: int, chosen: set[int]) -> list[int]:
        if pool is None or rule is None or n <= 0:
            return []
        k = _slots(rule.share, n)
        only = np.where(pool, s, -np.inf).astype(np.float32, copy=False)
        best = [int(r) for r in ranking.top_n(only, k)]
        chosen.update(best)
        return best

    def _explore(self, s: F32, n: int, chosen: set[int]) -> list[int]:
        e, pool = self.placement.exploration, self.arrays.explore
        if e is None or pool is None or n <= 0:
            return []
        k = _slots(e.share, n)
        only = np.where(pool, s, -np.inf).astype(np.float32, copy=False)
        if chosen:
            only[list(chosen)] = -np.inf
        top = [int(r) for r in ranking.top_n(only, EXPLORE_POOL)]
        counts = self.counts(top) if self.counts is not None else {}
        draws = []
        for r in top:
            shown, clicks = counts.get(r, (0, 0))
            draws.append((self.rng.betavariate(1 + clicks, 1 + max(shown - clicks, 0)), r))
        picked = [r for _, r in sorted(draws, key=lambda d: (-d[0], d[1]))[:k]]
        chosen.update(picked)
        return picked

    def _organic(self, s: F32, n: int, chosen: set[int]) -> list[int]:
        if n <= 0:
            return []
        if chosen:
            s = s.copy()
            s[list(chosen)] = -np.inf
        d = self.placement.diversity
        if d is None:
            return [int(r) for r in ranking.top_n(s, n)]
        pool = [int(r) for r in ranking.top_n(s, max(_POOL_FACTOR * n, n + _POOL_EXTRA))]
        if d.max_per_category is not None:
            picked = self._capped(pool, n, d.max_per_category, chosen)
        else:
            picked = self._mmr(pool, s, n, float(d.mmr_lambda or 0.0))
        if len(picked) < n:  # the rule left too few: the best of the rest fill the list
            taken = set(picked)
            picked += [r for r in pool if r not in taken][: n - len(picked)]
        return picked

    def _capped(self, pool: list[int], n: int, cap: int, chosen: set[int]) -> list[int]:
        of = self.categories or (lambda r: ())
        used: dict[str, int] = {}
        for r in chosen:
            for c in of(r):
                used[c] = used.get(c, 0) + 1
        picked = []
        for r in pool:
            cats = of(r)
            if any(used.get(c, 0) >= cap for c in cats):
                continue
            picked.append(r)
            for c in cats:
                used[c] = used.get(c, 0) + 1
            if len(picked) == n:
                break
        return picked

    def _mmr(self, pool: list[int], s: F32, n: int, lam: float) -> list[int]:
        if self.factors is None or not pool:
            return pool[:n]
        rel = s[pool].astype(np.float64)
        span = rel.max() - rel.min()
        rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
        f = np.asarray(self.factors[pool], dtype=np.float64)
        norms = np.linalg.norm(f, axis=1)
        f = f / np.where(norms > 0, norms, 1.0)[:, None]
        sim = f @ f.T
        picked: list[int] = []
        best_sim = np.full(len(pool), -np.inf)
        free = np.ones(len(pool), dtype=bool)
        for _ in range(min(n, len(pool))):
            penalty = np.where(np.isfinite(best_sim), best_sim, 0.0)
            value = np.where(free, lam * rel - (1 - lam) * penalty, -np.inf)
            k = int(np.argmax(value))
            picked.append(pool[k])
            free[k] = False
            best_sim = np.maximum(best_sim, sim[k])
        return picked
