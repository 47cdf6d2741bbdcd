"""The sequential scorer (sequential rules): its counts on hand-made streams, its query, its
place in the blend and in a snapshot, and what erasure leaves of it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.core.events import Event
from streamrec.core.events.erasure import Erasure, Tombstones
from streamrec.core.events.erasurekey import ErasureHasher
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.recency import History
from streamrec.core.scoring.scorer import SCORERS, InOrder, fitted_by_window
from streamrec.core.scoring.sequential import (
    Sequential,
    SequentialParams,
    query_weights,
    transitions,
)
from streamrec.core.scoring.training import fit, with_scorer, with_scoring
from streamrec.core.window.sliding import SlidingWindow

T0 = 1_700_000_000.0
SR_ONLY = ScoringParams(scorer_weights=(("sequential", 1.0),))
BLEND = ScoringParams(scorer_weights=(("als", 0.5), ("item_item", 0.2), ("sequential", 0.3)))


def _history(*users: list[tuple[int, float]]) -> History:
    """Each user's (item, weight) events in order."""
    rows = [r for r, events in enumerate(users) for _ in events]
    items = [i for events in users for i, _ in events]
    weights = [w for events in users for _, w in events]
    return History.from_events(rows, items, weights, np.zeros(len(items)), len(users), 1000)


def _dense(m: sp.csr_matrix) -> np.ndarray:
    return np.asarray(m.todense())


def test_sr_counts_each_later_item_within_the_steps_weighted_by_one_over_the_distance():
    t = _dense(transitions(_history([(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)]), 4, 2, 10))
    want = np.zeros((4, 4), np.float32)
    want[0, 1], want[0, 2] = 1.0, 0.5
    want[1, 2], want[1, 3] = 1.0, 0.5
    want[2, 3] = 1.0
    np.testing.assert_allclose(t, want)


def test_sr_sums_over_users_and_never_crosses_from_one_user_to_the_next():
    t = _dense(transitions(_history([(0, 1.0), (1, 1.0)], [(0, 1.0), (1, 1.0)], [(2, 1.0)]),
                           3, 10, 10))
    assert t[0, 1] == pytest.approx(2.0)
    assert t[1, 2] == 0.0  # user 0's last item is not followed by user 2's first


def test_negative_feedback_and_repeats_are_no_transitions():
    t = _dense(transitions(_history([(0, 1.0), (0, 1.0), (5, -1.0), (1, 1.0)]), 6, 1, 10))
    assert t[0, 0] == 0.0 and t[0, 5] == 0.0 and t[5, 1] == 0.0
    assert t[0, 1] == pytest.approx(1.0)  # the "no" on 5 is skipped, 0 then 1 are adjacent


def test_each_item_keeps_only_its_heaviest_successors():
    # item 0 followed by 1 three times, by 2 twice, by 3 once
    stream = [(0, 1.0), (1, 1.0)] * 3 + [(0, 1.0), (2, 1.0)] * 2 + [(0, 1.0), (3, 1.0)]
    t = transitions(_history(stream), 4, 1, 2)
    cols, vals = Sequential(t).successors_of(0)
    assert cols.tolist() == [1, 2] and vals.tolist() == pytest.approx([3.0, 2.0])
    assert t.getnnz(axis=1).max() <= 2


def test_the_query_weighs_the_newest_distinct_items_exponentially_by_position():
    items, weights = query_weights([4, 7, 4, 9], 3, 0.5)
    assert items.tolist() == [9, 4, 7]
    assert weights.tolist() == pytest.approx([1.0, np.exp(-0.5), np.exp(-1.0)])
    _, default = query_weights([4, 7, 4, 9], 2)  # the default decay, 0.3
    assert default.tolist() == pytest.approx([1.0, np.exp(-0.3)])
    _, flat = query_weights([4, 7, 9], 3, 0.0)
    assert flat.tolist() == [1.0, 1.0, 1.0]


def test_predecessor_counts_are_the_transitions_read_backwards():
    p = _dense(transitions(_history([(0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0)]), 4, 2, 10,
                           backward=True))
    want = np.zeros((4, 4), np.float32)
    want[1, 0], want[2, 0] = 1.0, 0.5
    want[2, 1], want[3, 1] = 1.0, 0.5
    want[3, 2] = 1.0
    np.testing.assert_allclose(p, want)


def test_a_request_sums_successors_and_predecessors_weighted_gamma():
    # T: 0 -> 1 (1.0), 1 -> 2 (2.0); P: 1 -> 0 (1.0), 2 -> 1 (2.0); history 0 then 1.
    t = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 2], [0, 0, 0]], np.float32))
    p = sp.csr_matrix(np.array([[0, 0, 0], [1, 0, 0], [0, 2, 0]], np.float32))
    sr = Sequential(t, SequentialParams(query_decay=0.5, predecessors=0.25), before=p)
    q = np.exp(-0.5)  # item 0 is the second newest
    np.testing.assert_allclose(sr.scores_in_order(np.array([0, 1])),
                               [0.25 * 1.0, q * 1.0, 2.0], rtol=1e-6)
    alone = Sequential(t, SequentialParams(query_decay=0.5, predecessors=0.0), before=p)
    np.testing.assert_allclose(alone.scores_in_order(np.array([0, 1])), [0.0, q, 2.0],
                               rtol=1e-6)


def test_bad_sequential_settings_are_refused():
    for bad in ({"steps": 0}, {"successors": -1}, {"query_items": 1.5}, {"steps": True},
                {"query_decay": -0.1}, {"predecessors": 1.5}, {"predecessors": float("nan")}):
        with pytest.raises(ValueError, match="sequential"):
            SequentialParams(**bad)


def test_the_sequential_scorer_is_registered_and_reads_the_order():
    assert SCORERS["sequential"] is Sequential
    assert isinstance(Sequential(sp.csr_matrix((3, 3), dtype=np.float32)), InOrder)
    assert fitted_by_window(BLEND.weights) == ["item_item", "sequential"]


# --- in a model ------------------------------------------------------------------------------


def _window() -> SlidingWindow:
    """Users walk a chain of items: i0 → i1 → ... → i9, each from a random start."""
    window = SlidingWindow(2_000)
    rng = np.random.default_rng(7)
    k = 0
    for u in range(60):
        start = int(rng.integers(0, 5))
        for i in range(start, start + 5):
            window.append(Event(f"u{u}", f"i{i}", 1.0, T0 + k))
            k += 1
    return window


@pytest.fixture(scope="module")
def model() -> Model:
    window = _window()
    m = fit(window.build(), ALSParams(factors=4, iterations=3, num_threads=1))
    m = with_scoring(m, window.contents(), SR_ONLY)
    m = with_scorer(m, "item_item", None, threads=1)
    return with_scorer(m, "sequential", SequentialParams(steps=3), threads=1)


def test_the_trainer_fits_sequential_rules_from_the_windows_order(model):
    sr = model.scorers["sequential"]
    assert isinstance(sr, Sequential)
    cols, _ = sr.successors_of(model.item_ids.get("i3"))
    assert model.item_ids[int(cols[0])] == "i4"  # what most often came right after i3


def test_what_comes_next_reads_the_forward_counts_alone_though_requests_read_both(model):
    sr = model.scorers["sequential"]
    assert isinstance(sr, Sequential) and sr.before is not None
    i3 = model.item_ids.get("i3")
    after = {model.item_ids[int(c)] for c in sr.successors_of(i3)[0]}
    before = {model.item_ids[int(c)] for c in sr.before[i3].indices}
    assert after == {"i4", "i5", "i6"} and before == {"i0", "i1", "i2"}
    assert set(model.next_items("i3", n=10).items) == {"i4", "i5", "i6"}


def test_without_predecessors_the_trainer_builds_only_the_forward_counts():
    window = _window()
    m = with_scoring(fit(window.build(), ALSParams(factors=2, iterations=1, num_threads=1)),
                     window.contents(), SR_ONLY)
    m = with_scorer(m, "sequential", SequentialParams(predecessors=0.0), threads=1)
    sr = m.scorers["sequential"]
    assert isinstance(sr, Sequential) and sr.before is None
    assert set(sr.to_arrays()) == {"indptr", "indices", "data"}


def test_a_new_event_changes_the_next_answer_through_the_sequential_term_with_no_retrain(model):
    before = model.recommend("new-user", n=1, extra=[("i2", 1.0, None)], scoring=SR_ONLY)
    after = model.recommend("new-user", n=1, extra=[("i2", 1.0, None), ("i5", 1.0, None),
                                                     ("i6", 1.0, None)], scoring=SR_ONLY)
    assert before.items == ["i3"] and after.items == ["i7"]


def test_the_sequential_term_lifts_what_comes_after_the_newest_item_in_the_blend(model):
    events = [("i0", 1.0, None), ("i1", 1.0, None), ("i5", 1.0, None)]
    without = ScoringParams(scorer_weights=(("als", 0.5), ("item_item", 0.2)))
    rank = lambda scoring: model.recommend(  # noqa: E731
        "new-user", n=7, extra=events, scoring=scoring).items.index("i6")
    assert rank(BLEND) < rank(without)


def test_a_history_of_negative_feedback_only_gets_the_popular_fallback(model):
    got = model.recommend("new-user", n=3, extra=[("i2", -1.0, None)], scoring=SR_ONLY)
    assert got.fallback == "popular" and "i2" not in got.items


def test_the_sequential_scorer_round_trips_through_a_snapshot(tmp_path, model):
    window = _window()
    write_snapshot(tmp_path / "s", model, window.contents(), {0: len(window)}, "000000000001")
    loaded = read_snapshot(tmp_path / "s", window=False).model
    sr, want = loaded.scorers["sequential"], model.scorers["sequential"]
    assert isinstance(sr, Sequential) and sr.params == want.params
    np.testing.assert_array_equal(_dense(sr.matrix), _dense(want.matrix))
    np.testing.assert_array_equal(_dense(sr.before), _dense(want.before))
    extra = [("i1", 1.0, None)]
    assert (loaded.recommend("u1", n=5, extra=extra, scoring=BLEND)
            == model.recommend("u1", n=5, extra=extra, scoring=BLEND))


def test_a_snapshot_without_predecessor_counts_scores_with_the_forward_ones_alone():
    arrays = {"indptr": np.array([0, 1, 1], np.int64), "indices": np.array([1], np.int32),
              "data": np.array([2.0], np.float32)}
    sr = Sequential.from_arrays(arrays, {"steps": 10, "successors": 100, "query_items": 20}, 2)
    assert sr.before is None and sr.params.predecessors == 0.35
    np.testing.assert_allclose(sr.scores_in_order(np.array([0])), [0.0, 2.0])


def test_a_snapshot_whose_transitions_do_not_fit_the_catalogue_is_refused():
    arrays = {"indptr": np.array([0, 1, 1], np.int64), "indices": np.array([5], np.int32),
              "data": np.array([1.0], np.float32)}
    with pytest.raises(ValueError, match="outside the catalogue"):
        Sequential.from_arrays(arrays, {}, 2)
    with pytest.raises(ValueError, match="items x items"):
        Sequential.from_arrays(arrays, {}, 3)


def test_an_erased_users_transitions_are_gone_from_the_next_fit():
    window = SlidingWindow(100)
    for k, (u, i) in enumerate([("a", "x"), ("a", "y"), ("b", "x"), ("b", "z"), ("c", "z")]):
        window.append(Event(u, i, 1.0, T0 + k))

    def successors_of_x(w: SlidingWindow) -> set[str]:
        m = with_scoring(fit(w.build(), ALSParams(factors=2, iterations=2, num_threads=1)),
                         w.contents(), SR_ONLY)
        m = with_scorer(m, "sequential", None, threads=1)
        cols, _ = m.scorers["sequential"].successors_of(m.item_ids.get("x"))
        return {m.item_ids[int(c)] for c in cols}

    assert successors_of_x(window) == {"y", "z"}
    window.erase(Tombstones.of([Erasure("user", "a", T0 + 10)], ErasureHasher("k" * 32)))
    assert successors_of_x(window) == {"z"}


def test_without_a_history_the_sequential_scorer_cannot_be_fitted():
    window = _window()
    m = fit(window.build(), ALSParams(factors=2, iterations=1, num_threads=1))
    with pytest.raises(ValueError, match="ordered history"):
        with_scorer(m, "sequential", None, threads=1)
