"""The model: factors plus what serving needs to use them, with no implicit object at serve time.

A :class:`Model` is plain arrays (possibly memory-mapped from a snapshot): user and item factors,
the id lists, the window's user x item matrix (a user's known items: filtered out of their
recommendations and the base of their fold-in) and item popularity (the cold-start answer).
Fitting lives in ``training.py`` and is imported lazily by :func:`fit`, so serving never loads
implicit. The math is in ``foldin.py``; ranking in ``ranking.py`` and ``recommend.py``.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from . import foldin, negatives, ranking
from .blend import PLAIN, ScoringParams, blend, weighted_history
from .domains import MAX_CONFIDENCE
from .ease import ItemItem
from .ids import IdIndex
from .itemfilter import Restriction
from .modeltypes import (
    ALSParams,
    FitInfo,
    ModelError,
    Recommendations,
    UnknownItem,
    UnknownUser,
)
from .recency import History
from .recommend import (
    EMPTY,
    check_n,
    rank_popular,
    rank_scores,
    rank_vector,
    recommend_many,
    result,
)
from .window import WindowMatrix

__all__ = [
    "ALSParams",
    "FitInfo",
    "Model",
    "ModelError",
    "Recommendations",
    "UnknownItem",
    "UnknownUser",
    "fit",
]

#: A user's events as (item id, weight) pairs, oldest first; a third element, when given, is
#: the event's timestamp in seconds (None: unknown), used by time-based recency.
Pairs = Sequence[tuple[str, float] | tuple[str, float, float | None]]
#: Fresh events mapped to the model: (item index, weight, ts in seconds or NaN).
FreshRows = list[tuple[int, float, float]]
Idx = npt.NDArray[np.intp]
F64 = npt.NDArray[np.float64]
#: Item rows per block when computing ``YᵀY`` (a 2 MB float64 block at 64 factors).
_GRAM_ROWS = 4096


def fit(matrix: WindowMatrix, params: ALSParams) -> Model:
    """Fit implicit ALS on a window matrix (see :func:`streamrec.core.training.fit_als`)."""
    from .training import fit_als  # implicit is heavy, and only the trainer needs it

    return fit_als(matrix, params)


class Model:
    """A fitted model over plain arrays; safe to share between threads once built.

    Built by :func:`fit`, or from (memory-mapped) arrays by the snapshot reader. Shapes are
    checked: a mismatch raises ``ModelError``.
    """

    def __init__(
        self,
        user_factors: npt.NDArray[np.float32],
        item_factors: npt.NDArray[np.float32],
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        user_items: sp.csr_matrix,
        popularity: F64,
        params: ALSParams,
        fit_info: FitInfo | None = None,
        history: History | None = None,
        item_item: ItemItem | None = None,
        scoring: ScoringParams | None = None,
    ) -> None:
        self.user_factors = user_factors
        self.item_factors = item_factors
        try:
            # Frozen array-backed indexes: mapped from a snapshot, they cost a worker nothing.
            self.user_ids = IdIndex.of(user_ids)
            self.item_ids = IdIndex.of(item_ids)
        except ValueError as exc:
            raise ModelError(f"user or item ids: {exc}") from None
        self.user_items = user_items
        self.popularity = popularity
        self.params = params
        self.fit_info = fit_info
        #: The window's events per user in order (recency), the item-item model, and how
        #: requests are scored (see ``blend.py``); a model without them scores as before.
        self.history = history
        self.item_item = item_item
        self.scoring = PLAIN if scoring is None else scoring
        #: Users whose rows this model must not use: erased after it was trained (serving
        #: sets it, ``serving/live/forgotten.py``); they are scored as if unknown to the model.
        self.masked_users: Container[str] = frozenset()
        self._check_shapes()
        #: ``id -> row`` views of the indexes (no copy).
        self.user_index = self.user_ids.positions
        self.item_index = self.item_ids.positions
        # Caches filled on first use; two threads computing one at once is harmless.
        self._gram: F64 | None = None
        self._item_norms: npt.NDArray[np.float32] | None = None
        self._popular_order: Idx | None = None

    def _check_shapes(self) -> None:
        users, items = len(self.user_ids), len(self.item_ids)
        uf, itf = self.user_factors.shape, self.item_factors.shape
        if len(uf) != 2 or len(itf) != 2 or uf[1] != itf[1]:
            raise ModelError(f"factor shapes {uf} and {itf} do not match")
        if uf[0] != users or itf[0] != items:
            raise ModelError(f"{uf[0]} user / {itf[0]} item factors for {users} / {items} ids")
        if self.user_items.shape != (users, items):
            raise ModelError(f"user_items is {self.user_items.shape}, expected {(users, items)}")
        if self.popularity.shape != (items,):
            raise ModelError(f"popularity has shape {self.popularity.shape}, expected ({items},)")
        if self.history is not None and self.history.users != users:
            raise ModelError(f"history has {self.history.users} users, expected {users}")
        if self.item_item is not None and self.item_item.items != items:
            raise ModelError(f"item-item model has {self.item_item.items} items, expected {items}")

    @property
    def regularization(self) -> float:
        return self.params.regularization

    @property
    def alpha(self) -> float:
        return self.params.alpha

    @property
    def confidence_cap(self) -> float:
        """The per-cell confidence cap the factors were fitted with (the fold-in uses it too)."""
        cap = None if self.fit_info is None else self.fit_info.confidence_cap
        return MAX_CONFIDENCE if cap is None else cap

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    @property
    def gram(self) -> F64:
        """``YᵀY + λI``, cached; touch it once after loading to warm a replica."""
        if self._gram is None:
            # In blocks: a float64 copy of all item factors (26 MB at 50k x 64) would be kept
            # by glibc's heap in every serving worker long after it is freed.
            y, f = self.item_factors, self.factors
            g = np.zeros((f, f))
            for start in range(0, len(y), _GRAM_ROWS):
                g += foldin.gram(y[start : start + _GRAM_ROWS], 0.0)
            g[np.diag_indices_from(g)] += self.regularization
            self._gram = g
        return self._gram

    @property
    def item_norms(self) -> npt.NDArray[np.float32]:
        if self._item_norms is None:
            norms = np.linalg.norm(np.asarray(self.item_factors, dtype=np.float32), axis=1)
            norms[norms == 0] = 1e-10  # as implicit: an all-zero item is similar to nothing
            self._item_norms = norms
        return self._item_norms

    @property
    def popular_order(self) -> Idx:
        """Item indices by decreasing popularity (ties: lower index first)."""
        if self._popular_order is None:
            self._popular_order = np.lexsort(
                (np.arange(len(self.popularity)), -np.asarray(self.popularity))
            ).astype(np.intp)
        return self._popular_order

    def _row(self, user: str | None) -> int | None:
        """The user's row, None when unknown or masked (``masked_users``)."""
        if user is None or user in self.masked_users:
            return None
        return self.user_ids.get(user)

    def has_user(self, user: str) -> bool:
        return self._row(user) is not None

    def has_item(self, item: str) -> bool:
        return self.item_ids.get(item) is not None

    # -- building blocks shared with recommend.py ------------------------------------------

    def row(self, row: int) -> tuple[Idx, F64]:
        """Item indices and summed weights of user row ``row`` in ``user_items``."""
        start, end = self.user_items.indptr[row], self.user_items.indptr[row + 1]
        return (
            np.asarray(self.user_items.indices[start:end], dtype=np.intp),
            np.asarray(self.user_items.data[start:end], dtype=np.float64),
        )

    def fresh_rows(self, extra: Pairs | None) -> FreshRows:
        """``extra`` as (item index, weight, ts or NaN), unknown items dropped: each request
        maps its fresh events to indices once, here, and passes the rows on."""
        get = self.item_ids.get
        return [(r, float(e[1]), np.nan if len(e) < 3 or e[2] is None else float(e[2]))
                for e in extra or () if (r := get(e[0])) is not None]

    def items_of(self, user: str | None, extra: Pairs | None) -> tuple[Idx, F64]:
        """The user's known items plus ``extra`` (unknown items dropped), with their net
        weights (``foldin.aggregate``: a later negative event cancels what came before)."""
        return self._items_of(self._row(user), self.fresh_rows(extra))

    def _items_of(self, row: int | None, fresh: FreshRows) -> tuple[Idx, F64]:
        idx, w = self.row(row) if row is not None else (EMPTY, np.empty(0))
        if fresh:
            more_idx = np.fromiter((f[0] for f in fresh), dtype=np.intp, count=len(fresh))
            more_w = np.fromiter((f[1] for f in fresh), dtype=np.float64, count=len(fresh))
            idx, w = foldin.aggregate(np.concatenate((idx, more_idx)), np.concatenate((w, more_w)))
        return idx, w

    def vector_and_seen(
        self, user: str, extra: Pairs | None
    ) -> tuple[npt.NDArray[np.float32] | None, Idx, Idx]:
        """The user's vector (refolded when ``extra`` is given), their item indices, and the
        ones among those they gave negative feedback (net weight <= 0: never recommended)."""
        row = self._row(user)
        seen, weights = self._items_of(row, self.fresh_rows(extra))
        return self._vector(row, seen, weights, bool(extra)), seen, seen[weights <= 0]

    def _vector(self, row: int | None, seen: Idx, weights: F64,
                refold: bool) -> npt.NDArray[np.float32] | None:
        """The fitted vector of ``row``, or the fold-in over ``seen`` when ``refold``."""
        if refold:
            return self.fold_in(seen, weights) if len(seen) else None
        return None if row is None else np.asarray(self.user_factors[row])

    def personal(self, scoring: ScoringParams) -> bool:
        """Whether ``scoring`` needs the per-request scorer (recency or item-item)."""
        return scoring.recency or (scoring.item_item_weight > 0 and self.item_item is not None)

    def weighted_history(
        self, user: str | None, extra: Pairs | None, scoring: ScoringParams
    ) -> tuple[Idx, F64]:
        """The user's capped history plus ``extra``, recency-weighted (see ``blend.py``)."""
        return self._weighted_history(self._row(user), self.fresh_rows(extra), scoring)

    def _weighted_history(
        self, row: int | None, fresh: FreshRows, scoring: ScoringParams
    ) -> tuple[Idx, F64]:
        if row is None:
            return weighted_history(None, True, fresh, scoring)
        if self.history is not None:
            return weighted_history(self.history.row(row), True, fresh, scoring)
        idx, w = self.row(row)
        return weighted_history((idx, w, np.full(len(w), np.nan)), False, fresh, scoring)

    def scores_for(
        self, items: Idx, weights: F64, scoring: ScoringParams
    ) -> npt.NDArray[np.float32] | None:
        """Blended scores of every item for a weighted history; None for an empty one or one
        without a positive item. Negative feedback only ever lowers a score
        (``negatives.bounded``)."""
        if not len(items):
            return None
        idx, w = foldin.aggregate(items, weights)
        return negatives.bounded(idx, w, lambda: self._blended(idx, w, scoring),
                                 lambda i, v: self._blended(i, v, scoring))

    def _blended(self, idx: Idx, w: F64, scoring: ScoringParams) -> npt.NDArray[np.float32]:
        beta = scoring.item_item_weight if self.item_item is not None else 0.0
        als = None
        if beta < 1.0:
            vector = self.fold_in(idx, w)
            als = np.asarray(self.item_factors @ vector, dtype=np.float32)
        ii = self.item_item.scores(idx, w) if self.item_item is not None and beta > 0 else None
        return blend(als, ii, beta)

    def bounded_als_scores(self, vector: npt.NDArray[np.floating] | None, items: Idx,
                           weights: F64) -> npt.NDArray[np.float32] | None:
        """ALS scores (float32, one per item) of a user with negative feedback: ``vector``'s,
        each at most the fold-in of their positive items alone (``negatives.bounded``); None
        when they have no positive item (or ``vector`` is None or zeros and they have none)."""
        def full() -> npt.NDArray[np.float32] | None:
            if vector is None or not np.any(vector):
                return None
            return np.asarray(self.item_factors @ vector, dtype=np.float32)

        return negatives.bounded(
            items, weights, full,
            lambda i, v: np.asarray(self.item_factors @ self.fold_in(i, v), dtype=np.float32))

    def has_negative(self, user: str, extra: Pairs | None) -> bool:
        """Whether ``user`` gave negative feedback on an item (net weight <= 0)."""
        return bool(np.any(self.items_of(user, extra)[1] <= 0))

    def indices(self, ids: Sequence[str] | None) -> Idx | None:
        """Model indices of the known ones among ``ids`` (sorted, unique); None for None."""
        if ids is None:
            return None
        get = self.item_ids.get
        return np.unique(np.asarray([r for i in ids if (r := get(i)) is not None], dtype=np.intp))

    # -- public API ----------------------------------------------------------------------------

    def fold_in(
        self, item_indices: npt.ArrayLike, weights: npt.ArrayLike
    ) -> npt.NDArray[np.float32]:
        """The exact ALS user vector for these items (model indices) and raw weights."""
        return foldin.fold_in(self.item_factors, self.gram, item_indices, weights, self.alpha,
                              self.confidence_cap)

    def user_vector(self, user: str, extra: Pairs | None = None) -> npt.NDArray[np.float32] | None:
        """The fitted vector, refolded if ``extra`` is given; None if nothing is known."""
        return self.vector_and_seen(user, extra)[0]

    def known_items(self, user: str) -> list[tuple[str, float]]:
        """The user's items in the model's window with net weights, heaviest first."""
        row = self._row(user)
        if row is None:
            raise UnknownUser(user)
        idx, w = self.row(row)
        order = np.lexsort((idx, -w))
        return [(self.item_ids[idx[k]], float(w[k])) for k in order.tolist()]

    def _banned(self, exclude: Sequence[str] | None, seen: Idx | None,
                restrict: Restriction | None = None, rejected: Idx | None = None) -> Idx:
        banned = self.indices(exclude)
        banned = EMPTY if banned is None else banned
        if rejected is not None and len(rejected):  # the user's negative feedback
            banned = np.concatenate((banned, rejected))
        if restrict is not None and len(restrict.banned):
            # Concatenated, not a set union: ranking only sets these to -inf, and a union of
            # thousands of hidden items costs more than the ranking (bench/catalog.py).
            banned = np.concatenate((banned, restrict.banned))
            return banned if seen is None else np.concatenate((banned, seen))
        return banned if seen is None else np.union1d(banned, seen)

    def _candidates(self, items: Sequence[str] | None, restrict: Restriction | None) -> Idx | None:
        """The whitelist ``items`` narrowed by ``restrict``'s candidates (None: every item)."""
        candidates = self.indices(items)
        if restrict is None or restrict.candidates is None:
            return candidates
        if candidates is None:
            return restrict.candidates
        return np.intersect1d(candidates, restrict.candidates, assume_unique=True)

    def recommend(
        self,
        user: str,
        n: int = 10,
        exclude_seen: bool = True,
        items: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        extra: Pairs | None = None,
        scoring: ScoringParams | None = None,
        restrict: Restriction | None = None,
    ) -> Recommendations:
        """Top ``n`` items for ``user``.

        Parameters
        ----------
        items : sequence of str, optional
            Whitelist: rank only these (unknown ids are ignored).
        exclude : sequence of str, optional
            Blacklist: never return these.
        extra : sequence of (item, weight), optional
            The user's events since the snapshot: the vector is refolded over the known items
            plus these (items unknown to the model are ignored), so a new user becomes known.
        scoring : ScoringParams, optional
            Overrides the model's :attr:`scoring` (recency, blend) for this call.
        restrict : Restriction, optional
            The catalogue filter (``itemfilter.py``), applied before the top ``n`` is chosen,
            so the list is ``n`` long whenever ``n`` items pass.

        A user with nothing known gets popular items with ``fallback="popular"``. Items the
        user gave negative feedback (net weight <= 0) are never returned, whatever
        ``exclude_seen`` says.
        """
        check_n(n)
        scoring = self.scoring if scoring is None else scoring
        if self.personal(scoring):  # the user and their fresh items mapped to indices once
            row, fresh = self._row(user), self.fresh_rows(extra)
            seen, weights = self._items_of(row, fresh)
            scores = self.scores_for(*self._weighted_history(row, fresh, scoring), scoring)
            banned = self._banned(exclude, seen if exclude_seen else None, restrict,
                                  seen[weights <= 0])
            return rank_scores(self, scores, n, banned, self._candidates(items, restrict))
        row = self._row(user)
        seen, weights = self._items_of(row, self.fresh_rows(extra))
        vector, rejected = self._vector(row, seen, weights, bool(extra)), seen[weights <= 0]
        banned = self._banned(exclude, seen if exclude_seen else None, restrict, rejected)
        if len(rejected):  # negative feedback only ever lowers scores (negatives.py)
            scores = self.bounded_als_scores(vector, seen, weights)
            return rank_scores(self, scores, n, banned, self._candidates(items, restrict))
        return rank_vector(self, vector, n, banned, self._candidates(items, restrict))

    def recommend_anonymous(
        self,
        items: Pairs | Sequence[str],
        n: int = 10,
        exclude_seen: bool = True,
        candidates: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        restrict: Restriction | None = None,
    ) -> Recommendations:
        """Top ``n`` for a session given as item ids (weight 1) or (item, weight) pairs.

        ``candidates`` is the whitelist (``items`` being the session here); ``restrict`` as
        in :meth:`recommend`.
        """
        check_n(n)
        pairs = [(i, 1.0) if isinstance(i, str) else (i[0], float(i[1])) for i in items]
        fresh = self.fresh_rows(pairs)
        seen, weights = self._items_of(None, fresh)
        rejected = seen[weights <= 0]
        banned = self._banned(exclude, seen if exclude_seen else None, restrict, rejected)
        if self.personal(self.scoring):  # the session in the order given, newest last
            scores = self.scores_for(*self._weighted_history(None, fresh, self.scoring),
                                     self.scoring)
            return rank_scores(self, scores, n, banned, self._candidates(candidates, restrict))
        vector = self.fold_in(seen, weights) if len(seen) else None
        if len(rejected):  # negative feedback only ever lowers scores (negatives.py)
            scores = self.bounded_als_scores(vector, seen, weights)
            return rank_scores(self, scores, n, banned, self._candidates(candidates, restrict))
        return rank_vector(self, vector, n, banned, self._candidates(candidates, restrict))

    def recommend_batch(
        self,
        users: Sequence[str],
        n: int = 10,
        exclude_seen: bool = True,
        items: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        extra: Mapping[str, Pairs] | None = None,
        restrict: Restriction | None = None,
    ) -> dict[str, Recommendations]:
        """:meth:`recommend` for many users (``extra`` per user), scored in blocks (one user at
        a time when the scoring is per request: recency or item-item)."""
        if self.personal(self.scoring):
            check_n(n)
            got = extra or {}
            return {u: self.recommend(u, n, exclude_seen, items, exclude, got.get(u),
                                      restrict=restrict)
                    for u in dict.fromkeys(users)}
        got = extra or {}
        # A user with negative feedback is scored alone (negatives.py); the rest in blocks.
        own = {u for u in dict.fromkeys(users) if self.has_negative(u, got.get(u))}
        out = recommend_many(self, [u for u in users if u not in own], n, exclude_seen,
                             self._candidates(items, restrict),
                             self._banned(exclude, None, restrict), got)
        out.update({u: self.recommend(u, n, exclude_seen, items, exclude, got.get(u),
                                      restrict=restrict) for u in own})
        return {u: out[u] for u in dict.fromkeys(users)}

    def popular(self, n: int = 10, exclude: Sequence[str] | None = None,
                restrict: Restriction | None = None) -> Recommendations:
        """The most popular items (score: events in the window, decayed if configured)."""
        check_n(n)
        return rank_popular(self, n, self._banned(exclude, None, restrict),
                            self._candidates(None, restrict), None)

    def similar_items(
        self, item: str, n: int = 10, exclude: Sequence[str] | None = None,
        restrict: Restriction | None = None,
    ) -> Recommendations:
        """Items closest to ``item`` by cosine of item factors, the item itself left out
        (``restrict`` as in :meth:`recommend`)."""
        check_n(n)
        target = self.item_ids.get(item)
        if target is None:
            raise UnknownItem(item)
        norms = self.item_norms
        scores = np.asarray(self.item_factors @ self.item_factors[target], dtype=np.float32)
        scores /= norms * norms[target]
        ranking.ban(scores, np.append(self._banned(exclude, None, restrict), target))
        candidates = self._candidates(None, restrict)
        if candidates is not None:
            keep = np.full(len(scores), True)
            keep[candidates] = False
            scores[keep] = -np.inf
        best = ranking.top_n(scores, n)
        return result(self, best, scores[best])

    def explain(
        self, user: str, item: str, n: int = 5, extra: Pairs | None = None
    ) -> list[tuple[str, float]]:
        """The user's items contributing most to their score for ``item``, best first.

        As implicit's ``explain``: the contributions of all the user's items sum to the score
        of their refolded vector for ``item``.
        """
        check_n(n)
        target = self.item_ids.get(item)
        if target is None:
            raise UnknownItem(item)
        if self.personal(self.scoring):
            idx, w = foldin.aggregate(*self.weighted_history(user, extra, self.scoring))
        else:
            idx, w = self.items_of(user, extra)
        if not len(idx):
            raise UnknownUser(user)
        idx, shares = foldin.contributions(self.item_factors, self.gram, idx, w, self.alpha,
                                           target, self.confidence_cap)
        best = ranking.top_n(shares, n)
        return [(self.item_ids[i], float(s)) for i, s in zip(idx[best], shares[best], strict=True)]

    def __repr__(self) -> str:
        return (
            f"Model({len(self.user_ids)} users, {len(self.item_ids)} items, "
            f"{self.factors} factors, {self.user_items.nnz} interactions)"
        )
