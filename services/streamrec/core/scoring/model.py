"""The model: the scorers of a snapshot plus what serving needs to use them, as plain arrays.

A :class:`Model` is plain arrays (possibly memory-mapped from a snapshot): the id lists, the
window's user x item matrix (a user's known items: filtered out of their recommendations and
the base of their fold-in), item popularity (the cold-start answer), the ordered history per
user (recency), and its scorers by name (``scorer.py``): always ``als`` (``als.py``: the fitted
user vectors, fold-in, similar items, explanations), and the others the trainer fitted, such as
``item_item`` (``itemitem.py``). A request's scores are the blend of the scorers named in the
scoring table (``blend.py``); ranking is ``recommend.py``. Fitting lives in ``training.py``,
so serving never loads implicit.
"""

from __future__ import annotations

from collections.abc import Container, Mapping, Sequence
from dataclasses import replace

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..catalog.filters import Restriction
from ..events.feedback import aggregate
from ..ids import IdIndex
from . import negatives, ranking
from .als import ALS
from .annrank import rank_vector_ann
from .blend import PLAIN, ScoringParams, blend, standardised, weighted_history
from .recency import History
from .rules import (
    EMPTY,
    Ranked,
    check_n,
    rank_many,
    rank_popular,
    rank_scores,
    rank_vector,
)
from .scorer import Scorer, in_order
from .sequential import Sequential, query_weights
from .types import (
    ALSParams,
    FitInfo,
    ModelError,
    Pairs,
    Ranker,
    Recommendations,
    UnknownItem,
    UnknownUser,
)

__all__ = [
    "ALSParams",
    "FitInfo",
    "Model",
    "ModelError",
    "Pairs",
    "Recommendations",
    "UnknownItem",
    "UnknownUser",
]

#: Fresh events mapped to the model: (item index, weight, ts in seconds or NaN).
FreshRows = list[tuple[int, float, float]]
Idx = npt.NDArray[np.intp]
F64 = npt.NDArray[np.float64]


def _member(values: Idx, of: Idx) -> npt.NDArray[np.bool_]:
    """``np.isin(values, of)``: for a history's few items by one comparison table (~5 µs
    where ``np.isin``'s sort costs ~35), the same booleans."""
    found: npt.NDArray[np.bool_] = ((values[:, None] == of[None, :]).any(axis=1)
                                    if len(values) * len(of) <= 4096 else np.isin(values, of))
    return found


class Model:
    """A fitted model over plain arrays; safe to share between threads once built.

    Built by ``training.fit``, or from (memory-mapped) arrays by the snapshot reader.
    ``scorers`` maps each scorer's name to it and must hold an :class:`~.als.ALS` as ``als``.
    Shapes are checked: a mismatch raises ``ModelError``. :meth:`derive` gives a model with
    other scorers, history or scoring over the same arrays; a model is never changed in place
    once built (but ``masked_users``, which serving sets before sharing it).
    """

    def __init__(
        self,
        scorers: Mapping[str, Scorer],
        user_ids: Sequence[str],
        item_ids: Sequence[str],
        user_items: sp.csr_matrix,
        popularity: F64,
        params: ALSParams,
        fit_info: FitInfo | None = None,
        history: History | None = None,
        scoring: ScoringParams | None = None,
        item_users: npt.NDArray[np.integer] | None = None,
    ) -> None:
        als = scorers.get("als")
        if not isinstance(als, ALS):
            raise ModelError("a model needs its ALS scorer under the name 'als'")
        self.als = als
        #: Every scorer by name, ``als`` first (the blend sums in this order).
        self.scorers: dict[str, Scorer] = {"als": als, **scorers}
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
        #: The window's events per user in order (recency), and how requests are scored (see
        #: ``blend.py``); a model without them scores as before.
        self.history = history
        self.scoring = PLAIN if scoring is None else scoring
        #: Users whose rows this model must not use: erased after it was trained (serving
        #: sets it, ``serving/live/forgotten.py``); they are scored as if unknown to the model.
        self.masked_users: Container[str] = frozenset()
        #: Users per item over the whole window, when ``user_items`` holds only a serving
        #: group's users (a snapshot split by partition stores it: ``item_users``).
        self.item_users = item_users
        self._check_shapes()
        #: ``id -> row`` views of the indexes (no copy).
        self.user_index = self.user_ids.positions
        self.item_index = self.item_ids.positions
        self._popular_order: Idx | None = None

    def _check_shapes(self) -> None:
        users, items = len(self.user_ids), len(self.item_ids)
        if self.als.users != users:
            raise ModelError(f"{self.als.users} user factors for {users} user ids")
        for name, scorer in self.scorers.items():
            if scorer.items != items:
                raise ModelError(f"scorer {name!r} has {scorer.items} items, expected {items}")
        if self.user_items.shape != (users, items):
            raise ModelError(f"user_items is {self.user_items.shape}, expected {(users, items)}")
        if self.popularity.shape != (items,):
            raise ModelError(f"popularity has shape {self.popularity.shape}, expected ({items},)")
        if self.history is not None and self.history.users != users:
            raise ModelError(f"history has {self.history.users} users, expected {users}")
        if self.item_users is not None and np.shape(self.item_users) != (items,):
            raise ModelError(f"item_users has shape {np.shape(self.item_users)}, "
                             f"expected ({items},)")

    def derive(
        self,
        scorers: Mapping[str, Scorer] | None = None,
        history: History | None = None,
        scoring: ScoringParams | None = None,
    ) -> Model:
        """A new model over the same arrays with ``scorers`` added (or replacing those of the
        same name), and ``history`` and ``scoring`` when given."""
        return Model(
            {**self.scorers, **(scorers or {})}, self.user_ids, self.item_ids, self.user_items,
            self.popularity, self.params, self.fit_info,
            self.history if history is None else history,
            self.scoring if scoring is None else scoring,
            self.item_users,
        )

    def users_per_item(self) -> npt.NDArray[np.int64]:
        """Users with a cell for each item in the window: int64, shape ``(items,)``. Over every
        user of the window, also for a serving group's model of a split snapshot (then the
        trainer's stored count; otherwise counted from ``user_items``)."""
        if self.item_users is not None:
            return np.asarray(self.item_users, dtype=np.int64)
        items = len(self.item_ids)
        counts = np.bincount(np.asarray(self.user_items.indices), minlength=items)[:items]
        return counts.astype(np.int64, copy=False)

    @property
    def factors(self) -> int:
        return self.als.factors

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
        weights (``feedback.aggregate``: a later negative event cancels what came before)."""
        return self._items_of(self._row(user), self.fresh_rows(extra))

    def _items_of(self, row: int | None, fresh: FreshRows) -> tuple[Idx, F64]:
        idx, w = self.row(row) if row is not None else (EMPTY, np.empty(0))
        if fresh:
            more_idx = np.fromiter((f[0] for f in fresh), dtype=np.intp, count=len(fresh))
            more_w = np.fromiter((f[1] for f in fresh), dtype=np.float64, count=len(fresh))
            idx, w = aggregate(np.concatenate((idx, more_idx)), np.concatenate((w, more_w)))
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
            return self.als.fold_in(seen, weights) if len(seen) else None
        return None if row is None else self.als.user_vector(row)

    def blend_table(self, scoring: ScoringParams) -> dict[str, float]:
        """``scoring``'s blend table narrowed to this model's scorers with a weight > 0; ALS
        alone when none is left (the base every snapshot has)."""
        table = {n: w for n, w in scoring.weights.items() if w > 0 and n in self.scorers}
        return table or {"als": 1.0}

    def personal(self, scoring: ScoringParams) -> bool:
        """Whether ``scoring`` needs the per-request blend (recency, or a scorer beyond ALS);
        otherwise the fitted ALS vectors answer (and a batch is one matrix product)."""
        return scoring.recency or set(self.blend_table(scoring)) != {"als"}

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
        idx, w = aggregate(items, weights)
        order = np.asarray(items, dtype=np.intp)
        return negatives.bounded(idx, w, lambda: self._blended(idx, w, order, scoring),
                                 lambda i, v: self._blended(i, v, order, scoring))

    def _blended(self, idx: Idx, w: F64, order: Idx,
                 scoring: ScoringParams) -> npt.NDArray[np.float32]:
        """The blend of the scorers of :meth:`blend_table` for an aggregated history
        (``idx``, ``w``) whose events came in ``order`` (item indices, oldest first): a scorer
        that reads the order (``scorer.InOrder``) gets the events of its positive items."""
        table = self.blend_table(scoring)
        return blend(self._scores_by_scorer(idx, w, order, table), table)

    def _scores_by_scorer(self, idx: Idx, w: F64, order: Idx,
                          table: Mapping[str, float]) -> dict[str, npt.NDArray[np.float32]]:
        """Each scorer of ``table``'s scores of every item for the aggregated history
        (``idx``, ``w``): a scorer that reads the order (``scorer.InOrder``) gets the events of
        ``order`` whose items are positive in ``w``."""
        scores: dict[str, npt.NDArray[np.float32]] = {}
        positive: Idx | None = None
        for name in table:
            scorer = self.scorers[name]
            ordered = in_order(scorer)
            if ordered is not None:
                if positive is None:
                    positive = order[_member(order, idx[w > 0])]
                scores[name] = ordered.scores_in_order(positive)
            else:
                scores[name] = scorer.scores(idx, w)
        return scores

    def bounded_als_scores(self, vector: npt.NDArray[np.floating] | None, items: Idx,
                           weights: F64) -> npt.NDArray[np.float32] | None:
        """ALS scores (float32, one per item) of a user with negative feedback: ``vector``'s,
        each at most the fold-in of their positive items alone (``negatives.bounded``); None
        when they have no positive item (or ``vector`` is None or zeros and they have none)."""
        def full() -> npt.NDArray[np.float32] | None:
            if vector is None or not np.any(vector):
                return None
            return np.asarray(self.als.item_factors @ vector, dtype=np.float32)

        return negatives.bounded(items, weights, full, self.als.scores)

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

    def _result(self, ranked: Ranked, fallback: str | None = None) -> Recommendations:
        idx, scores = ranked
        return Recommendations([self.item_ids[i] for i in idx.tolist()],
                               [float(s) for s in scores.tolist()], fallback)

    def _placed(self, scores: npt.NDArray[np.floating], n: int, banned: Idx,
                candidates: Idx | None, ranker: Ranker,
                fallback: str | None = None) -> Recommendations:
        """The list a request's own `Ranker` (a placement) makes of every item's ``scores``."""
        idx, placed, marks = ranker(np.array(scores, dtype=np.float32), banned, candidates, n)
        return replace(self._result((idx, placed), fallback), marks=marks)

    def _popular(self, n: int, banned: Idx, candidates: Idx | None,
                 fallback: str | None, ranker: Ranker | None = None) -> Recommendations:
        if ranker is not None:
            return self._placed(self.popularity, n, banned, candidates, ranker, fallback)
        ranked = rank_popular(self.popularity, self.popular_order, n, banned, candidates)
        return self._result(ranked, fallback)

    def _by_scores(self, scores: npt.NDArray[np.float32] | None, n: int, banned: Idx,
                   candidates: Idx | None, ranker: Ranker | None = None) -> Recommendations:
        """The top ``n`` by ``scores``; popular items when there are none."""
        if scores is None:
            return self._popular(n, banned, candidates, "popular", ranker)
        if ranker is not None:
            return self._placed(scores, n, banned, candidates, ranker)
        return self._result(rank_scores(scores, n, banned, candidates))

    def _by_vector(self, vector: npt.NDArray[np.floating] | None, n: int, banned: Idx,
                   candidates: Idx | None, ranker: Ranker | None = None) -> Recommendations:
        """The top ``n`` for an ALS user vector; popular items when there is none (or it is
        all zeros, which scores every item alike: the fold-in's answer to a system it could
        not solve)."""
        if vector is None or not np.any(vector):
            return self._popular(n, banned, candidates, "popular", ranker)
        if ranker is not None:  # every item's score: a placement ranks them itself
            return self._placed(self.als.item_factors @ vector, n, banned, candidates, ranker)
        if self.als.ann is not None:  # a catalogue big enough for the HNSW graph (ann.py)
            return self._result(rank_vector_ann(self.als.ann, self.als.item_factors, vector, n,
                                                banned, candidates))
        return self._result(rank_vector(self.als.item_factors, vector, n, banned, candidates))

    def _by_als(self, vector: npt.NDArray[np.floating] | None, seen: Idx, weights: F64, n: int,
                banned: Idx, candidates: Idx | None,
                ranker: Ranker | None = None) -> Recommendations:
        """The top ``n`` for an ALS user vector and the history it was folded from: bounded by
        the positive part when the history holds negative feedback (negatives.py)."""
        if np.any(weights <= 0):
            return self._by_scores(self.bounded_als_scores(vector, seen, weights), n, banned,
                                   candidates, ranker)
        return self._by_vector(vector, n, banned, candidates, ranker)

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
        ranker: Ranker | None = None,
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
        ranker : Ranker, optional
            A placement's own final step (``core/placements/rerank.py``): it gets every
            item's score and chooses the list (``marks`` set); the HNSW graph is not used.

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
            return self._by_scores(scores, n, banned, self._candidates(items, restrict), ranker)
        row = self._row(user)
        seen, weights = self._items_of(row, self.fresh_rows(extra))
        vector, rejected = self._vector(row, seen, weights, bool(extra)), seen[weights <= 0]
        banned = self._banned(exclude, seen if exclude_seen else None, restrict, rejected)
        return self._by_als(vector, seen, weights, n, banned,
                            self._candidates(items, restrict), ranker)

    def recommend_anonymous(
        self,
        items: Pairs | Sequence[str],
        n: int = 10,
        exclude_seen: bool = True,
        candidates: Sequence[str] | None = None,
        exclude: Sequence[str] | None = None,
        restrict: Restriction | None = None,
        ranker: Ranker | None = None,
    ) -> Recommendations:
        """Top ``n`` for a session given as item ids (weight 1) or (item, weight) pairs.

        ``candidates`` is the whitelist (``items`` being the session here); ``restrict`` and
        ``ranker`` as in :meth:`recommend`.
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
            return self._by_scores(scores, n, banned, self._candidates(candidates, restrict),
                                   ranker)
        vector = self.als.fold_in(seen, weights) if len(seen) else None
        return self._by_als(vector, seen, weights, n, banned,
                            self._candidates(candidates, restrict), ranker)

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
        out = self._recommend_many([u for u in users if u not in own], n, exclude_seen,
                                   self._candidates(items, restrict),
                                   self._banned(exclude, None, restrict), got)
        out.update({u: self.recommend(u, n, exclude_seen, items, exclude, got.get(u),
                                      restrict=restrict) for u in own})
        return {u: out[u] for u in dict.fromkeys(users)}

    def _recommend_many(
        self, users: Sequence[str], n: int, exclude_seen: bool, candidates: Idx | None,
        blocked: Idx, extra: Mapping[str, Pairs],
    ) -> dict[str, Recommendations]:
        """One answer per distinct user, in input order: the users with a vector ranked in
        blocks by ``recommend.rank_many``. ``candidates`` (None: every item) and ``blocked``
        (never returned) are item indices, sorted and unique."""
        check_n(n)
        done: dict[str, Recommendations] = {}
        pending: list[str] = []
        vectors: list[npt.NDArray[np.floating]] = []
        own_banned: list[Idx] = []
        for user in dict.fromkeys(users):
            vector, seen, rejected = self.vector_and_seen(user, extra.get(user))
            banned_own = seen if exclude_seen else rejected  # negative feedback: always banned
            if vector is None or not np.any(vector):
                done[user] = self._popular(n, np.union1d(blocked, banned_own), candidates,
                                           "popular")
            else:
                pending.append(user)
                vectors.append(vector)
                own_banned.append(banned_own)
        ranked = rank_many(self.als.item_factors, vectors, own_banned, n, candidates, blocked)
        for user, best in zip(pending, ranked, strict=True):
            done[user] = self._result(best)
        return {user: done[user] for user in dict.fromkeys(users)}

    def popular(self, n: int = 10, exclude: Sequence[str] | None = None,
                restrict: Restriction | None = None,
                ranker: Ranker | None = None) -> Recommendations:
        """The most popular items (score: events in the window, decayed if configured)."""
        check_n(n)
        return self._popular(n, self._banned(exclude, None, restrict),
                             self._candidates(None, restrict), None, ranker)

    def similar_items(
        self, item: str, n: int = 10, exclude: Sequence[str] | None = None,
        restrict: Restriction | None = None, ranker: Ranker | None = None,
    ) -> Recommendations:
        """Items closest to ``item`` by cosine of item factors, the item itself left out
        (``restrict`` as in :meth:`recommend`)."""
        check_n(n)
        target = self.item_ids.get(item)
        if target is None:
            raise UnknownItem(item)
        scores = self.als.similar(target)
        if ranker is not None:
            return self._placed(scores, n, np.append(self._banned(exclude, None, restrict),
                                                     target),
                                self._candidates(None, restrict), ranker)
        ranking.ban(scores, np.append(self._banned(exclude, None, restrict), target))
        candidates = self._candidates(None, restrict)
        if candidates is not None:
            keep = np.full(len(scores), True)
            keep[candidates] = False
            scores[keep] = -np.inf
        best = ranking.top_n(scores, n)
        return self._result((best, scores[best]))

    def next_items(
        self, item: str, n: int = 10, exclude: Sequence[str] | None = None,
        restrict: Restriction | None = None, ranker: Ranker | None = None,
    ) -> Recommendations:
        """The items that most often came next after ``item`` (the sequential scorer's
        successors, ``sequential.py``; score: Σ 1/distance over the window), the item itself,
        ``exclude`` and what ``restrict`` leaves out never; fewer than ``n`` when it had fewer
        successors. An item with none that pass, or a model without the sequential scorer,
        gets :meth:`similar_items` with ``fallback="similar"`` (an empty list, ``fallback``
        None, when the filters leave nothing at all). Raises ``UnknownItem``."""
        check_n(n)
        target = self.item_ids.get(item)
        if target is None:
            raise UnknownItem(item)
        sr = self.scorers.get("sequential")
        if isinstance(sr, Sequential):
            cols, vals = sr.successors_of(target)
            banned = np.append(self._banned(exclude, None, restrict), target)
            if ranker is not None and len(cols):  # the successors, every other item out
                scores = np.full(len(self.item_ids), -np.inf, dtype=np.float32)
                scores[cols] = vals
                placed = self._placed(scores, n, banned, self._candidates(None, restrict),
                                      ranker)
                if placed.items:
                    return placed
            keep = ~np.isin(cols, banned)
            candidates = self._candidates(None, restrict)
            if candidates is not None:
                keep &= np.isin(cols, candidates)
            cols, vals = cols[keep][:n], vals[keep][:n]
            if len(cols):
                return self._result((cols, vals.astype(np.float32)))
        similar = self.similar_items(item, n, exclude, restrict, ranker)
        return replace(similar, fallback="similar" if similar.items else None)

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
            idx, w = aggregate(*self.weighted_history(user, extra, self.scoring))
        else:
            idx, w = self.items_of(user, extra)
        if not len(idx):
            raise UnknownUser(user)
        idx, shares = self.als.contributions(idx, w, target)
        best = ranking.top_n(shares, n)
        return [(self.item_ids[i], float(s)) for i, s in zip(idx[best], shares[best], strict=True)]

    def explain_terms(
        self, user: str, item: str, extra: Pairs | None = None
    ) -> tuple[str | None, list[tuple[str, int, float]]]:
        """Which scorer drives ``item`` for ``user`` and the transitions behind it.

        Returns ``(driven_by, transitions)``: ``driven_by`` is the scorer of the blend table
        with the largest term ``w · s[item] / σ(s)`` (``blend.py``), None when the user's
        answer is not blended per request (ALS's fitted vector alone) or they have no positive
        item; ``transitions`` are ``(earlier item, position, T[earlier, item] / position)``
        for the newest distinct items of the user's history that ``item`` came after
        (``sequential.py``; position 1 is the newest), heaviest first: empty without the
        sequential scorer or any such transition. Raises ``UnknownItem``.
        """
        target = self.item_ids.get(item)
        if target is None:
            raise UnknownItem(item)
        scoring = self.scoring
        if not self.personal(scoring):
            return None, []
        items, weights = self.weighted_history(user, extra, scoring)
        order = np.asarray(items, dtype=np.intp)
        idx, w = aggregate(order, weights)
        keep = w > 0
        if not keep.any():
            return None, []
        positive = order[np.isin(order, idx[keep])]
        table = self.blend_table(scoring)
        # The blend's own terms (blend.py): a lone scorer is used raw, the others standardised.
        scores = self._scores_by_scorer(idx[keep], w[keep], order, table)
        terms = {name: weight * float((standardised(scores[name]) if len(table) > 1
                                       else scores[name])[target])
                 for name, weight in table.items()}
        driven_by = max(terms, key=lambda n: terms[n])
        sr = self.scorers.get("sequential")
        if "sequential" not in table or not isinstance(sr, Sequential):
            return driven_by, []
        earlier, pos_weights = query_weights(positive, sr.params.query_items,
                                              sr.params.query_decay)
        out = []
        for position, (e, pw) in enumerate(zip(earlier.tolist(), pos_weights.tolist(),
                                               strict=True), start=1):
            t = sr.transition(e, target)
            if t > 0:
                out.append((self.item_ids[e], position, t * pw))
        out.sort(key=lambda x: (-x[2], x[1]))
        return driven_by, out

    def __repr__(self) -> str:
        return (
            f"Model({len(self.user_ids)} users, {len(self.item_ids)} items, "
            f"{self.factors} factors, {self.user_items.nnz} interactions)"
        )
