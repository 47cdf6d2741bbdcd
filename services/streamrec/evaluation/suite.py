"""Which strategies one evaluation run compares: a grid of retrain periods N and windows W.

For every (N, W) there is one ALS learner and three answers from it (retrain-only, the original
service; streamrec's fold-in; and, to explain the difference, the snapshot with recent items
filtered); for every W one popularity baseline; and one ISGD, which has neither N nor W. All
of them replay the same stream in the same run. ``scorings`` adds, per ALS learner, one
:class:`ScoredView` each (recency-weighted fold-in, EASE, blend); the learner then also fits the
item-item model when any of them uses it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.scorer import fitted_by_window
from streamrec.core.window.contents import WindowMatrix

from .isgd import ISGD
from .strategies import VIEWS, ALSView, Popularity, Recommender, RetrainedALS, ScoredView

__all__ = ["Grid", "IsgdParams", "build"]


@dataclass(frozen=True)
class IsgdParams:
    factors: int = 32
    learn_rate: float = 0.05
    regularization: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class Grid:
    retrain_every: Sequence[int] = (1_000, 5_000, 20_000)
    windows: Sequence[int] = (25_000, 100_000)
    als: ALSParams = field(default_factory=lambda: ALSParams(factors=32, iterations=8))
    isgd: IsgdParams = field(default_factory=IsgdParams)
    scorings: Sequence[ScoringParams] = ()
    #: The retrain periods whose learners get the scored views (each view costs a replay).
    scored_retrain_every: Sequence[int] = (5_000,)
    item_item: ItemItemParams = field(default_factory=ItemItemParams)

    @property
    def scorer_params(self) -> dict[str, Any]:
        """Params of the scorers fitted beside ALS, by registry name (others: defaults)."""
        return {"item_item": self.item_item}

    def __post_init__(self) -> None:
        if not self.retrain_every or not self.windows:
            raise ValueError("the grid needs at least one retrain period and one window")
        if min(self.retrain_every) < 1 or min(self.windows) < 1:
            raise ValueError("retrain periods and windows must be >= 1")


def build(grid: Grid, positive: float,
          fitter: Callable[[WindowMatrix, ALSParams], Model] | None = None,
          engine: str = "implicit") -> list[Recommender]:
    """The recommenders of a run, baselines first. ``positive`` is ISGD's training threshold
    (the same threshold that makes an event a test case). ``fitter``: the ALS learners' fit
    (default implicit's), from the training engine ``engine``."""
    out: list[Recommender] = [Popularity(w) for w in sorted(set(grid.windows))]
    i = grid.isgd
    out.append(ISGD(i.factors, i.learn_rate, i.regularization, min_weight=positive, seed=i.seed))
    for w in sorted(set(grid.windows)):
        for n in sorted(set(grid.retrain_every)):
            scorings = grid.scorings if n in grid.scored_retrain_every else ()
            # Every registered scorer some scoring weighs > 0, with the grid's params.
            needed = {name for sc in scorings for name in fitted_by_window(sc.weights)}
            scorers = {name: grid.scorer_params.get(name) for name in sorted(needed)}
            cap = max((sc.history_cap for sc in scorings), default=200)
            core = RetrainedALS(grid.als, n, w, scorers, cap, fitter, engine)
            out.extend(ALSView(core, kind) for kind in VIEWS)
            out.extend(ScoredView(core, sc) for sc in scorings)
    return out
