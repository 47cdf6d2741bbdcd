"""Negative feedback only ever lowers scores, and a user with only "no"s gets popular items.

Real ALS fits (implicit) and a real EASE on small synthetic windows of two taste groups; every
scoring the model has: plain ALS (the fitted vector, or a fold-in), recency, and the blend
with item-item. The property tests draw histories of positive events plus "no"s on other
items and check every item's score against the same history without the "no"s.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from tests.support.tastes import two_taste_groups
from threadpoolctl import threadpool_limits

from streamrec.core.scoring.blend import PLAIN, ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.negatives import bounded
from streamrec.core.scoring.training import fit, with_scorer, with_scoring
from streamrec.core.window.sliding import SlidingWindow

PARAMS = ALSParams(factors=4, iterations=15, regularization=0.05, num_threads=1,
                   random_state=7)
ITEMS = [f"{p}{i}" for p in "ab" for i in range(10)]
SCORINGS = {
    "plain": PLAIN,
    "recency": ScoringParams(recency_decay=0.3, item_item_weight=0.0),
    "blend": ScoringParams(recency_decay=0.05, item_item_weight=0.5),
    "item-item": ScoringParams(recency_decay=0.0, item_item_weight=1.0),
}


def _window() -> SlidingWindow:
    """Two taste groups (a-items, b-items); "dis" only disliked a0, "mixed" took a1 and a2 and
    disliked b0."""
    window = two_taste_groups()
    window.append("dis", "a0", -3.0)
    for item, w in (("a1", 1.0), ("a2", 1.0), ("b0", -3.0)):
        window.append("mixed", item, w)
    return window


@pytest.fixture(scope="module")
def model() -> Model:
    window = _window()
    with threadpool_limits(1, "blas"):
        m = fit(window.build(), PARAMS)
    m = with_scoring(m, window.contents(), SCORINGS["blend"])
    return with_scorer(m, "item_item", ItemItemParams(l2=10.0))


def _all(model: Model, user: str, extra: Any, scoring: ScoringParams) -> dict[str, float]:
    recs = model.recommend(user, n=len(ITEMS), exclude_seen=False, extra=extra or None,
                           scoring=scoring)
    return dict(zip(recs.items, recs.scores, strict=True))


@pytest.mark.parametrize("scoring", SCORINGS)
@pytest.mark.parametrize("how", ["in the snapshot", "since the snapshot"])
def test_a_user_whose_only_signal_is_a_dislike_gets_popular_items_minus_it(
        model: Model, scoring: str, how: str) -> None:
    user, extra = ("dis", None) if how == "in the snapshot" else ("new", [("a0", -3.0)])
    recs = model.recommend(user, n=5, extra=extra, scoring=SCORINGS[scoring])
    popular = [i for i in model.popular(n=6).items if i != "a0"][:5]
    assert recs.fallback == "popular"
    assert recs.items == popular


@pytest.mark.parametrize("how", ["in the snapshot", "since the snapshot"])
def test_the_batch_and_session_routes_give_a_dislike_only_user_the_popular_fallback(
        model: Model, how: str) -> None:
    user, extra = ("dis", {}) if how == "in the snapshot" else ("new", {"new": [("a0", -3.0)]})
    popular = [i for i in model.popular(n=6).items if i != "a0"][:5]
    model.scoring = PLAIN  # the batch form scores blocks of users only without personal scoring
    try:
        got = model.recommend_batch([user, "g0-1"], n=5, extra=extra)
    finally:
        model.scoring = SCORINGS["blend"]
    assert got[user].fallback == "popular" and got[user].items == popular
    assert got["g0-1"].fallback is None
    session = model.recommend_anonymous([("a0", -3.0)], n=5)
    assert session.fallback == "popular" and session.items == popular
    shown = model.recommend_anonymous([("a0", -3.0)], n=5, exclude_seen=False)
    assert "a0" not in shown.items


@pytest.mark.parametrize("scoring", SCORINGS)
def test_a_mixed_user_in_the_snapshot_is_scored_from_their_positive_items(
        model: Model, scoring: str) -> None:
    recs = model.recommend("mixed", n=5, exclude_seen=False, scoring=SCORINGS[scoring])
    assert recs.fallback is None
    assert "b0" not in recs.items
    assert sum(i.startswith("a") for i in recs.items) >= 4  # their taste: the a-items


@settings(max_examples=200, deadline=None)
@given(
    scoring=st.sampled_from(sorted(SCORINGS)),
    liked=st.lists(st.tuples(st.sampled_from(ITEMS), st.floats(0.5, 5.0)), min_size=1,
                   max_size=6),
    disliked=st.lists(st.tuples(st.sampled_from(ITEMS), st.floats(0.5, 50.0)), min_size=1,
                      max_size=6),
    user=st.sampled_from(["new", "g0-3", "g1-4"]),
)
def test_no_dislike_raises_any_items_score_above_the_score_without_it(
        model: Model, scoring: str, liked: list[tuple[str, float]],
        disliked: list[tuple[str, float]], user: str) -> None:
    sc = SCORINGS[scoring]
    # The "no"s come first, so the liked events keep their recency weights (one step back per
    # newer event): only the "no"s differ between the two histories. A snapshot user's history
    # is older still, and the "no"s would push it back: with recency, new users only.
    assume(user == "new" or not sc.recency)
    known = {i for i, _ in model.known_items(user)} if user != "new" else set()
    taken = {i for i, _ in liked} | known  # a "no" on these would cancel them: not the case
    noes = [(i, -w) for i, w in disliked if i not in taken]
    assume(noes)
    with threadpool_limits(1, "blas"):
        without = _all(model, user, liked, sc)
        with_noes = _all(model, user, [*noes, *liked], sc)
    rejected = {i for i, _ in noes}
    assert not rejected & set(with_noes)
    for item, score in with_noes.items():
        assert score <= without[item] + 1e-4 * max(1.0, abs(without[item])), item


def test_bounded_takes_the_smaller_score_and_none_without_a_positive_item() -> None:
    items, full = np.array([0, 1]), np.array([1.0, 5.0, -2.0], dtype=np.float32)
    positive = np.array([2.0, 3.0, 1.0], dtype=np.float32)
    got = bounded(items, np.array([2.0, -1.0]), lambda: full.copy(), lambda i, w: positive)
    assert got is not None and got.tolist() == [1.0, 3.0, -2.0]
    assert bounded(items, np.array([-2.0, -1.0]), lambda: full, lambda i, w: positive) is None
    only = bounded(items, np.array([2.0, 1.0]), lambda: full, lambda i, w: positive)
    assert only is full  # no negative feedback: one scoring, as before
