"""Model: implicit's math matched exactly, recommendations, fallbacks, batch == single."""

from __future__ import annotations

import warnings

import implicit.cpu.als
import implicit.gpu
import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from streamrec.core.events import Event
from streamrec.core.scoring.als import ALS
from streamrec.core.scoring.model import (
    ALSParams,
    Model,
    ModelError,
    Recommendations,
    UnknownItem,
    UnknownUser,
)
from streamrec.core.scoring.training import confidence_matrix, fit
from streamrec.core.window.sliding import SlidingWindow, WindowMatrix

PARAMS = ALSParams(factors=4, regularization=0.05, iterations=15, alpha=2.0, num_threads=1)


def checker_board(size: int = 12) -> WindowMatrix:
    """Like implicit's get_checker_board: user u likes the items of u's parity, except item u."""
    window = SlidingWindow(size * size)
    window.extend(
        Event(f"u{u}", f"i{i}", 1.0 + (u + i) % 3)
        for u in range(size)
        for i in range(u % 2, size, 2)
        if i != u
    )
    return window.build()


def random_matrix(users: int = 40, items: int = 30, events: int = 400, seed: int = 0):
    rng = np.random.default_rng(seed)
    window = SlidingWindow(events)
    window.extend(
        Event(f"u{rng.integers(users)}", f"i{rng.integers(items)}", float(rng.integers(1, 4)))
        for _ in range(events)
    )
    return window.build()


@pytest.fixture(scope="module")
def board() -> Model:
    return fit(checker_board(), PARAMS)


@pytest.fixture(scope="module")
def noisy() -> Model:
    return fit(random_matrix(), PARAMS)


def implicit_twin(model: Model) -> implicit.cpu.als.AlternatingLeastSquares:
    """An implicit estimator holding our factors, with alpha fixed at 1 as in training.py."""
    twin = implicit.cpu.als.AlternatingLeastSquares(
        factors=model.factors, regularization=model.als.regularization, alpha=1.0, num_threads=1
    )
    twin.user_factors = np.array(model.als.user_factors)
    twin.item_factors = np.array(model.als.item_factors)
    return twin


def parity(items: list[str]) -> set[int]:
    return {int(item[1:]) % 2 for item in items}


def test_fold_in_matches_implicit_recalculate_user(noisy):
    twin = implicit_twin(noisy)
    conf = confidence_matrix(noisy.user_items, noisy.als.alpha)
    with threadpool_limits(1, "blas"):
        for row in range(len(noisy.user_ids)):
            expected = twin.recalculate_user(row, conf[row])
            items, weights = noisy.row(row)
            np.testing.assert_allclose(noisy.als.fold_in(items, weights), expected, atol=1e-4)


def test_refolded_recommendations_match_implicit_recommend_with_recalculate_user(noisy):
    twin = implicit_twin(noisy)
    conf = confidence_matrix(noisy.user_items, noisy.als.alpha)
    row = noisy.user_index["u7"]
    with threadpool_limits(1, "blas"):
        ids, scores = twin.recommend(row, conf[row], N=5, recalculate_user=True)
    # An anonymous session of exactly u7's items is refolded the same way.
    session = noisy.recommend_anonymous(noisy.known_items("u7"), n=5)
    assert session.items == [noisy.item_ids[i] for i in ids]
    np.testing.assert_allclose(session.scores, scores, atol=1e-4)


def test_fold_in_sums_repeated_items(noisy):
    np.testing.assert_allclose(
        noisy.als.fold_in([3, 5, 3], [1.0, 2.0, 1.5]), noisy.als.fold_in([5, 3], [2.0, 2.5]),
        atol=1e-6,
    )


def test_fold_in_of_nothing_is_the_zero_vector(noisy):
    assert not noisy.als.fold_in([], []).any()


def test_confidence_is_one_plus_alpha_times_weight():
    user_items = sp.csr_matrix(np.array([[2.0, 0.0], [0.0, 0.5]], dtype=np.float32))
    assert confidence_matrix(user_items, 3.0).toarray().tolist() == [[7.0, 0.0], [0.0, 2.5]]


def test_recommendations_follow_the_checker_board(board):
    for user in ("u0", "u1", "u6", "u7"):
        result = board.recommend(user, n=1)
        assert result.items == [f"i{user[1:]}"]  # the one same-parity item they have not seen
        assert result.fallback is None


def test_seen_items_are_excluded_unless_asked_for(board):
    seen = {item for item, _ in board.known_items("u2")}
    assert not seen & set(board.recommend("u2", n=12).items)
    assert seen <= set(board.recommend("u2", n=12, exclude_seen=False).items)


def test_scores_are_sorted_best_first_and_match_the_dot_product(noisy):
    result = noisy.recommend("u3", n=8)
    assert result.scores == sorted(result.scores, reverse=True)
    row, items = noisy.user_index["u3"], [noisy.item_index[i] for i in result.items]
    expected = noisy.als.item_factors[items] @ noisy.als.user_factors[row]
    np.testing.assert_allclose(result.scores, expected, rtol=1e-5)


def test_whitelist_restricts_results_and_unknown_whitelisted_ids_are_ignored(board):
    result = board.recommend("u0", n=5, items=["i3", "i0", "i5", "nope", "i2"])
    assert sorted(result.items) == ["i0", "i3", "i5"]  # i2 is seen
    assert result.items[0] == "i0"


def test_blacklist_is_never_returned(board):
    assert "i0" not in board.recommend("u0", n=12, exclude=["i0"]).items
    assert "i4" not in board.recommend("u0", n=3, items=["i4", "i5"], exclude=["i4"]).items


def test_unknown_user_gets_popular_items_as_a_fallback(board):
    result = board.recommend("stranger", n=3)
    assert result.fallback == "popular"
    assert result.items == board.popular(3).items


def test_new_user_becomes_known_by_their_first_events(board):
    result = board.recommend("newcomer", n=3, extra=[("i1", 1.0), ("i3", 1.0)])
    assert result.fallback is None
    assert parity(result.items[:1]) == {1}
    assert not {"i1", "i3"} & set(result.items)


def test_extra_items_unknown_to_the_model_are_ignored_for_the_vector(board):
    with_unknown = board.recommend("newcomer", n=4, extra=[("i1", 1.0), ("brand-new", 5.0)])
    without = board.recommend("newcomer", n=4, extra=[("i1", 1.0)])
    assert with_unknown == without
    assert board.recommend("newcomer", extra=[("brand-new", 1.0)]).fallback == "popular"


def test_extra_events_move_a_known_user(board):
    # u0 has seen i2..i10 (even); after liking i1..i9 (odd) only i0 and i11 remain unseen.
    before = board.recommend("u0", n=1)
    after = board.recommend("u0", n=1, extra=[(f"i{k}", 20.0) for k in (1, 3, 5, 7, 9)])
    assert before.items == ["i0"] and after.items == ["i11"]


def test_extra_refolds_over_known_items_plus_the_new_ones(noisy):
    items, weights = noisy.row(noisy.user_index["u1"])
    vector = noisy.als.fold_in(np.append(items, noisy.item_index["i7"]), np.append(weights, 2.0))
    np.testing.assert_allclose(noisy.user_vector("u1", extra=[("i7", 2.0)]), vector, atol=1e-6)


def test_anonymous_session_is_a_new_user_fold_in(board):
    session = board.recommend_anonymous(["i1", ("i3", 1.0)], n=4)
    assert session == board.recommend("somebody", n=4, extra=[("i1", 1.0), ("i3", 1.0)])
    assert board.recommend_anonymous([], n=2).fallback == "popular"
    assert set(board.recommend_anonymous(["i1"], n=3, candidates=["i5", "i2"]).items) <= {
        "i5",
        "i2",
    }


def test_recommend_batch_gives_the_same_answers_as_one_by_one(noisy):
    users = ["u1", "u2", "nobody", "u1", "u5", "fresh"]
    extra = {"u2": [("i1", 3.0)], "fresh": [("i4", 1.0)]}
    for kwargs in (
        {},
        {"exclude": ["i2", "i9"]},
        {"items": ["i1", "i2", "i3", "i8"]},
        {"exclude_seen": False},
    ):
        batch = noisy.recommend_batch(users, n=5, extra=extra, **kwargs)
        assert list(batch) == ["u1", "u2", "nobody", "u5", "fresh"]
        for user, got in batch.items():
            want = noisy.recommend(user, n=5, extra=extra.get(user), **kwargs)
            assert got.items == want.items and got.fallback == want.fallback
            np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5)


def test_similar_items_rank_by_cosine_and_leave_the_item_out(board):
    result = board.similar_items("i2", n=4)
    assert "i2" not in result.items and parity(result.items) == {0}
    factors = board.als.item_factors
    target = factors[board.item_index["i2"]]
    best = factors[board.item_index[result.items[0]]]
    cosine = best @ target / np.linalg.norm(best) / np.linalg.norm(target)
    assert result.scores[0] == pytest.approx(float(cosine), rel=1e-5)
    with pytest.raises(UnknownItem):
        board.similar_items("nope")


def test_explain_matches_implicit(noisy):
    twin = implicit_twin(noisy)
    conf = confidence_matrix(noisy.user_items, noisy.als.alpha)
    row, item = noisy.user_index["u4"], noisy.item_index["i6"]
    _, expected, _ = twin.explain(row, conf, item, N=3)
    got = noisy.explain("u4", "i6", n=3)
    assert [i for i, _ in got] == [noisy.item_ids[i] for i, _ in expected]
    np.testing.assert_allclose([s for _, s in got], [s for _, s in expected], rtol=1e-3)


def test_explain_contributions_sum_to_the_refolded_score(noisy):
    shares = noisy.explain("u4", "i6", n=100)
    vector = noisy.user_vector("u4", extra=[])  # no extra: the fitted vector
    refolded = noisy.als.fold_in(*noisy.row(noisy.user_index["u4"]))
    target = noisy.als.item_factors[noisy.item_index["i6"]]
    assert sum(s for _, s in shares) == pytest.approx(float(refolded @ target), rel=1e-4)
    assert vector is not None
    with pytest.raises(UnknownUser):
        noisy.explain("nobody", "i6")
    with pytest.raises(UnknownItem):
        noisy.explain("u4", "nope")
    assert noisy.explain("nobody", "i6", extra=[("i1", 1.0)])[0][0] == "i1"


def test_known_items_are_listed_heaviest_first(board):
    known = board.known_items("u0")
    assert [w for _, w in known] == sorted((w for _, w in known), reverse=True)
    assert {i for i, _ in known} == {f"i{k}" for k in range(2, 12, 2)}
    with pytest.raises(UnknownUser):
        board.known_items("nobody")


def test_popular_orders_by_event_count_and_honours_exclusions(noisy):
    result = noisy.popular(5, exclude=[noisy.popular(1).items[0]])
    assert result.fallback is None and len(result.items) == 5
    assert result.scores == sorted(result.scores, reverse=True)
    counts = dict(zip(noisy.item_ids, noisy.popularity.tolist(), strict=True))
    assert result.scores == [counts[i] for i in result.items]


def test_n_is_a_limit_and_must_not_be_negative(board):
    assert board.recommend("u0", n=0) == Recommendations([], [], None)
    assert len(board.recommend("u0", n=100).items) == 12 - 5  # every item u0 has not seen
    with pytest.raises(ValueError):
        board.recommend("u0", n=-1)


def test_model_refuses_arrays_that_do_not_fit_together(board):
    def als(users: int) -> ALS:
        return ALS(board.als.user_factors[:users], board.als.item_factors, 0.05, 2.0)

    args = (board.user_ids, board.item_ids, board.user_items)
    with pytest.raises(ModelError):
        Model({"als": als(-1)}, *args, board.popularity, board.params)
    with pytest.raises(ModelError):
        Model({"als": als(12)}, *args, board.popularity[:-1], board.params)
    with pytest.raises(ModelError, match="ALS"):
        Model({"item_item": board.als}, *args, board.popularity, board.params)
    with pytest.raises(ValueError, match="factor shapes"):
        ALS(board.als.user_factors[:, :2], board.als.item_factors, 0.05, 2.0)


def test_fitting_an_empty_window_is_an_error():
    with pytest.raises(ModelError):
        fit(SlidingWindow(3).build(), PARAMS)


def test_fit_records_how_it_went_and_is_reproducible():
    matrix = checker_board(6)
    first, second = fit(matrix, PARAMS), fit(matrix, PARAMS)
    assert first.fit_info is not None and first.fit_info.device == "cpu"
    assert first.fit_info.loss is not None and first.fit_info.seconds >= 0
    np.testing.assert_array_equal(first.als.item_factors, second.als.item_factors)
    assert first.als.item_factors.dtype == np.float32


@pytest.mark.skipif(implicit.gpu.HAS_CUDA, reason="this implicit build has CUDA")
def test_asking_for_a_gpu_without_cuda_warns_and_fits_on_the_cpu():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = fit(checker_board(6), ALSParams(factors=4, iterations=2, use_gpu=True))
    assert any("CUDA" in str(w.message) for w in caught)
    assert model.fit_info is not None and model.fit_info.device == "cpu"


@pytest.mark.parametrize(
    "bad",
    [
        {"factors": 0},
        {"regularization": 0.0},
        {"iterations": 0},
        {"alpha": -1.0},
        {"num_threads": -1},
    ],
)
def test_invalid_hyperparameters_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        ALSParams(**bad)


def test_hyperparameters_round_trip_through_a_dict():
    params = ALSParams(factors=3, alpha=0.5, random_state=None)
    assert ALSParams.from_dict({**params.to_dict(), "from_the_future": 1}) == params
