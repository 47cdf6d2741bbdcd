"""The prequential (test-then-train) replay of an event stream, in time order.

Each event is first a test case, then training data. For a positive event (weight at least
``positive``) every recommender is asked for its top ``k`` for that user *before* anything has
learned the event; then every learner learns it. So an event's own item is never known to a
model when it is scored, which is the one property an online evaluation must not get wrong.

- The first ``warmup`` share of the stream is only learned (one bulk ``warm`` call).
- A user with no earlier event in the stream is *cold*: scored, but reported apart from the
  main (warm) metrics, because no personal model can know them.
- ``part`` scores only part of the test events: ``validation`` the first half, ``test`` the
  second, so settings tuned on one are reported on the other; ``validation`` stops the replay
  after its half (nothing later is scored), ``test`` still learns the first half.
- ``sample`` < 1 scores a uniform random subset of the positive test events (a fixed seed; every
  event is still learned), to bound the time on large streams without biasing the estimate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from streamrec.core.events.event import Event
from streamrec.core.scoring.hits import score

from .metrics import StrategyStats
from .strategies import Learner, Recommender

#: Which test events are scored: all, the first half (validation) or the second (test).
PARTS = ("all", "validation", "test")

__all__ = ["PARTS", "Protocol", "StrategyResult", "ReplayResult", "in_time_order", "replay"]


@dataclass(frozen=True)
class Protocol:
    k: int = 10
    positive: float = 4.0
    warmup: float = 0.2
    sample: float = 1.0
    seed: int = 0
    bins: int = 20
    part: str = "all"

    def __post_init__(self) -> None:
        if self.part not in PARTS:
            raise ValueError(f"part must be one of {', '.join(PARTS)}, got {self.part!r}")
        if self.k < 1 or self.bins < 1:
            raise ValueError("k and bins must be >= 1")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must be in [0, 1), got {self.warmup}")
        if not 0.0 < self.sample <= 1.0:
            raise ValueError(f"sample must be in (0, 1], got {self.sample}")


@dataclass(frozen=True)
class StrategyResult:
    name: str
    kind: str
    params: dict[str, Any]
    warm: dict[str, float | int | None]
    cold: dict[str, float | int | None]
    coverage: float
    us_per_recommend: float
    us_per_update: float
    learner: dict[str, Any]
    diagnostics: dict[str, Any]
    recall_over_time: list[float | None]


@dataclass(frozen=True)
class ReplayResult:
    protocol: dict[str, Any]
    events: int
    warmup_events: int
    test_events: int
    positive_test_events: int
    scored_events: int
    users: int
    items: int
    strategies: list[StrategyResult]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def in_time_order(events: Iterable[Event]) -> list[Event]:
    """Events sorted by timestamp, ties (and events without one) kept in arrival order."""
    listed = list(events)
    if any(e.ts is None for e in listed):
        return listed
    return sorted(listed, key=lambda e: e.ts if e.ts is not None else -math.inf)


def _test_part(test: Sequence[Event], protocol: Protocol) -> tuple[Sequence[Event], np.ndarray]:
    """The test events to replay and, per event, whether it is scored (bool, same length):
    a ``protocol.sample`` share of them, only in the half ``protocol.part`` names."""
    chosen = np.random.default_rng(protocol.seed).random(len(test)) < protocol.sample
    half = len(test) // 2
    if protocol.part == "validation":
        # Nothing after the validation half is scored: replaying it would only cost time
        # (a Spark-engine replay of ML-100K: half its retrains).
        return test[:half], chosen[:half]
    if protocol.part == "test":
        chosen[:half] = False
    return test, chosen


def _result(r: Recommender, s: StrategyStats, catalog: int, learn_seconds: float,
            events: int) -> StrategyResult:
    return StrategyResult(
        name=r.name,
        kind=r.kind,
        params=dict(r.params),
        warm=s.warm.mean(),
        cold=s.cold.mean(),
        coverage=s.coverage(catalog),
        us_per_recommend=1e6 * s.recommend_seconds / max(1, s.recommend_calls),
        us_per_update=1e6 * learn_seconds / max(1, events),
        learner=r.learner.info(),
        diagnostics=r.diagnostics(),
        recall_over_time=[b.mean()["recall"] for b in s.over_time],
    )


def replay(
    events: Sequence[Event],
    recommenders: Sequence[Recommender],
    protocol: Protocol = Protocol(),
    progress: Callable[[int, int], None] | None = None,
) -> ReplayResult:
    """Test-then-train over ``events`` (already in time order) for all ``recommenders``.

    ``progress(done, total)`` is called every 5,000 test events, if given.
    """
    learners: list[Learner] = []
    for r in recommenders:
        if not any(r.learner is seen for seen in learners):
            learners.append(r.learner)
    n_warm = int(len(events) * protocol.warmup)
    learn_seconds = {id(l_): 0.0 for l_ in learners}
    for learner in learners:
        started = time.perf_counter()
        learner.warm(events[:n_warm])
        learn_seconds[id(learner)] += time.perf_counter() - started
    users = {e.user for e in events[:n_warm]}
    test, chosen = _test_part(events[n_warm:], protocol)
    stats = {r.name: StrategyStats(protocol.bins) for r in recommenders}
    positives = scored = 0
    for j, event in enumerate(test):
        if event.weight >= protocol.positive:
            positives += 1
            if chosen[j]:
                scored += 1
                cold = event.user not in users
                for r in recommenders:
                    started = time.perf_counter()
                    items = r.recommend(event.user, protocol.k)
                    s = stats[r.name]
                    s.recommend_seconds += time.perf_counter() - started
                    s.recommend_calls += 1
                    s.add(score(items, event.item, protocol.k), items, cold, j / len(test))
        for learner in learners:
            started = time.perf_counter()
            learner.learn(event)
            learn_seconds[id(learner)] += time.perf_counter() - started
        users.add(event.user)
        if progress is not None and (j + 1) % 5000 == 0:
            progress(j + 1, len(test))
    catalog = len({e.item for e in events})
    results = [_result(r, stats[r.name], catalog, learn_seconds[id(r.learner)], len(events))
               for r in recommenders]
    return ReplayResult(
        protocol=asdict(protocol),
        events=len(events),
        warmup_events=n_warm,
        test_events=len(test),
        positive_test_events=positives,
        scored_events=scored,
        users=len(users),
        items=catalog,
        strategies=results,
    )
