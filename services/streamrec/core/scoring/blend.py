"""The per-request blend: a recency-weighted history, scored by every named scorer, summed.

For a user (or an anonymous session) the request path

1. takes their history oldest first: the snapshot's :class:`~.recency.History` row, then the
   events since the snapshot (``extra``), capped to the newest ``history_cap`` events;
2. weighs it by recency (``recency.recency_weights``: ``decay`` per step back in order,
   ``half_life`` seconds in time);
3. asks each scorer (``scorer.py``) of the blend table ``{name: weight}`` for its scores of
   every item over the same weighted history: ALS folds it into a user vector and scores
   ``s_als = Y x_u`` (``als.py``), the item-item model ``s_ii = Σ r_i B[i, :]`` (``itemitem.py``),
   the sequential rules ``s_sr = Σ_p q_p (T[item_p, :] + γ P[item_p, :])`` over the newest
   items in order
   (``sequential.py``);
4. sums the standardised scores:

       s = Σ_name w_name s_name / σ(s_name)

   where σ is the standard deviation over all items (a score vector with σ = 0 is used as
   is). Dividing by σ puts the scorers on one scale without changing any one's ranking. A
   table with one scorer of weight > 0 is that scorer's raw scores. The table is the
   ``scoring_weights`` setting (:attr:`ScoringParams.scorer_weights`) or, unset,
   ``{"als": 1 - β, "item_item": β, "sequential": σ}`` with ``β = item_item_weight`` and
   ``σ = sequential_weight`` (:attr:`ScoringParams.weights`): ``β = 0`` is ALS alone and
   ``β = 1`` item-item alone (with ``σ = 0``).

The set of seen items (for ``exclude_seen``) is not capped: it is ``user_items`` plus ``extra``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .recency import History, recency_weights

if TYPE_CHECKING:
    from ..window.sliding import WindowContents

__all__ = ["MAX_SCORER_WEIGHT", "PLAIN", "ScoringParams", "blend", "history_for", "standardised",
           "weighted_history"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Idx = npt.NDArray[np.intp]
#: An event since the snapshot: (item, weight) or (item, weight, ts seconds or None).
Extra = Sequence[tuple[str, float] | tuple[str, float, float | None]]


#: The largest weight of one scorer in the blend table (the blend standardises each score
#: vector, so only the ratios matter; the bound keeps a typo from drowning the others).
MAX_SCORER_WEIGHT = 1e3


@dataclass(frozen=True)
class ScoringParams:
    """How serving scores a user. Defaults: see docs/evaluation.md (tuned on validation)."""

    recency_decay: float = 0.1
    recency_half_life: float | None = None
    history_cap: int = 200
    item_item_weight: float = 0.5
    #: The sequential scorer's weight σ in the default table (``sequential.py``), beside
    #: ALS's ``1 - β`` and item-item's ``β``; 0 turns it off (and the trainer does not fit it).
    sequential_weight: float = 0.35
    #: The blend table ``((name, weight), ...)`` when given; ``None``: the table of
    #: ``item_item_weight`` (:attr:`weights`). Each weight in [0, :data:`MAX_SCORER_WEIGHT`],
    #: at least one > 0. Names are checked against the registry where settings are read
    #: (``scorer.check_weights``): this module sits below the scorers.
    scorer_weights: tuple[tuple[str, float], ...] | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.recency_decay) and self.recency_decay >= 0):
            raise ValueError(f"recency_decay must be >= 0, got {self.recency_decay}")
        h = self.recency_half_life
        if h is not None and not (math.isfinite(h) and h > 0):
            raise ValueError(f"recency_half_life must be a number > 0, got {h}")
        if self.history_cap < 1:
            raise ValueError(f"history_cap must be >= 1, got {self.history_cap}")
        if not 0.0 <= self.item_item_weight <= 1.0:
            raise ValueError(f"item_item_weight must be in [0, 1], got {self.item_item_weight}")
        if not 0.0 <= self.sequential_weight <= 1.0:
            raise ValueError(f"sequential_weight must be in [0, 1], got {self.sequential_weight}")
        if self.scorer_weights is not None:
            for name, w in self.scorer_weights:
                if not (math.isfinite(w) and 0.0 <= w <= MAX_SCORER_WEIGHT):
                    raise ValueError(f"scoring weight of {name!r} must be in "
                                     f"[0, {MAX_SCORER_WEIGHT:g}], got {w}")
            if not any(w > 0 for _, w in self.scorer_weights):
                raise ValueError("the scoring weights need at least one weight > 0")

    @property
    def recency(self) -> bool:
        return self.recency_decay > 0 or self.recency_half_life is not None

    @property
    def weights(self) -> dict[str, float]:
        """The blend table, scorer name -> weight: ``scorer_weights`` when given, else
        ``{"als": 1 - β, "item_item": β, "sequential": σ}`` with ``β = item_item_weight`` and
        ``σ = sequential_weight``."""
        if self.scorer_weights is not None:
            return dict(self.scorer_weights)
        return {"als": 1.0 - self.item_item_weight, "item_item": self.item_item_weight,
                "sequential": self.sequential_weight}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if self.scorer_weights is None:  # manifests without a table read as before
            del out["scorer_weights"]
        else:
            out["scorer_weights"] = dict(self.scorer_weights)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScoringParams:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        if kw.get("scorer_weights") is not None:
            kw["scorer_weights"] = tuple((str(n), float(w))
                                         for n, w in dict(kw["scorer_weights"]).items())
        return cls(**kw)


#: The scoring of a snapshot that predates recency and item-item (format <= 2): summed
#: weights, ALS alone, the fitted user vector when nothing is new.
PLAIN = ScoringParams(recency_decay=0.0, recency_half_life=None, item_item_weight=0.0,
                      sequential_weight=0.0)


def standardised(scores: F32) -> F32:
    """``scores / σ(scores)``, or ``scores`` as they are when σ is 0 or not finite."""
    sigma = float(np.std(scores))
    return scores / np.float32(sigma) if sigma > 0 and math.isfinite(sigma) else scores


def blend(scores: Mapping[str, F32], weights: Mapping[str, float]) -> F32:
    """``Σ weights[name] · scores[name] / σ(scores[name])`` over the names of ``scores``, in
    its order; a single score vector is returned as it is (no scaling).

    Each score vector is float32 of shape ``(items,)``; the result is float32 too. Raises
    ``ValueError`` for no score vector at all, and ``KeyError`` for a vector with no weight.
    """
    if not scores:
        raise ValueError("blend needs at least one score vector")
    if len(scores) == 1:
        return next(iter(scores.values()))
    total: F32 | None = None
    for name, s in scores.items():
        scaled = standardised(s)
        # In place where the array is our own (not the scorer's): the same float32 arithmetic
        # as ``total + weight * scaled``, without two temporaries of every item per scorer.
        term = np.multiply(scaled, weights[name], out=None if scaled is s else scaled)
        if total is None:
            total = term
        else:
            total += term
    return np.asarray(total, dtype=np.float32)


def weighted_history(
    base: tuple[Idx, F64, F64] | None,
    base_ordered: bool,
    extra: list[tuple[int, float, float]],
    params: ScoringParams,
) -> tuple[Idx, F64]:
    """Recency weights of ``base`` (a history row, oldest first) followed by ``extra``.

    ``extra`` holds (item index, weight, ts or NaN). ``base_ordered=False`` (an old snapshot's
    unordered ``user_items`` row) weighs every base event as one step older than the oldest
    extra one. Returns the capped item indices and their weights, oldest first.
    """
    empty = (np.empty(0, np.intp), np.empty(0), np.empty(0))
    b_idx, b_w, b_ts = base if base is not None else empty
    e_idx = np.fromiter((e[0] for e in extra), dtype=np.intp, count=len(extra))
    e_w = np.fromiter((e[1] for e in extra), dtype=np.float64, count=len(extra))
    e_ts = np.fromiter((e[2] for e in extra), dtype=np.float64, count=len(extra))
    decay, half_life, cap = params.recency_decay, params.recency_half_life, params.history_cap
    if not base_ordered:
        e_r = recency_weights(e_w, e_ts, decay, half_life)
        b_r = b_w * math.exp(-decay * len(extra))
        idx, r = np.concatenate((b_idx, e_idx)), np.concatenate((b_r, e_r))
        return idx, r
    idx = np.concatenate((b_idx, e_idx))[-cap:]
    w = np.concatenate((b_w, e_w))[-cap:]
    ts = np.concatenate((b_ts, e_ts))[-cap:]
    return idx, recency_weights(w, ts, decay, half_life)


def history_for(
    contents: WindowContents, user_ids: Any, item_ids: Any, cap: int
) -> History:
    """The window's events grouped per *model* user row (``user_ids``/``item_ids`` are the
    model's :class:`~.ids.IdIndex`), newest ``cap`` per user. Events whose ids the model lacks
    are skipped."""
    u_map = np.fromiter(
        (-1 if (r := user_ids.get(u)) is None else r for u in contents.user_ids),
        dtype=np.intp, count=len(contents.user_ids))
    i_map = np.fromiter(
        (-1 if (r := item_ids.get(i)) is None else r for i in contents.item_ids),
        dtype=np.intp, count=len(contents.item_ids))
    rows = u_map[np.asarray(contents.users, dtype=np.intp)]
    cols = i_map[np.asarray(contents.items, dtype=np.intp)]
    ok = (rows >= 0) & (cols >= 0)
    return History.from_events(
        rows[ok], cols[ok], np.asarray(contents.weights)[ok], np.asarray(contents.ts)[ok],
        len(user_ids), cap)
