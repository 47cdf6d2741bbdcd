"""Prequential evaluation: metrics, test-then-train order, baselines, ISGD, synthetic data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from streamrec.core.events.event import Event
from streamrec.core.scoring.hits import score
from streamrec.core.scoring.model import ALSParams
from streamrec.evaluation.isgd import ISGD
from streamrec.evaluation.prequential import Protocol, in_time_order, replay
from streamrec.evaluation.strategies import ALSView, Learner, Popularity, RetrainedALS
from streamrec.evaluation.suite import Grid, build
from streamrec.evaluation.synthetic import SyntheticSpec, generate


def _stream(pairs: str) -> list[Event]:
    """'a x, b x' -> events with weight 1 and increasing timestamps."""
    out = []
    for t, pair in enumerate(pairs.split(",")):
        user, item = pair.split()
        out.append(Event(user, item, 1.0, float(t)))
    return out


def test_rank_metrics_of_one_held_out_item() -> None:
    assert score(["a", "b", "c"], "a", 10) == score(["a"], "a", 1)
    hit = score(["a", "b", "c"], "b", 10)
    assert (hit.recall, hit.rr) == (1.0, 0.5)
    assert hit.ndcg == pytest.approx(1 / math.log2(3))
    assert score(["a", "b", "c"], "c", 2).recall == 0.0  # beyond k
    assert score([], "c", 10).recall == 0.0


def test_popularity_recall_matches_the_hand_computed_replay() -> None:
    # W=3, k=1, warm-up = the first 2 events. Worked out by hand (window after learning):
    #   c y  cold; top is x -> miss            [ax bx cy]  x2 y1
    #   a y  a has x: top y -> hit             [bx cy ay]  x1 y2
    #   b z  b has x: top y -> miss            [cy ay bz]  y2 z1
    #   a x  a has y: top z -> miss            [ay bz ax]  y1 z1 x1
    #   c z  cy left the window: tie, x first seen -> miss   [bz ax cz]  z2 x1
    #   b x  b has z: top x -> hit
    events = _stream("a x, b x, c y, a y, b z, a x, c z, b x")
    result = replay(events, [Popularity(3)], Protocol(k=1, positive=1.0, warmup=0.25))
    (pop,) = result.strategies
    assert result.warmup_events == 2
    assert pop.warm["events"] == 5 and pop.warm["recall"] == pytest.approx(2 / 5)
    assert pop.warm["mrr"] == pytest.approx(2 / 5)
    assert pop.cold["events"] == 1 and pop.cold["recall"] == 0.0
    assert pop.coverage == 1.0  # x, y and z were each recommended once at least


class LastLearned:
    """Recommends the last item it learned for the user: it would hit every time if the replay
    trained on an event before scoring it."""

    kind = "test"
    name = "last learned"
    params: dict[str, Any] = {}

    def __init__(self) -> None:
        self.learner: Learner = self
        self.last: dict[str, str] = {}
        self.learned: list[Event] = []

    def warm(self, events: Sequence[Event]) -> None:
        for e in events:
            self.learn(e)

    def learn(self, event: Event) -> None:
        self.last[event.user] = event.item
        self.learned.append(event)

    def recommend(self, user: str, n: int) -> list[str]:
        return [self.last[user]] if user in self.last else []

    def info(self) -> dict[str, Any]:
        return {}

    def diagnostics(self) -> dict[str, Any]:
        return {}


def test_an_event_is_scored_before_it_is_learned() -> None:
    events = _stream("a 1, b 1, a 2, b 2, a 3, b 3, a 4, b 4, a 5, b 5")
    spy = LastLearned()
    result = replay(events, [spy], Protocol(k=10, positive=1.0, warmup=0.2))
    (only,) = result.strategies
    assert only.warm["events"] == 8
    assert only.warm["recall"] == 0.0  # each user's items are all different
    assert spy.learned == events  # every event learned once, in order


def test_all_strategies_give_metrics_within_bounds_on_a_small_stream() -> None:
    events = generate(SyntheticSpec(events=1500, users=60, items=120, clusters=4, seed=3))
    grid = Grid(retrain_every=(300,), windows=(800,),
                als=ALSParams(factors=8, iterations=2, num_threads=1))
    result = replay(events, build(grid, 4.0), Protocol(warmup=0.3, sample=0.5))
    assert [s.kind for s in result.strategies] == [
        "popularity", "isgd", "retrain-only", "retrain+filter", "fold-in"]
    assert 0 < result.scored_events <= result.positive_test_events < result.test_events
    for s in result.strategies:
        assert s.warm["events"] + s.cold["events"] == result.scored_events  # type: ignore[operator]
        for value in (s.warm["recall"], s.warm["ndcg"], s.warm["mrr"], s.coverage):
            assert value is not None and 0.0 <= value <= 1.0
        assert s.warm["ndcg"] <= s.warm["recall"]  # type: ignore[operator]
        assert all(r is None or 0.0 <= r <= 1.0 for r in s.recall_over_time)
    assert result.strategies[2].learner == result.strategies[4].learner  # the same fits
    assert result.strategies[2].learner["fits"] >= 1
    assert 0.0 <= result.strategies[2].diagnostics["unknown_to_snapshot"] <= 1.0


def test_only_retrain_only_recommends_again_an_item_taken_since_the_retrain() -> None:
    core = RetrainedALS(ALSParams(factors=4, iterations=2, num_threads=1), 1000, 1000)
    views = {kind: ALSView(core, kind) for kind in ("retrain-only", "retrain+filter", "fold-in")}
    core.warm(_stream("a x, b x, c x, a y, b y, c z"))  # x is the most popular
    core.learn(Event("new", "x"))  # after the fit: the model does not know it
    assert core.fits == 1
    assert "x" in views["retrain-only"].recommend("new", 2)
    assert "x" not in views["retrain+filter"].recommend("new", 2)
    assert "x" not in views["fold-in"].recommend("new", 2)


def test_isgd_step_reduces_the_error_of_a_repeated_pair() -> None:
    model = ISGD(factors=8, learn_rate=0.05, seed=1)
    model.learn(Event("u", "i", 5.0))
    errors = [abs(model.error("u", "i"))]
    for _ in range(200):
        model.learn(Event("u", "i", 5.0))
        errors.append(abs(model.error("u", "i")))
    assert all(b < a for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < errors[0] / 2


def test_isgd_remembers_but_does_not_train_on_weak_events() -> None:
    model = ISGD(factors=4, min_weight=4.0)
    model.learn(Event("u", "i", 5.0))
    model.learn(Event("u", "j", 2.0))
    before = model.error("u", "j")
    model.learn(Event("u", "j", 2.0))
    assert model.error("u", "j") == before and model.updates == 1
    assert "j" not in model.recommend("u", 10) and "i" not in model.recommend("u", 10)


def test_synthetic_stream_is_deterministic_time_ordered_and_never_repeats_a_pair() -> None:
    spec = SyntheticSpec(events=3000, users=100, items=300, clusters=5, seed=7)
    events = generate(spec)
    assert events == generate(spec) and len(events) > 2500
    assert events == in_time_order(events)
    assert len({(e.user, e.item) for e in events}) == len(events)
    assert all(1.0 <= e.weight <= 5.0 for e in events)
