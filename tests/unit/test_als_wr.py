"""ALS-WR regularization (Spark's λ·n⁺) in the fold-in, the ALS scorer and the snapshot.

No JVM: the systems are built by hand and checked against the objective's gradient.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.core.events import Event
from streamrec.core.scoring import foldin
from streamrec.core.scoring.als import ALS
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.training import fit
from streamrec.core.scoring.types import FitInfo
from streamrec.core.window.sliding import SlidingWindow

RNG = np.random.default_rng(7)
Y = RNG.normal(size=(6, 3))  # 6 items, 3 factors
LAMBDA, ALPHA = 0.3, 2.0


def _gradient(x: np.ndarray, weights: np.ndarray, ridge: float) -> np.ndarray:
    """∂/∂x of Σ_i c_i (p_i − yᵢᵀx)² + ridge·|x|² / 2 over every item (c = 1, p = 0 where the
    user has no event): the Hu–Koren–Volinsky user objective, written out without the
    fold-in's shortcut (YᵀY + correction)."""
    c = 1.0 + ALPHA * np.abs(weights)
    p = (weights > 0).astype(float)
    return -(Y.T @ (c * (p - Y @ x))) + ridge * x


def test_fold_in_with_ridge_per_positive_solves_the_als_wr_system_by_hand():
    # Net weights per item: 0 -> 2 (two events), 2 -> 1, 3 -> -1 (negative feedback), 5 -> 0.5.
    items, weights = [0, 2, 0, 3, 5], [1.0, 1.0, 1.0, -1.0, 0.5]
    net = np.zeros(6)
    net[[0, 2, 3, 5]] = [2.0, 1.0, -1.0, 0.5]
    n_plus = 3  # items 0, 2 and 5; the negative one does not count
    x = foldin.fold_in(Y, foldin.gram(Y, 0.0), items, weights, ALPHA,
                       ridge_per_positive=LAMBDA).astype(np.float64)
    assert np.abs(_gradient(x, net, LAMBDA * n_plus)).max() < 1e-5
    # ... and it is not the constant-λ solution, which the same check refutes.
    constant = foldin.fold_in(Y, foldin.gram(Y, LAMBDA), items, weights, ALPHA).astype(float)
    assert np.abs(_gradient(constant, net, LAMBDA)).max() < 1e-5
    assert np.abs(_gradient(constant, net, LAMBDA * n_plus)).max() > 1e-3


def test_a_user_with_only_negative_feedback_gets_a_finite_vector_under_als_wr():
    x = foldin.fold_in(Y, foldin.gram(Y, 0.0), [1, 4], [-1.0, -2.0], ALPHA,
                       ridge_per_positive=LAMBDA)
    assert np.isfinite(x).all() and np.allclose(x, 0.0, atol=1e-6)  # b = 0: nothing preferred


def test_contributions_follow_the_scaling_and_sum_to_the_score():
    items, weights = [0, 2, 5], [2.0, 1.0, 0.5]
    g = foldin.gram(Y, 0.0)
    x = foldin.fold_in(Y, g, items, weights, ALPHA, ridge_per_positive=LAMBDA)
    idx, shares = foldin.contributions(Y, g, items, weights, ALPHA, 4, ridge_per_positive=LAMBDA)
    assert list(idx) == [0, 2, 5]
    assert shares.sum() == pytest.approx(float(Y[4] @ x), rel=1e-5)


def test_the_als_scorer_folds_in_by_its_recorded_scaling():
    users = np.zeros((1, 3), dtype=np.float32)
    items = Y.astype(np.float32)
    wr = ALS(users, items, LAMBDA, ALPHA, regularization_scaling=foldin.POSITIVES)
    plain = ALS(users, items, LAMBDA, ALPHA)
    hist, w = np.array([0, 2, 5]), np.array([2.0, 1.0, 0.5])
    expected = foldin.fold_in(items, foldin.gram(items, 0.0), hist, w, ALPHA,
                              ridge_per_positive=LAMBDA)
    np.testing.assert_allclose(wr.fold_in(hist, w), expected, rtol=1e-6)
    np.testing.assert_allclose(plain.fold_in(hist, w),
                               foldin.fold_in(items, foldin.gram(items, LAMBDA), hist, w, ALPHA),
                               rtol=1e-6)
    assert wr.meta()["regularization_scaling"] == "positives"
    assert plain.meta()["regularization_scaling"] == "constant"


def test_an_unknown_scaling_is_refused_and_a_missing_one_means_constant():
    arrays = {"user_factors": np.zeros((1, 3), np.float32), "item_factors": Y.astype(np.float32)}
    with pytest.raises(ValueError, match="regularization_scaling"):
        ALS.from_arrays(arrays, {"regularization": 0.1, "alpha": 1.0,
                                 "regularization_scaling": "per-item"}, 6)
    old = ALS.from_arrays(arrays, {"regularization": 0.1, "alpha": 1.0}, 6)
    assert old.regularization_scaling == foldin.CONSTANT


def test_the_manifest_records_the_engine_and_scaling_and_serving_folds_in_by_them(tmp_path):
    window = SlidingWindow(100)
    window.extend(Event(f"u{k % 5}", f"i{(k * 7) % 9}", 1.0 + k % 2) for k in range(40))
    implicit_model = fit(window.build(), ALSParams(factors=3, iterations=2, num_threads=1))
    base = implicit_model.als
    # What the spark engine hands the writer: the same arrays, fitted under ALS-WR.
    spark_like = Model(
        scorers={"als": ALS(base.user_factors, base.item_factors, base.regularization,
                            base.alpha, regularization_scaling=foldin.POSITIVES)},
        user_ids=implicit_model.user_ids, item_ids=implicit_model.item_ids,
        user_items=implicit_model.user_items, popularity=implicit_model.popularity,
        params=implicit_model.params, fit_info=FitInfo(seconds=1.0, engine="spark"),
    )
    write_snapshot(tmp_path / "s", spark_like, window.contents(), {0: 40}, "000000000001")
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["fit"]["engine"] == "spark"
    assert manifest["params"]["als"]["regularization_scaling"] == "positives"
    loaded = read_snapshot(tmp_path / "s")
    assert loaded.model.fit_info is not None and loaded.model.fit_info.engine == "spark"
    als = loaded.model.als
    assert als.regularization_scaling == foldin.POSITIVES
    hist, w = np.array([0, 1]), np.array([1.0, 2.0])
    y = np.asarray(base.item_factors)
    np.testing.assert_allclose(als.fold_in(hist, w),
                               foldin.fold_in(y, foldin.gram(y, 0.0), hist, w, base.alpha,
                                              ridge_per_positive=base.regularization),
                               rtol=1e-5)
