"""Top-n selection: exactly the n best finite scores, best first, ties by position."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.core.scoring.ranking import ban, top_n


def reference(scores: np.ndarray, n: int) -> list[int]:
    finite = [p for p in range(len(scores)) if np.isfinite(scores[p])]
    return sorted(finite, key=lambda p: (-scores[p], p))[:n]


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(0, 3000),
    n=st.integers(0, 60),
    distinct=st.integers(1, 50),
    banned=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_top_n_is_the_sorted_prefix_of_the_finite_scores(size, n, distinct, banned, seed):
    rng = np.random.default_rng(seed)
    # Few distinct values: many ties, on both sides of the cut.
    scores = rng.integers(0, distinct, size).astype(np.float32)
    scores[rng.random(size) < banned] = -np.inf
    assert top_n(scores, n).tolist() == reference(scores, n)


def test_top_n_of_large_item_sets_takes_the_sampled_path_and_agrees():
    rng = np.random.default_rng(7)
    scores = rng.standard_normal(50_000).astype(np.float32)
    ban(scores, rng.integers(0, 50_000, 500))
    for n in (1, 10, 100, 1000):
        assert top_n(scores, n).tolist() == reference(scores, n)


def test_scores_sorted_against_the_sample_still_give_the_best():
    # Ascending scores: the strided sample's threshold admits many; the result is unchanged.
    scores = np.arange(20_000, dtype=np.float32)
    assert top_n(scores, 10).tolist() == list(range(19_999, 19_989, -1))
    scores[::8] = -np.inf  # the sample itself is banned: the plain path answers
    expected = [p for p in range(19_999, 0, -1) if p % 8][:10]
    assert top_n(scores, 10).tolist() == expected


def test_nothing_allowed_gives_nothing():
    assert top_n(np.full(5000, -np.inf, dtype=np.float32), 10).tolist() == []
    assert top_n(np.empty(0, dtype=np.float32), 10).tolist() == []
