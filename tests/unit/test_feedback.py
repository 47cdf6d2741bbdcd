"""Feedback types and negative feedback: the type table, and the math of a "no" in the window,
the ALS fit and the fold-in (implicit's negative entries: preference 0, confidence 1+alpha|w|)."""

from __future__ import annotations

import implicit.cpu.als
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.tastes import two_taste_groups
from threadpoolctl import threadpool_limits

from streamrec.config import Config, ConfigError
from streamrec.core.events import Event, InvalidEvent, parse_batch, parse_event, serialize_event
from streamrec.core.events.feedback import (
    DEFAULT_WEIGHTS,
    FeedbackError,
    aggregate,
    merge_table,
    parse_table,
)
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.training import confidence_matrix, fit
from streamrec.core.window.sliding import SlidingWindow
from streamrec.operator.env import config_data
from streamrec.operator.fields import InvalidSpec
from streamrec.operator.spec import parse_spec

PARAMS = ALSParams(factors=4, iterations=15, regularization=0.05, num_threads=1,
                   random_state=7)

# -- the type table ---------------------------------------------------------------------------


def test_a_type_sets_the_weight_and_an_explicit_weight_counts_events():
    assert parse_event(b'{"user":"u","item":"i","type":"purchase"}').weight == 5.0
    assert parse_event(b'{"user":"u","item":"i","type":"purchase","weight":2}').weight == 10.0
    assert parse_event(b'{"user":"u","item":"i","type":"dislike"}').weight == -3.0
    assert parse_event(b'{"user":"u","item":"i","weight":4}').weight == 4.0  # as before types
    assert parse_event(b'{"user":"u","item":"i","weight":-2}').weight == -2.0  # resolved form


def test_a_configured_table_replaces_the_defaults_it_names():
    table = merge_table({"purchase": 20.0, "share": 2.5})
    assert table["purchase"] == 20.0 and table["share"] == 2.5
    assert table["dislike"] == DEFAULT_WEIGHTS["dislike"]
    raw = b'{"user":"u","item":"i","type":"share"}'
    assert parse_event(raw, weights=table).weight == 2.5
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw)  # not in the default table
    assert err.value.reason == "unknown_type" and "share" in err.value.detail


@pytest.mark.parametrize(("raw", "reason"), [
    (b'{"user":"u","item":"i","type":"purchse"}', "unknown_type"),
    (b'{"user":"u","item":"i","type":3}', "bad_type"),
    (b'{"user":"u","item":"i","type":"click","weight":-1}', "bad_weight"),
    (b'{"user":"u","item":"i","type":"purchase","weight":1e6}', "bad_weight"),  # 5e6 > 1e6
    (b'{"user":"u","item":"i","weight":0}', "bad_weight"),
    (b'{"user":"u","item":"i","weight":-2e6}', "bad_weight"),
    (b"u:i:-1", "bad_weight"),  # text weights stay positive
    (b'{"erase":"user","id":"u","at":1}', "control_record"),
    (b'{"erase":"everything","id":"u","at":1}', "bad_control"),
])
def test_bad_typed_events_are_refused_with_a_reason(raw: bytes, reason: str):
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw)
    assert err.value.reason == reason, err.value.detail


def test_unknown_types_are_dead_lettered_in_a_batch_and_negatives_pass_min_weight():
    values = [b'{"user":"u","item":"i","type":"dislike"}', b'{"user":"u","item":"j","type":"x"}',
              b'{"user":"u","item":"k","type":"view"}', b"u:m:9"]
    batch = parse_batch(values, min_weight=1.0)
    assert [e.item for e in batch.events] == ["i", "m"]  # view (0.5) is below min_weight
    assert batch.filtered == 1
    assert [(i, e.reason) for i, e in batch.rejected] == [(1, "unknown_type")]


def test_a_resolved_event_serialises_to_the_same_signed_weight():
    event = parse_event(b'{"user":"u","item":"i","type":"hide"}')
    assert parse_event(serialize_event(event)) == event
    with pytest.raises(InvalidEvent):
        serialize_event(event, "text")


@pytest.mark.parametrize("text", ["click", "click=", "click=x", "click=1,click=2", "Click=1",
                                  "click=0", "click=1e7", "click=nan", "click=1_0",
                                  ",,", "click=1,,like=2", "click=1,"])
def test_a_malformed_table_is_refused_naming_the_entry(text: str):
    with pytest.raises(FeedbackError):
        parse_table(text)


@pytest.mark.parametrize("text", ["", " "])
def test_an_empty_table_text_keeps_the_defaults(text: str):
    assert parse_table(text) == {}


def test_the_table_comes_from_env_and_a_bad_one_names_the_field():
    cfg = Config.from_env({"STREAMREC_FEEDBACK_WEIGHTS": "purchase=8, refund=-4"})
    assert cfg.feedback["purchase"] == 8.0 and cfg.feedback["refund"] == -4.0
    assert cfg.feedback["click"] == 1.0
    assert Config().feedback == DEFAULT_WEIGHTS
    with pytest.raises(ConfigError) as err:
        Config.from_env({"STREAMREC_FEEDBACK_WEIGHTS": "purchase=0"})
    assert err.value.field == "feedback_weights" and "STREAMREC_FEEDBACK_WEIGHTS" in str(err.value)


def _spec(model: dict) -> dict:
    return {"image": {"repository": "r", "tag": "t"}, "kafka": {"bootstrapServers": "k:9092"},
            "snapshots": {"bucket": "recs-bucket", "credentialsSecret": "s"}, "model": model}


def test_the_cr_spec_sets_the_table_and_a_bad_one_is_rejected_naming_the_field():
    spec = parse_spec(_spec({"feedbackWeights": {"purchase": 9, "dislike": -1}}))
    env = config_data("rec", spec)["STREAMREC_FEEDBACK_WEIGHTS"]
    assert Config.from_env({"STREAMREC_FEEDBACK_WEIGHTS": env}).feedback["purchase"] == 9.0
    assert "STREAMREC_FEEDBACK_WEIGHTS" not in config_data("rec", parse_spec(_spec({})))
    for bad in ({"Bad Name": 1}, {"click": 0}, {"click": "high"}, ["click"]):
        with pytest.raises(InvalidSpec) as err:
            parse_spec(_spec({"feedbackWeights": bad}))
        assert err.value.field_path == "spec.model.feedbackWeights"


# -- negative feedback in the window ------------------------------------------------------------


def test_a_negative_event_cancels_the_earlier_events_of_its_item_and_later_ones_add():
    items, net = aggregate([1, 1, 2, 1, 1], [1.0, 1.0, 4.0, -3.0, 1.0])
    assert dict(zip(items.tolist(), net.tolist(), strict=True)) == {1: -2.0, 2: 4.0}
    # Without negatives: a plain sum, in any order.
    items, net = aggregate([2, 1, 2], [1.0, 1.0, 2.0])
    assert net.tolist() == [1.0, 3.0]


def test_the_window_applies_the_same_rule_and_popularity_counts_positive_events_only():
    window = SlidingWindow(100)
    window.extend([Event("a", "x", 1.0), Event("a", "x", 1.0), Event("b", "x", 1.0),
                   Event("a", "x", -3.0), Event("b", "y", 2.0)])
    m = window.build()
    cell = dict(zip(((m.user_ids[r], m.item_ids[c]) for r, c in zip(*m.user_items.nonzero(),
                                                                        strict=True)),
                    m.user_items.data.tolist(), strict=True))
    assert cell == {("a", "x"): -3.0, ("b", "x"): 1.0, ("b", "y"): 2.0}
    assert dict(zip(m.item_ids, m.popularity.tolist(), strict=True)) == {"x": 3.0, "y": 1.0}


# -- negative feedback in the fit and the fold-in ----------------------------------------------


def _groups(extra: list[Event]) -> SlidingWindow:
    """Two taste groups: users g0-* take items a0-a9, users g1-* take items b0-b9."""
    window = two_taste_groups()
    window.append("me", "a0", 1.0)
    window.append("me", "a1", 1.0)
    window.append("me", "a2", 1.0)
    window.extend(extra)
    return window


def _score(model, user: str, item: str) -> float:  # noqa: ANN001
    return float(model.als.user_factors[model.user_index[user]]
                 @ model.als.item_factors[model.item_index[item]])


def test_a_dislike_lowers_the_item_score_in_the_als_fit():
    with threadpool_limits(1, "blas"):
        without = fit(_groups([]).build(), PARAMS)
        disliked = fit(_groups([Event("me", "a3", -3.0)]).build(), PARAMS)
    assert _score(without, "me", "a3") > 0.2  # the item the user would be offered
    assert _score(disliked, "me", "a3") < _score(without, "me", "a3") - 0.1


def test_a_dislike_after_clicks_lowers_the_item_score_in_the_fit():
    clicks = [Event("me", "a3", 1.0)] * 3
    with threadpool_limits(1, "blas"):
        liked = fit(_groups(clicks).build(), PARAMS)
        then_no = fit(_groups([*clicks, Event("me", "a3", -3.0)]).build(), PARAMS)
    assert _score(then_no, "me", "a3") < _score(liked, "me", "a3") - 0.2


def test_a_dislike_lowers_the_item_score_in_the_fold_in_and_matches_implicit():
    with threadpool_limits(1, "blas"):
        model = fit(_groups([]).build(), PARAMS)
    a = [model.item_index[i] for i in ("a0", "a1", "a2", "a3")]
    y3 = model.als.item_factors[a[3]]
    plain = model.als.fold_in(a[:3], [1.0, 1.0, 1.0])
    no = model.als.fold_in(a, [1.0, 1.0, 1.0, -3.0])
    clicked_then_no = model.als.fold_in([*a, a[3]], [1.0, 1.0, 1.0, 2.0, -3.0])
    assert float(y3 @ no) < float(y3 @ plain)
    np.testing.assert_allclose(clicked_then_no, no, atol=1e-6)  # the "no" cancels the clicks
    # The same system as implicit's recalculate_user on the signed confidence row.
    twin = implicit.cpu.als.AlternatingLeastSquares(factors=model.factors, alpha=1.0,
                                                    regularization=model.als.regularization)
    twin.user_factors, twin.item_factors = np.array(model.als.user_factors), np.array(
        model.als.item_factors)
    import scipy.sparse as sp
    row = sp.csr_matrix((np.array([1.0, 1.0, 1.0, -3.0]), (np.zeros(4, int), a)),
                        shape=(1, len(model.item_ids)))
    with threadpool_limits(1, "blas"):
        expected = twin.recalculate_user(0, confidence_matrix(row, model.als.alpha))
    np.testing.assert_allclose(no, expected, atol=1e-4)


def test_an_item_with_negative_feedback_is_never_recommended_even_with_seen_items_shown():
    with threadpool_limits(1, "blas"):
        model = fit(_groups([]).build(), PARAMS)
    first = model.recommend("me", n=3, exclude_seen=False).items[0]
    for extra in ([(first, -3.0)], [(first, 1.0), (first, -5.0)]):
        shown = model.recommend("me", n=30, exclude_seen=False, extra=extra).items
        assert first not in shown
        batch = model.recommend_batch(["me"], n=30, exclude_seen=False, extra={"me": extra})
        assert first not in batch["me"].items
    # A later positive event outweighing the "no" brings it back.
    again = model.recommend("me", n=30, exclude_seen=False, extra=[(first, -1.0), (first, 5.0)])
    assert first in again.items


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 10_000), confidence=st.floats(0.01, 1000.0))
def test_a_no_on_an_item_never_moves_its_fold_in_score_away_from_zero(seed: int,
                                                                        confidence: float):
    # Sherman-Morrison: preference 0 with confidence c multiplies the item's score by
    # 1 / (1 + (c - 1) y^T A^-1 y), in (0, 1]: a positive score never goes up (docs/feedback.md).
    from streamrec.core.scoring.foldin import fold_in, gram

    rng = np.random.default_rng(seed)
    y = rng.normal(size=(30, 6)).astype(np.float32)
    g = gram(y, 0.1)
    history = rng.choice(29, size=5, replace=False)
    weights = rng.uniform(0.5, 5.0, size=5)
    plain = float(y[29] @ fold_in(y, g, history, weights, alpha=1.0))
    no = float(y[29] @ fold_in(y, g, [*history, 29], [*weights, -confidence], alpha=1.0))
    assert abs(no) <= abs(plain) + 1e-5
    assert np.sign(no) in (0.0, np.sign(plain)) or abs(no) < 1e-5
