"""Recency weights, EASE's closed form, the blend, and the snapshot arrays that carry them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import scipy.sparse as sp
from tests.support.snapshots import downgrade

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.core.events import Event
from streamrec.core.scoring.blend import PLAIN, ScoringParams, blend
from streamrec.core.scoring.itemitem import ItemItem, ItemItemParams, ease, fit_item_item
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.recency import History, recency_weights
from streamrec.core.scoring.training import fit, with_scorer, with_scoring
from streamrec.core.snapshot.manifest import ONE_USER_SIDE_FORMAT, SnapshotFormatError
from streamrec.core.window.sliding import SlidingWindow

# --- recency ---------------------------------------------------------------------------------


def test_recency_weights_decay_by_position_from_the_newest_event():
    r = recency_weights([1.0, 2.0, 4.0], decay=0.5)
    assert r == pytest.approx([1.0 * math.exp(-1.0), 2.0 * math.exp(-0.5), 4.0])


def test_recency_half_life_halves_an_event_per_half_life_before_the_newest():
    r = recency_weights([1.0, 1.0, 1.0, 1.0], [100.0, 200.0, 300.0, math.nan], half_life=100.0)
    assert r == pytest.approx([0.25, 0.5, 1.0, 1.0])  # no timestamp: not decayed by time


def test_recency_off_gives_the_plain_weights():
    assert recency_weights([3.0, 1.0]) == pytest.approx([3.0, 1.0])


@pytest.mark.parametrize("kwargs", [{"decay": -0.1}, {"decay": math.inf}, {"half_life": 0.0}])
def test_bad_recency_settings_are_refused(kwargs):
    with pytest.raises(ValueError, match="recency"):
        recency_weights([1.0], [1.0], **kwargs)


def test_history_keeps_each_users_newest_events_in_arrival_order():
    rows = [0, 1, 0, 0, 1, 0]
    items = [10, 20, 11, 12, 21, 13]
    h = History.from_events(rows, items, np.ones(6), np.arange(6.0), users=3, cap=3)
    assert h.row(0)[0].tolist() == [11, 12, 13]  # the oldest of four dropped
    assert h.row(0)[2].tolist() == [2.0, 3.0, 5.0]
    assert h.row(1)[0].tolist() == [20, 21]
    assert h.row(2)[0].tolist() == []


# --- EASE ------------------------------------------------------------------------------------


def test_ease_matches_the_hand_computed_closed_form():
    # X = [[1,1,0],[0,1,1]], λ = 1: G = XᵀX + I = [[2,1,0],[1,3,1],[0,1,2]],
    # P = G⁻¹ = [[5,-2,1],[-2,4,-2],[1,-2,5]] / 8, B_ij = -P_ij / P_jj, B_jj = 0.
    x = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0]]))
    expected = np.array([[0.0, 0.5, -0.2], [0.4, 0.0, 0.4], [-0.2, 0.5, 0.0]])
    np.testing.assert_allclose(ease(x, 1.0), expected, atol=1e-6)


def test_ease_binarises_the_weights():
    x = sp.csr_matrix(np.array([[3.0, 1.0, 0.0], [0.0, 5.0, 2.0]]))
    np.testing.assert_allclose(ease(x, 1.0), ease(x.sign(), 1.0), atol=1e-6)


def test_item_item_scores_sum_the_rows_of_the_users_items():
    b = np.array([[0.0, 0.5, -0.2], [0.4, 0.0, 0.4], [-0.2, 0.5, 0.0]], dtype=np.float32)
    dense = ItemItem("ease", dense=b)
    np.testing.assert_allclose(dense.scores([0, 2], [2.0, 1.0]), 2 * b[0] + b[2], atol=1e-6)
    sparse = ItemItem("cosine-knn", sparse=sp.csr_matrix(b))
    np.testing.assert_allclose(sparse.scores([0, 2], [2.0, 1.0]), 2 * b[0] + b[2], atol=1e-6)


def test_a_catalogue_beyond_the_dense_limit_falls_back_to_sparse_neighbours():
    rng = np.random.default_rng(0)
    x = sp.random(40, 30, density=0.2, format="csr", random_state=rng)
    model = fit_item_item(x, ItemItemParams(max_dense_items=20, neighbours=5), threads=1)
    assert model.kind == "cosine-knn" and model.sparse is not None
    assert model.sparse.diagonal().max() == 0  # an item is not its own neighbour
    assert np.diff(model.sparse.indptr).max() <= 5
    assert fit_item_item(x, ItemItemParams(max_dense_items=30)).kind == "ease"


# --- blend -----------------------------------------------------------------------------------


def test_blend_sums_standardised_scores_by_the_weight_table():
    als = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    ii = np.array([30.0, 10.0, 20.0], dtype=np.float32)
    seq = np.array([0.0, 0.0, 4.0], dtype=np.float32)
    expected = 0.25 * als / np.std(als) + 0.75 * ii / np.std(ii)
    got = blend({"als": als, "item_item": ii}, {"als": 0.25, "item_item": 0.75})
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    three = blend({"als": als, "item_item": ii, "seq": seq},
                  {"als": 0.5, "item_item": 0.25, "seq": 0.25})
    np.testing.assert_allclose(
        three, 0.5 * als / np.std(als) + 0.25 * ii / np.std(ii) + 0.25 * seq / np.std(seq),
        rtol=1e-6)


def test_a_blend_of_one_scorer_is_its_raw_scores():
    als = np.array([1.0, 2.0], dtype=np.float32)
    assert blend({"als": als}, {"als": 0.3}) is als
    with pytest.raises(ValueError):
        blend({}, {})


def test_the_item_item_and_sequential_weights_are_the_blend_table():
    assert ScoringParams(item_item_weight=0.3, sequential_weight=0.2).weights == {
        "als": 0.7, "item_item": 0.3, "sequential": 0.2}
    assert PLAIN.weights == {"als": 1.0, "item_item": 0.0, "sequential": 0.0}


def test_a_large_score_scale_does_not_dominate_the_blend():
    als = np.array([0.0, 1.0, 0.5], dtype=np.float32)  # prefers item 1
    ii = np.array([1000.0, 0.0, 900.0], dtype=np.float32)  # prefers item 0
    both = blend({"als": als, "item_item": ii}, {"als": 0.5, "item_item": 0.5})
    assert int(np.argmax(both)) == 2  # the item both like


@pytest.mark.parametrize(
    "kwargs", [{"item_item_weight": 1.5}, {"history_cap": 0}, {"recency_decay": -1.0}]
)
def test_bad_scoring_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        ScoringParams(**kwargs)


# --- a model with history and item-item ------------------------------------------------------


def _window() -> SlidingWindow:
    window = SlidingWindow(500)
    rng = np.random.default_rng(1)
    for k in range(400):
        u = int(rng.integers(20))
        # two taste groups: even users like items 0-14, odd users items 15-29
        i = int(rng.integers(15)) + 15 * (u % 2)
        window.append(Event(f"u{u}", f"i{i}", 1.0, 1_700_000_000.0 + k))
    return window


@pytest.fixture(scope="module")
def equipped():
    window = _window()
    model = fit(window.build(), ALSParams(factors=8, iterations=5, num_threads=1))
    model = with_scoring(model, window.contents(), ScoringParams())
    return with_scorer(model, "item_item", ItemItemParams(l2=5.0), threads=1)


def test_the_blend_table_keeps_the_scorers_the_model_holds_with_a_weight(equipped):
    assert equipped.blend_table(ScoringParams(item_item_weight=0.0)) == {"als": 1.0}
    assert equipped.blend_table(ScoringParams(item_item_weight=1.0)) == {"item_item": 1.0}
    assert equipped.blend_table(ScoringParams(item_item_weight=0.4)) == {
        "als": 0.6, "item_item": 0.4}
    plain = equipped.derive()
    plain.scorers.pop("item_item")
    assert plain.blend_table(ScoringParams(item_item_weight=1.0)) == {"als": 1.0}


def test_fitting_the_scorers_leaves_the_fitted_model_as_it_was():
    window = _window()
    model = fit(window.build(), ALSParams(factors=4, iterations=2, num_threads=1))
    equipped = with_scorer(with_scoring(model, window.contents(), ScoringParams()), "item_item",
                              ItemItemParams(l2=5.0), threads=1)
    assert set(model.scorers) == {"als"} and model.history is None and model.scoring == PLAIN
    assert set(equipped.scorers) == {"als", "item_item"} and equipped.history is not None
    assert equipped.als is model.als  # the same arrays, not a copy


def test_a_blended_answer_changes_after_one_new_event_with_no_retrain(equipped):
    before = equipped.recommend("u0", n=5)
    # u0 (an even user) takes an odd-group item: their list moves towards that group at once.
    after = equipped.recommend("u0", n=5, extra=[("i20", 1.0, 1_700_000_500.0)])
    assert after.items != before.items and "i20" not in after.items
    odd = lambda items: sum(int(i[1:]) >= 15 for i in items)  # noqa: E731
    assert odd(after.items) > odd(before.items)


def test_recency_makes_the_newest_event_count_most(equipped):
    strong = ScoringParams(recency_decay=2.0, item_item_weight=0.5)
    none = ScoringParams(recency_decay=0.0, item_item_weight=0.5)
    new = [("i20", 1.0, None), ("i21", 1.0, None)]
    odd = lambda items: sum(int(i[1:]) >= 15 for i in items)  # noqa: E731
    with_recency = equipped.recommend("u0", n=10, extra=new, scoring=strong).items
    without = equipped.recommend("u0", n=10, extra=new, scoring=none).items
    assert odd(with_recency) > odd(without)


def test_the_scored_path_ranks_the_whitelist_and_skips_seen_items(equipped):
    seen = {i for i, _ in equipped.known_items("u0")}
    recs = equipped.recommend("u0", n=3, items=["i1", "i2", "i16", "i17"])
    assert set(recs.items) <= {"i1", "i2", "i16", "i17"} - seen
    assert not set(equipped.recommend("u0", n=10).items) & seen


def test_batch_and_single_answers_agree_when_scored_per_request(equipped):
    batch = equipped.recommend_batch(["u0", "u1"], n=4, extra={"u1": [("i3", 1.0)]})
    assert batch["u0"] == equipped.recommend("u0", n=4)
    assert batch["u1"] == equipped.recommend("u1", n=4, extra=[("i3", 1.0)])


def test_an_unknown_user_with_no_events_gets_popular_items(equipped):
    assert equipped.recommend("nobody", n=3).fallback == "popular"


# --- snapshots -------------------------------------------------------------------------------


def test_history_and_item_item_round_trip_through_a_snapshot(tmp_path, equipped):
    window = _window()
    write_snapshot(tmp_path / "s", equipped, window.contents(), {0: 400}, "000000000001")
    loaded = read_snapshot(tmp_path / "s", window=False).model
    assert loaded.scoring == equipped.scoring
    ii, want = loaded.scorers["item_item"], equipped.scorers["item_item"]
    assert isinstance(ii.dense.base, np.memmap)  # a view of the mapped file, shared by workers
    np.testing.assert_array_equal(ii.dense, want.dense)
    np.testing.assert_array_equal(loaded.history.items, equipped.history.items)
    # Timestamps as float32 seconds after the earliest (format 8): the same to well under 1 s.
    assert loaded.history.ts.dtype == np.float32
    for user in range(loaded.history.users):
        np.testing.assert_allclose(loaded.history.row(user)[2], equipped.history.row(user)[2],
                                   rtol=0, atol=0.5)
    assert loaded.recommend("u3", n=5) == equipped.recommend("u3", n=5)


def test_history_timestamps_keep_unknowns_and_a_30_day_span_to_a_fifth_of_a_second() -> None:
    from streamrec.core.scoring.recency import History

    ts = np.array([1.7e9, np.nan, 1.7e9 + 30 * 86_400 - 0.3, 1.7e9 + 12.25])
    h = History(np.array([0, 4]), np.arange(4, dtype=np.int32), np.ones(4, np.float32), ts)
    compact, base = h.compact_ts()
    back = History(h.indptr, h.items, h.weights, compact, base).row(0)[2]
    assert compact.dtype == np.float32 and base == 1.7e9 and np.isnan(back[1])
    np.testing.assert_allclose(back[[0, 2, 3]], ts[[0, 2, 3]], rtol=0, atol=0.2)
    none = History(np.array([0, 1]), np.zeros(1, np.int32), np.ones(1, np.float32),
                   np.array([np.nan]))
    assert none.compact_ts()[1] == 0.0 and np.isnan(none.compact_ts()[0][0])


def test_a_sparse_item_item_model_round_trips(tmp_path):
    window = _window()
    model = fit(window.build(), ALSParams(factors=4, iterations=2, num_threads=1))
    model = with_scorer(with_scoring(model, window.contents(), ScoringParams()), "item_item",
                           ItemItemParams(max_dense_items=1, neighbours=4), threads=1)
    write_snapshot(tmp_path / "s", model, window.contents(), {0: 400}, "000000000001")
    loaded = read_snapshot(tmp_path / "s").model
    assert loaded.scorers["item_item"].kind == "cosine-knn"
    assert (loaded.scorers["item_item"].sparse != model.scorers["item_item"].sparse).nnz == 0
    assert loaded.recommend("u4", n=5) == model.recommend("u4", n=5)


def test_a_format_2_snapshot_still_reads_and_scores_as_before(tmp_path):
    window = _window()
    plain = fit(window.build(), ALSParams(factors=4, iterations=2, num_threads=1))
    write_snapshot(tmp_path / "s", plain, window.contents(), {0: 400}, "000000000001")
    manifest = tmp_path / "s" / "manifest.json"
    assert json.loads(manifest.read_text())["format_version"] == ONE_USER_SIDE_FORMAT
    body = downgrade(tmp_path / "s", 2)  # what the build of format 2 wrote: no scoring
    del body["params"]["scoring"]
    manifest.write_text(json.dumps(body))
    loaded = read_snapshot(tmp_path / "s").model
    assert loaded.scoring == PLAIN and loaded.history is None and set(loaded.scorers) == {"als"}
    assert loaded.recommend("u2", n=5) == plain.recommend("u2", n=5)
    # Recency still applies to fresh events on an old snapshot (its base is unordered).
    recency = ScoringParams(item_item_weight=0.0)
    assert loaded.recommend("u2", n=5, extra=[("i20", 1.0)], scoring=recency).items


def test_every_scorer_is_written_under_its_name_and_read_through_the_registry(tmp_path,
                                                                              equipped):
    write_snapshot(tmp_path / "s", equipped, _window().contents(), {0: 400}, "000000000001")
    body = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert body["params"]["scorers"] == ["als", "item_item"]
    assert {"als.user_factors", "als.item_factors", "item_item.dense"} <= set(body["files"])
    assert body["params"]["item_item"]["kind"] == "ease" and body["params"]["als"]["alpha"] == 1.0
    loaded = read_snapshot(tmp_path / "s").model
    assert list(loaded.scorers) == ["als", "item_item"]


def test_a_snapshot_with_a_scorer_this_build_does_not_know_is_refused(tmp_path, equipped):
    write_snapshot(tmp_path / "s", equipped, _window().contents(), {0: 400}, "000000000001")
    manifest = tmp_path / "s" / "manifest.json"
    body = json.loads(manifest.read_text())
    body["params"]["scorers"].append("sessionknn")
    manifest.write_text(json.dumps(body))
    with pytest.raises(SnapshotFormatError, match="unknown scorer 'sessionknn'"):
        read_snapshot(tmp_path / "s")
