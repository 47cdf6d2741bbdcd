"""The strategies a replay compares, behind two small protocols: a learner and a recommender.

A *learner* consumes the stream (``warm`` on the warm-up prefix, then ``learn`` per event); a
*recommender* answers top-n lists from what its learner knows. They are split because the two
ALS strategies share one learner: the original service (retrain every N events over the last W,
nothing in between) and streamrec (the same retrains, plus a fold-in of each user's events since
the last retrain) differ only in how they answer, so they see the very same fitted models.

Popularity over the sliding window is the floor any personal model must clear. Incremental SGD
(the fourth strategy) lives in ``isgd.py``. :class:`ScoredView` answers from the same learner
with the per-request scorer of ``core/scoring/blend.py``: recency-weighted fold-in, EASE, their
blend.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from streamrec.core.events.event import Event
from streamrec.core.scoring.ann import AnnParams
from streamrec.core.scoring.blend import ScoringParams, history_for
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.scorer import fitted_by_window
from streamrec.core.scoring.training import fit, with_ann, with_scorer
from streamrec.core.window.sliding import SlidingWindow, WindowMatrix

__all__ = [
    "VIEWS",
    "ALSView",
    "Learner",
    "Popularity",
    "Recommender",
    "RetrainedALS",
    "ScoredView",
]


class Learner(Protocol):
    name: str

    def warm(self, events: Sequence[Event]) -> None: ...

    def learn(self, event: Event) -> None: ...

    def info(self) -> dict[str, Any]: ...


class Recommender(Protocol):
    name: str
    kind: str
    params: dict[str, Any]
    learner: Learner

    def recommend(self, user: str, n: int) -> list[str]: ...

    def diagnostics(self) -> dict[str, Any]: ...


class Popularity:
    """The most frequent items among the last ``window`` events, minus the user's own items
    in that window. Ties go to the item seen first in the stream."""

    kind = "popularity"

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.window = window
        self.name = f"popularity W={window}"
        self.params: dict[str, Any] = {"window": window}
        self.learner: Learner = self
        self._events: deque[tuple[str, int]] = deque()
        self._index: dict[str, int] = {}
        self._counts = np.zeros(0, dtype=np.int64)
        self._seen: dict[str, Counter[int]] = {}

    def _item(self, item: str) -> int:
        idx = self._index.setdefault(item, len(self._index))
        if idx >= len(self._counts):
            self._counts = np.concatenate((self._counts, np.zeros(max(16, idx + 1), np.int64)))
        return idx

    def warm(self, events: Sequence[Event]) -> None:
        for event in events:
            self.learn(event)

    def learn(self, event: Event) -> None:
        idx = self._item(event.item)
        self._counts[idx] += 1
        self._seen.setdefault(event.user, Counter())[idx] += 1
        self._events.append((event.user, idx))
        if len(self._events) > self.window:
            user, old = self._events.popleft()
            self._counts[old] -= 1
            mine = self._seen[user]
            mine[old] -= 1
            if not mine[old]:
                del mine[old]
                if not mine:
                    del self._seen[user]

    def recommend(self, user: str, n: int) -> list[str]:
        counts = self._counts[: len(self._index)]
        order = np.lexsort((np.arange(len(counts)), -counts))
        banned: Counter[int] | dict[int, int] = self._seen.get(user, {})
        ids = list(self._index)
        out: list[str] = []
        for idx in order.tolist():
            if len(out) == n or counts[idx] == 0:
                break
            if idx not in banned:
                out.append(ids[idx])
        return out

    def info(self) -> dict[str, Any]:
        return {}

    def diagnostics(self) -> dict[str, Any]:
        return {}


class RetrainedALS:
    """ALS refitted every ``retrain_every`` events on the last ``window`` events.

    Between retrains the model is frozen; the events since the last retrain are kept per user
    (as the serving replicas keep them) for the fold-in view. A fit happens at the end of the
    warm-up, so every strategy starts the test part with a model. ``fitter`` is the training
    engine's fit (``training.fit``, implicit, unless given: e.g. ``SparkEngine.fit``), named by
    ``engine``.
    """

    def __init__(
        self,
        params: ALSParams,
        retrain_every: int,
        window: int,
        scorers: Mapping[str, Any] | None = None,
        history_cap: int = 200,
        fitter: Callable[[WindowMatrix, ALSParams], Model] | None = None,
        engine: str = "implicit",
        ann: AnnParams | None = None,
    ) -> None:
        if retrain_every < 1:
            raise ValueError(f"retrain_every must be >= 1, got {retrain_every}")
        self.params = params
        self.retrain_every = retrain_every
        self.fitter = fitter or fit
        suffix = "" if engine == "implicit" else f" {engine}"
        self.name = f"als N={retrain_every} W={window}{suffix}"
        self.window = SlidingWindow(window)
        self.model: Model | None = None
        #: The registered scorers fitted beside ALS at every retrain, name -> params (for the
        #: EASE/blend views; ``training.with_scorer``).
        self.scorers: dict[str, Any] = dict(scorers or {})
        self.history_cap = history_cap
        #: The HNSW graph the trainer builds for big catalogues (``training.with_ann``), so a
        #: replay measures what approximate search costs in recall; None: exact ranking.
        self.ann = ann
        self.since: dict[str, list[tuple[str, float, float | None]]] = {}
        self._pending = 0
        self.fits = 0
        self.fit_seconds = 0.0
        self.item_item_seconds = 0.0

    def _retrain(self) -> None:
        started = time.perf_counter()
        model = self.fitter(self.window.build(), self.params)
        self.fit_seconds += time.perf_counter() - started
        # What the trainer adds (core/scoring/training.py): the ordered history and the item-item
        # model.
        history = history_for(
            self.window.contents(), model.user_ids, model.item_ids, self.history_cap
        )
        model = model.derive(history=history)
        for name, params in self.scorers.items():
            started = time.perf_counter()
            model = with_scorer(model, name, params)
            self.item_item_seconds += time.perf_counter() - started
        if self.ann is not None:
            model = with_ann(model, self.ann, 1)
        self.model = model
        self.fits += 1
        self.since.clear()
        self._pending = 0

    def warm(self, events: Sequence[Event]) -> None:
        self.window.extend(events)
        if len(self.window):
            self._retrain()

    def learn(self, event: Event) -> None:
        self.window.append(event)
        self.since.setdefault(event.user, []).append((event.item, event.weight, event.ts))
        self._pending += 1
        if self._pending >= self.retrain_every or self.model is None:
            self._retrain()

    def info(self) -> dict[str, Any]:
        return {"fits": self.fits, "fit_seconds": round(self.fit_seconds, 3),
                "item_item_seconds": round(self.item_item_seconds, 3)}


#: How an :class:`ALSView` answers: its kind -> (name prefix, what it does with recent events).
VIEWS = {
    "retrain-only": "retrain-only",  # the snapshot alone: the original service
    "retrain+filter": "retrain-only, recent filtered",  # snapshot vector, recent items removed
    "fold-in": "streamrec fold-in",  # refold the user's vector over the recent events too
}


class ALSView:
    """Answers from a :class:`RetrainedALS`.

    ``retrain-only`` is the original service: the snapshot alone, so items the user took since
    the retrain can come back and a user new since then gets the popular fallback.
    ``fold-in`` is streamrec's serving: the user's events since the snapshot are folded into
    their vector (and so also excluded). ``retrain+filter`` keeps the snapshot vector but
    excludes those items: it is not a service anyone runs, it splits fold-in's gain into the
    part that comes from filtering and the part that comes from the refolded vector.
    """

    def __init__(self, core: RetrainedALS, kind: str) -> None:
        if kind not in VIEWS:
            raise ValueError(f"unknown ALS view {kind!r}; one of {sorted(VIEWS)}")
        self.learner: Learner = core
        self.core = core
        self.kind = kind
        n, w = core.retrain_every, core.window.capacity
        self.name = f"{VIEWS[kind]} N={n} W={w}"
        self.params: dict[str, Any] = {"retrain_every": n, "window": w}
        self.calls = 0
        self.unknown_to_snapshot = 0  # asked for a user the last fit never saw

    def recommend(self, user: str, n: int) -> list[str]:
        model = self.core.model
        if model is None:
            return []
        self.calls += 1
        self.unknown_to_snapshot += not model.has_user(user)
        recent = self.core.since.get(user)
        if self.kind == "fold-in":
            return model.recommend(user, n, exclude_seen=True, extra=recent or None).items
        exclude = [e[0] for e in recent] if recent and self.kind != "retrain-only" else None
        return model.recommend(user, n, exclude_seen=True, exclude=exclude).items

    def diagnostics(self) -> dict[str, Any]:
        return {"unknown_to_snapshot": self.unknown_to_snapshot / max(1, self.calls)}


def scored_kind(scoring: ScoringParams) -> str:
    """``fold-in+recency`` (ALS alone), ``ease`` (item-item alone) or ``blend``, with ``+sr``
    when the sequential scorer has a weight."""
    sr = "+sr" if scoring.weights.get("sequential", 0.0) > 0 else ""
    if scoring.item_item_weight == 0.0:
        if sr:
            return "fold-in+sr+recency" if scoring.recency else "fold-in+sr"
        return "fold-in+recency" if scoring.recency else "fold-in (refolded)"
    base = ("ease" if scoring.item_item_weight == 1.0 else "blend") + sr
    return f"{base}+recency" if scoring.recency else base


class ScoredView:
    """Answers from a :class:`RetrainedALS` with the per-request scorer of
    ``core/scoring/blend.py``:
    the user's window history (recency-weighted) plus their events since the retrain."""

    def __init__(self, core: RetrainedALS, scoring: ScoringParams) -> None:
        missing = set(fitted_by_window(scoring.weights)) - set(core.scorers)
        if missing:
            raise ValueError(f"a blend of {sorted(missing)} needs a learner that fits them")
        self.learner: Learner = core
        self.core, self.scoring = core, scoring
        self.kind = scored_kind(scoring)
        n, w = core.retrain_every, core.window.capacity
        label = f"decay={scoring.recency_decay:g}"
        if scoring.recency_half_life is not None:
            label += f" half-life={scoring.recency_half_life:g}s"
        if 0 < scoring.item_item_weight < 1:
            label += f" β={scoring.item_item_weight:g}"
        if scoring.weights.get("sequential", 0.0) > 0:
            label += f" σ={scoring.sequential_weight:g}"
        self.name = f"{self.kind} {label} N={n} W={w}"
        self.params: dict[str, Any] = {"retrain_every": n, "window": w, **scoring.to_dict()}
        ii = core.scorers.get("item_item")
        if ii is not None and scoring.weights.get("item_item", 0.0) > 0:
            self.params["item_item_l2"] = ii.l2

    def recommend(self, user: str, n: int) -> list[str]:
        model = self.core.model
        if model is None:
            return []
        recent = self.core.since.get(user)
        return model.recommend(user, n, extra=recent or None, scoring=self.scoring).items

    def diagnostics(self) -> dict[str, Any]:
        return {}
