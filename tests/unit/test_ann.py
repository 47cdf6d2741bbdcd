"""Item search past brute force: the HNSW graph (core/scoring/ann.py), ranking through it
under the ranking rules (annrank.py), and the graph's trip through a snapshot."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.core.catalog.filters import Restriction
from streamrec.core.scoring.ann import AnnParams, ItemIndex
from streamrec.core.scoring.annrank import rank_vector_ann
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.rules import rank_vector
from streamrec.core.scoring.training import fit, with_ann
from streamrec.core.snapshot.manifest import MANIFEST_NAME, SnapshotCorrupt

ITEMS, FACTORS = 12_000, 32
PARAMS = AnnParams(min_items=1, m=32, ef_construction=80, ef_search=128)


def skewed_norm_factors(items: int, factors: int, seed: int = 3) -> np.ndarray:
    """Clustered item vectors with log-normal norms (a few items 10x longer than most): the
    shape of fitted ALS item factors, on which inner-product search is hardest."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, factors))
    y = centres[rng.integers(0, 40, items)] + 0.7 * rng.normal(size=(items, factors))
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return (y * rng.lognormal(0.0, 0.6, size=(items, 1))).astype(np.float32)


@pytest.fixture(scope="module")
def factors() -> np.ndarray:
    return skewed_norm_factors(ITEMS, FACTORS)


@pytest.fixture(scope="module")
def index(factors) -> ItemIndex:
    return ItemIndex.build(factors, PARAMS, threads=1)


@pytest.fixture(scope="module")
def users() -> np.ndarray:
    return np.random.default_rng(11).normal(size=(200, FACTORS)).astype(np.float32)


def test_recall_at_10_against_exact_search_is_at_least_095_on_skewed_norms(
        index, factors, users):
    hits = 0
    for u in users:
        exact = set(np.argsort(-(factors @ u), kind="stable")[:10].tolist())
        ids, _ = index.search(u, 10)
        hits += len(exact & set(ids.tolist()))
    recall = hits / (10 * len(users))
    assert recall >= 0.95, recall


def test_scores_are_exact_inner_products_best_first(index, factors, users):
    ids, scores = index.search(users[0], 50)
    assert len(ids) == 50
    np.testing.assert_allclose(scores, factors[ids] @ users[0], rtol=1e-5, atol=1e-5)
    assert np.all(np.diff(scores) <= 0)


def test_banned_items_are_never_returned_and_n_is_always_met(index, factors, users):
    rng = np.random.default_rng(5)
    for u in users[:40]:
        exact, _ = rank_vector(factors, u, 200, np.empty(0, dtype=np.intp), None)
        # Ban most of the true top 200 (a user who has seen them) plus random hidden items.
        banned = np.concatenate((exact[:180], rng.choice(ITEMS, 300, replace=False)))
        ids, scores = rank_vector_ann(index, factors, u, 20, banned.astype(np.intp), None)
        assert len(ids) == 20 and not set(ids.tolist()) & set(banned.tolist())
        np.testing.assert_allclose(scores, factors[ids] @ u, rtol=1e-5, atol=1e-5)


def test_a_wide_category_filter_returns_only_its_items_and_n_of_them(index, factors, users):
    candidates = np.flatnonzero(np.arange(ITEMS) % 5 == 0).astype(np.intp)  # 20%: graph
    banned = candidates[:500]
    for u in users[:40]:
        ids, _ = rank_vector_ann(index, factors, u, 10, banned, candidates)
        assert len(ids) == 10
        assert set(ids.tolist()) <= set(candidates.tolist()) - set(banned.tolist())


def test_a_selective_filter_is_scanned_exactly(index, factors, users):
    candidates = np.arange(0, ITEMS, 97, dtype=np.intp)  # ~1%: the exact subset path
    banned = candidates[::3]
    for u in users[:20]:
        got = rank_vector_ann(index, factors, u, 10, banned, candidates)
        want = rank_vector(factors, u, 10, banned, candidates)
        assert got[0].tolist() == want[0].tolist()


def test_when_almost_everything_is_banned_the_answer_is_the_exact_one(index, factors, users):
    allowed = np.arange(0, ITEMS, 1000, dtype=np.intp)
    banned = np.setdiff1d(np.arange(ITEMS), allowed).astype(np.intp)
    ids, _ = rank_vector_ann(index, factors, users[0], 10, banned, None)
    assert sorted(ids.tolist()) == sorted(
        rank_vector(factors, users[0], 10, banned, None)[0].tolist())
    assert len(ids) == 10 and set(ids.tolist()) <= set(allowed.tolist())


def test_a_graph_that_does_not_match_the_factors_is_refused(index):
    raw = index.to_array()
    with pytest.raises(ValueError, match="expected 100 of 32"):
        ItemIndex.from_array(raw, 100, FACTORS, 64)
    with pytest.raises(ValueError, match="does not parse"):
        ItemIndex.from_array(np.frombuffer(b"not a faiss index", dtype=np.uint8), ITEMS,
                             FACTORS, 64)


def _model_with_graph(tmp_path):
    from tests.unit.test_snapshot import small_window
    window = small_window()
    model = fit(window.build(), ALSParams(factors=4, iterations=3, num_threads=1))
    return window, model, with_ann(model, PARAMS, threads=1)


def test_the_graph_travels_in_the_snapshot_as_an_optional_checksummed_file(tmp_path):
    window, plain, model = _model_with_graph(tmp_path)
    assert model.als.ann is not None and plain.als.ann is None
    write_snapshot(tmp_path / "s", model, window.contents(), {0: 1}, "000000000001")
    manifest = json.loads((tmp_path / "s" / MANIFEST_NAME).read_text())
    assert len(manifest["files"]["als.hnsw"]["sha256"]) == 64
    assert manifest["params"]["als"]["ann_ef_search"] == PARAMS.ef_search
    snap = read_snapshot(tmp_path / "s")
    assert snap.model.als.ann is not None and snap.model.als.ann.items == len(model.item_ids)
    user = model.user_ids[0]
    assert snap.model.recommend(user, n=3).items == model.recommend(user, n=3).items
    # Without the graph (an older trainer, a small catalogue) the same snapshot loads, exact.
    write_snapshot(tmp_path / "p", plain, window.contents(), {0: 1}, "000000000002")
    assert "als.hnsw" not in json.loads((tmp_path / "p" / MANIFEST_NAME).read_text())["files"]
    assert read_snapshot(tmp_path / "p").model.als.ann is None


def test_a_damaged_graph_file_is_refused_by_its_checksum(tmp_path):
    window, _, model = _model_with_graph(tmp_path)
    write_snapshot(tmp_path / "s", model, window.contents(), {0: 1}, "000000000001")
    path = tmp_path / "s" / "als.hnsw.npy"
    raw = bytearray(path.read_bytes())
    raw[-5] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(SnapshotCorrupt):
        read_snapshot(tmp_path / "s")


def test_a_catalogue_below_min_items_gets_no_graph():
    from tests.unit.test_snapshot import small_window
    model = fit(small_window().build(), ALSParams(factors=4, iterations=3, num_threads=1))
    assert with_ann(model, AnnParams(min_items=10**6)).als.ann is None
    assert with_ann(model, AnnParams(min_items=0)).als.ann is None


def test_recommend_with_the_graph_honours_hidden_items_and_returns_n(tmp_path):
    _, _, model = _model_with_graph(tmp_path)
    user = model.user_ids[0]
    everything = model.recommend(user, n=5, exclude_seen=False).items
    hidden = np.asarray([model.item_index[everything[0]]], dtype=np.intp)
    got = model.recommend(user, n=5, exclude_seen=False,
                          restrict=Restriction(banned=hidden, candidates=None))
    assert len(got.items) == 5 and everything[0] not in got.items


def _fit_job(tmp_path, min_items: int):
    import threading

    from tests.unit.test_snapshot import small_window

    from streamrec.adapters.stores import LocalStore
    from streamrec.config import Config
    from streamrec.trainer.job import FitJob
    from streamrec.trainer.metrics import TrainerMetrics

    store = LocalStore(tmp_path / "store")
    window = small_window()
    config = Config(factors=4, iterations=2, keep=2, ann_min_items=min_items, ann_ef_search=50)
    job = FitJob(config, store, None, TrainerMetrics(), threading.Event(), tmp_path / "work",
                 window.build(), window.contents(), {0: 1}, "000000000001", 1)
    assert job.run().published
    return read_snapshot(store.fetch("000000000001", tmp_path / "fetched"))


def test_the_trainer_ships_the_graph_at_and_above_ann_min_items_only(tmp_path):
    with_graph = _fit_job(tmp_path / "a", min_items=5)  # the small window has 12 items
    assert with_graph.model.als.ann is not None
    assert with_graph.model.als.ann.ef_search == 50
    assert "als.hnsw" in with_graph.manifest.files
    without = _fit_job(tmp_path / "b", min_items=13)
    assert without.model.als.ann is None and "als.hnsw" not in without.manifest.files
