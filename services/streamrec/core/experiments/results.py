"""Per-arm counts of an experiment and what they say: rates, intervals, differences.

Each serving worker counts, per arm (``experiment.arm``), the lists it served, the lists
that got at least one attributed click, the attributed clicks, the eligible events, the hits,
and the sum and sum of squares of the hit ranks (`ArmCounts`); workers and replicas add them.
`summary` turns an experiment's counts into, per arm:

- ``ctr``: lists with at least one attributed click / lists served (a proportion, so it has a
  Wilson interval; the per-version CTR of ``/stats`` counts clicks, which can pass 1 per list);
- ``hit_rate``: hits / eligible events (the online tracker's definition,
  ``serving/online/tracker.py``), Wilson interval;
- ``mean_rank``: mean 1-based rank of the hits, normal interval;

and, for every arm after the first (the control), the difference to the control with its
interval (Newcombe's hybrid score interval for the proportions, Welch for the mean rank,
``intervals.py``) and a plain verdict: whether the interval still includes zero.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass
from typing import Any

from .intervals import Interval, mean_difference, mean_interval, newcombe, wilson
from .spec import Experiment

__all__ = ["ArmCounts", "summary", "verdict"]


@dataclass(slots=True)
class ArmCounts:
    """The counts of one arm (in one worker, or summed)."""

    lists: int = 0
    clicked: int = 0  # lists with at least one attributed click
    attributed: int = 0  # attributed clicks, each (list, item) once
    events: int = 0  # eligible positive events (hit-rate base)
    hits: int = 0
    rank_sum: int = 0
    rank_sq: int = 0

    def add_hit(self, rank: int) -> None:
        self.hits += 1
        self.rank_sum += rank
        self.rank_sq += rank * rank

    def to_list(self) -> list[int]:
        return list(astuple(self))

    @classmethod
    def from_list(cls, values: Sequence[int]) -> ArmCounts:
        return cls(*values[:7])

    def plus(self, other: ArmCounts) -> ArmCounts:
        return ArmCounts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))

    def rank_stats(self) -> tuple[int, float, float]:
        return self.hits, float(self.rank_sum), float(self.rank_sq)


def _d(i: Interval | None) -> dict[str, float | bool] | None:
    return None if i is None else i.to_dict()


def verdict(metric: str, diff: Interval | None, better_when_higher: bool = True) -> str:
    """One plain sentence on a difference to the control."""
    if diff is None:
        return f"{metric}: no data on one side yet"
    if diff.includes_zero:
        return (f"{metric}: the 95% interval [{diff.low:+.4g}, {diff.high:+.4g}] still includes "
                "zero: no difference shown yet")
    up = diff.low > 0
    better = up == better_when_higher
    return (f"{metric}: {'higher' if up else 'lower'} than control "
            f"({'better' if better else 'worse'}), 95% interval "
            f"[{diff.low:+.4g}, {diff.high:+.4g}] excludes zero")


def _arm(c: ArmCounts) -> dict[str, Any]:
    return {"lists": c.lists, "clicked_lists": c.clicked, "attributed": c.attributed,
            "events": c.events, "hits": c.hits,
            "ctr": _d(wilson(c.clicked, c.lists)),
            "hit_rate": _d(wilson(c.hits, c.events)),
            "mean_rank": _d(mean_interval(*c.rank_stats()))}


def _compare(arm: ArmCounts, control: ArmCounts) -> dict[str, Any]:
    ctr = newcombe(arm.clicked, arm.lists, control.clicked, control.lists)
    hit = newcombe(arm.hits, arm.events, control.hits, control.events)
    rank = mean_difference(arm.rank_stats(), control.rank_stats())
    return {"ctr": _d(ctr), "hit_rate": _d(hit), "mean_rank": _d(rank),
            "verdicts": [verdict("CTR", ctr), verdict("hit rate", hit),
                         verdict("mean hit rank", rank, better_when_higher=False)]}


def summary(experiment: Experiment, counts: Mapping[str, ArmCounts], now: float,
            ) -> dict[str, Any]:
    """An experiment's results: per arm (in spec order) and each arm against the first.

    ``counts`` maps arm names to their summed counts (missing arms count zero)."""
    arms = {a.name: counts.get(a.name, ArmCounts()) for a in experiment.arms}
    control = experiment.arms[0].name
    return {"name": experiment.name, "state": experiment.state(now), "start": experiment.start,
            "end": experiment.end, "traffic": experiment.traffic, "control": control,
            "method": {"proportions": "Wilson score interval (95%)",
                       "differences": "Newcombe hybrid score interval (95%), arm - control",
                       "mean_rank": "mean ± 1.96 s/√n; differences by Welch's standard error"},
            "arms": {name: _arm(c) for name, c in arms.items()},
            "vs_control": {name: _compare(c, arms[control]) for name, c in arms.items()
                           if name != control}}
