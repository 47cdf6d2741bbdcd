"""The request path's optimisations answer exactly what the plain computation answers.

The served path reads the snapshot's arrays as plain views of the mapped files, skips
re-aggregating an aggregated history, sums item-item rows straight from the CSR arrays and
blends in place (issue 30, ``bench/serving.py``'s breakdown). Here a fixed model with the
default blend (ALS + item-item + recency) is answered both ways, user by user: by the
model as served (memory-mapped from a snapshot) and by a plain reference written from the
formulas with scipy's own operations; the lists must be equal, item by item.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
from tests.support.randommodel import random_model

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.core.events.feedback import aggregate
from streamrec.core.scoring.als import ALS
from streamrec.core.scoring.blend import ScoringParams, history_for, weighted_history
from streamrec.core.scoring.foldin import confidence
from streamrec.core.scoring.itemitem import ItemItemParams, fit_item_item, sparse_row_sum
from streamrec.core.scoring.model import Model
from streamrec.core.window.sliding import SlidingWindow

USERS, ITEMS, EVENTS, FACTORS = 300, 120, 6000, 8


def fixed_model(dense_items: int) -> tuple[Model, SlidingWindow]:
    """A seeded window, random ALS factors, the item-item model (EASE when ``dense_items``
    covers the catalogue, else cosine kNN), the history and the default scoring."""
    base, window = random_model(USERS, ITEMS, EVENTS, FACTORS, seed=7)
    scoring = ScoringParams()
    ii = fit_item_item(base.user_items, ItemItemParams(max_dense_items=dense_items, neighbours=20))
    history = history_for(window.contents(), base.user_ids, base.item_ids, scoring.history_cap)
    return base.derive(scorers={"item_item": ii}, history=history, scoring=scoring), window


def plain_top(model: Model, user: str, n: int) -> list[str]:
    """The default blend for ``user`` computed plainly: weighted history, ALS fold-in by
    LAPACK's positive-definite solve, item-item rows by scipy's fancy indexing, the blend of
    standardised scores, then a full sort with the user's items left out."""
    row = model.user_ids.get(user)
    assert row is not None and model.history is not None
    idx, w = aggregate(*weighted_history(model.history.row(row), True, [], model.scoring))
    als, ii = model.scorers["als"], model.scorers["item_item"]
    assert isinstance(als, ALS)
    y = np.asarray(als.item_factors, dtype=np.float64)
    c = confidence(w, als.alpha, als.confidence_cap)
    a = y.T @ y + als.regularization * np.eye(FACTORS) + (y[idx].T * (c - 1.0)) @ y[idx]
    x = scipy.linalg.solve(a, y[idx].T @ c, assume_a="pos").astype(np.float32)
    s_als = np.asarray(als.item_factors, dtype=np.float32) @ x
    if ii.dense is not None:
        s_ii = np.asarray(w.astype(np.float32) @ ii.dense[idx], dtype=np.float32)
    else:
        s_ii = np.asarray(ii.sparse[idx].T @ w.astype(np.float32), dtype=np.float32)
    table = model.blend_table(model.scoring)
    total = (table["als"] * (s_als / np.float32(np.std(s_als)))
             + table["item_item"] * (s_ii / np.float32(np.std(s_ii))))
    seen = model.user_items.indices[model.user_items.indptr[row]:model.user_items.indptr[row + 1]]
    total[seen] = -np.inf
    order = np.lexsort((np.arange(len(total)), -total))[:n]
    return [model.item_ids[k] for k in order.tolist() if np.isfinite(total[k])]


@pytest.mark.parametrize("dense_items", [1000, 10], ids=["ease", "cosine-knn"])
def test_served_lists_equal_the_plain_computation_user_by_user(tmp_path, dense_items):
    model, window = fixed_model(dense_items)
    write_snapshot(tmp_path / "s", model, window.contents(), {0: EVENTS}, "000000000001",
                   sync=False)
    served = read_snapshot(tmp_path / "s", mmap=True, window=False).model
    in_memory = read_snapshot(tmp_path / "s", mmap=False, window=False).model
    assert served.blend_table(served.scoring) == {"als": 0.5, "item_item": 0.5}
    assert served.scorers["item_item"].kind == ("ease" if dense_items >= ITEMS else "cosine-knn")
    for user in list(model.user_ids):
        want = plain_top(model, user, 10)
        assert served.recommend(user, n=10).items == want, user
        assert in_memory.recommend(user, n=10).items == want, user
    batch = served.recommend_batch(list(model.user_ids)[:50], n=10)
    assert all(batch[u].items == plain_top(model, u, 10) for u in batch)


def test_sparse_row_sum_equals_scipy_row_indexing_bit_for_bit():
    rng = np.random.default_rng(3)
    m = sp.random(400, 400, density=0.05, format="csr", dtype=np.float32, random_state=3)
    for k in (0, 1, 7, 90):
        rows = np.sort(rng.choice(400, k, replace=False)).astype(np.intp)
        w = rng.random(k).astype(np.float32)
        want = np.asarray(m[rows].T @ w, dtype=np.float32).reshape(-1)
        assert np.array_equal(sparse_row_sum(m, rows, w), want)


def test_aggregate_of_an_aggregated_history_is_itself_and_repeats_still_add_up():
    idx, w = np.array([2, 5, 9]), np.array([1.0, -1.0, 2.5])
    got = aggregate(idx, w)
    assert got[0].tolist() == [2, 5, 9] and got[1].tolist() == [1.0, -1.0, 2.5]
    again = aggregate(np.array([5, 2, 5, 9]), np.array([1.0, 1.0, -1.0, 2.0]))
    assert again[0].tolist() == [2, 5, 9] and again[1].tolist() == [1.0, -1.0, 2.0]
