"""The item-item model beside ALS: EASE, with sparse cosine neighbours for large catalogues.

EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data", WWW '19) is a closed
form over the window's item Gram matrix. With ``X`` the binarised users x items window matrix:

    G = XᵀX + λI,   P = G⁻¹,   B_ij = -P_ij / P_jj (i ≠ j),   B_jj = 0

and a user's score for item ``j`` is ``Σ_i r_i B_ij`` over the items ``i`` of their
(recency-weighted, see ``recency.py``) history. ``B`` is dense: ``n²`` float32 in the snapshot
and an ``O(n³)`` inversion in the trainer, so it is used up to ``max_dense_items`` items
(default 5,000: 95 MB in the snapshot, 6-16 s to fit on one loaded core, bench/scoring.py).
Beyond that the fallback is item kNN: the cosine similarity of item columns, top
``neighbours`` per item, found by implicit's ``nearest_neighbours`` (benfred/implicit, MIT;
already our ALS library), and scored the same way over its sparse rows. No maintained library
with a fitting licence ships EASE for us (RecBole's is a research framework we must not
install), so the closed form is our own few lines over numpy and scipy's LAPACK.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse as sp

__all__ = ["ItemItem", "ItemItemParams", "ease", "fit_item_item", "item_knn", "sparse_row_sum"]

F32 = npt.NDArray[np.float32]
Array = npt.NDArray[Any]
KINDS = ("ease", "cosine-knn")


@dataclass(frozen=True)
class ItemItemParams:
    """``l2``: EASE's λ; ``max_dense_items``: the largest catalogue fitted densely;
    ``neighbours``: k of the kNN fallback."""

    l2: float = 500.0
    max_dense_items: int = 5_000
    neighbours: int = 100

    def __post_init__(self) -> None:
        if not (math.isfinite(self.l2) and self.l2 > 0):
            raise ValueError(f"item-item l2 must be a finite number > 0, got {self.l2}")
        if self.max_dense_items < 0 or self.neighbours < 1:
            raise ValueError("max_dense_items must be >= 0 and neighbours >= 1")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _binary(user_items: sp.spmatrix) -> sp.csr_matrix:
    # Co-occurrence of what users took: negative feedback (net weight <= 0) is no occurrence.
    x = sp.csr_matrix(user_items, dtype=np.float64, copy=True)
    x.data = (x.data > 0).astype(np.float64)
    x.eliminate_zeros()
    return x


def ease(user_items: sp.spmatrix, l2: float) -> F32:
    """EASE's ``B`` (float32, shape ``(items, items)``, zero diagonal) for a users x items matrix.

    Raises ``ValueError`` for ``l2 <= 0`` (``G`` would not be positive definite).
    """
    if not l2 > 0:
        raise ValueError(f"l2 must be > 0, got {l2}")
    x = _binary(user_items)
    g = np.asarray((x.T @ x).toarray(), dtype=np.float64)
    g[np.diag_indices_from(g)] += l2
    # G is symmetric positive definite: Cholesky, then the inverse from it (LAPACK potrf/potri),
    # half the work of a general inverse. potri fills the upper triangle only.
    c, lower = scipy.linalg.cho_factor(g, lower=False, overwrite_a=True, check_finite=False)
    p, info = scipy.linalg.lapack.dpotri(c, lower=lower, overwrite_c=True)
    if info != 0:
        raise ValueError(f"EASE: the Gram matrix is not invertible (LAPACK info {info})")
    p = np.triu(p) + np.triu(p, 1).T
    b = p / (-np.diag(p))[None, :]
    b[np.diag_indices_from(b)] = 0.0
    out: F32 = b.astype(np.float32)
    return out


def item_knn(user_items: sp.spmatrix, neighbours: int, threads: int = 0) -> sp.csr_matrix:
    """Top-``neighbours`` cosine similarities per item (float32 CSR, items x items, no self)."""
    from implicit.nearest_neighbours import ItemItemRecommender  # trainer only

    # Cosine = dot products of unit item columns (what implicit's CosineRecommender does, but
    # normalised here in CSR form, which its knn routine expects).
    x = _binary(user_items)
    norms = np.sqrt(np.asarray(x.sum(axis=0)).reshape(-1))
    norms[norms == 0] = 1.0
    unit = sp.csr_matrix(x @ sp.diags(1.0 / norms), dtype=np.float64)
    model = ItemItemRecommender(K=neighbours + 1, num_threads=threads)  # +1: itself, removed
    model.fit(unit, show_progress=False)
    sim = sp.csr_matrix(model.similarity, dtype=np.float32)
    sim.setdiag(0.0)
    sim.eliminate_zeros()
    sim.sort_indices()
    return sim


class ItemItem:
    """An item-item matrix ``B`` (dense EASE or sparse kNN) and how to score a history with it.

    ``dense``: float32 ``(items, items)``; ``sparse``: float32 CSR ``(items, items)``; exactly
    one is given. Either may be memory-mapped from a snapshot. The
    :class:`~.scorer.Scorer` named ``item_item``.
    """

    name: ClassVar[str] = "item_item"
    params_type: ClassVar[type[ItemItemParams]] = ItemItemParams

    def __init__(
        self,
        kind: str,
        dense: npt.NDArray[np.floating] | None = None,
        sparse: sp.csr_matrix | None = None,
        params: ItemItemParams | None = None,
        seconds: float = 0.0,
    ) -> None:
        if kind not in KINDS or (dense is None) == (sparse is None):
            raise ValueError(f"an item-item model is {KINDS} with one dense or sparse matrix")
        matrix = dense if dense is not None else sparse
        assert matrix is not None
        if len(matrix.shape) != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"item-item matrix must be square, got {matrix.shape}")
        self.kind, self.dense, self.sparse = kind, dense, sparse
        self.params = params or ItemItemParams()
        self.seconds = seconds

    @property
    def items(self) -> int:
        matrix = self.dense if self.dense is not None else self.sparse
        assert matrix is not None
        return int(matrix.shape[0])

    def scores(self, items: npt.ArrayLike, weights: npt.ArrayLike) -> F32:
        """``Σ_i w_i B[i, :]``: float32 scores for every item, shape ``(items,)``."""
        idx = np.asarray(items, dtype=np.intp).reshape(-1)
        w = np.asarray(weights, dtype=np.float32).reshape(-1)
        if self.dense is not None:
            return np.asarray(w @ self.dense[idx], dtype=np.float32)
        assert self.sparse is not None
        return sparse_row_sum(self.sparse, idx, w)

    def to_arrays(self) -> dict[str, Array]:
        """``dense`` for EASE; ``indptr``, ``indices``, ``data`` (CSR) for kNN."""
        if self.dense is not None:
            return {"dense": np.asarray(self.dense, dtype=np.float32)}
        assert self.sparse is not None
        return {"indptr": np.asarray(self.sparse.indptr, dtype=np.int64),
                "indices": np.asarray(self.sparse.indices, dtype=np.int32),
                "data": np.asarray(self.sparse.data, dtype=np.float32)}

    def meta(self) -> dict[str, Any]:
        return {"kind": self.kind, "seconds": self.seconds, **self.params.to_dict()}

    @classmethod
    def from_window(cls, user_items: sp.csr_matrix, user_ids: Any, item_ids: Any,
                    params: ItemItemParams, threads: int, history: Any = None) -> ItemItem:
        """:func:`fit_item_item` on the window (``scorer.WindowFitted``; the ids and the
        history are unused)."""
        return fit_item_item(user_items, params, threads)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Array], meta: Mapping[str, Any],
                    items: int) -> ItemItem:
        """Raises ``ValueError`` for a matrix that is not ``items x items``, ``KeyError``
        when neither form is complete."""
        rest = dict(meta)
        kind, seconds = str(rest.pop("kind", "ease")), float(rest.pop("seconds", 0.0))
        params = ItemItemParams(**rest) if rest else None
        if "dense" in arrays:
            dense = arrays["dense"]
            if dense.shape != (items, items):
                raise ValueError(f"item_item.dense is {dense.shape}, expected {(items, items)}")
            return cls(kind, dense=dense, params=params, seconds=seconds)
        indptr, indices, data = arrays["indptr"], arrays["indices"], arrays["data"]
        if len(indptr) != items + 1 or int(indptr[-1]) != len(indices) or len(data) != len(indices):
            raise ValueError("item_item arrays do not describe an items x items matrix")
        sparse = sp.csr_matrix((data, indices, indptr), shape=(items, items), copy=False)
        return cls(kind, sparse=sparse, params=params, seconds=seconds)


def sparse_row_sum(matrix: sp.csr_matrix, rows: npt.NDArray[np.intp], w: F32) -> F32:
    """``Σ_k w[k] matrix[rows[k], :]`` as float32, shape ``(columns,)``: the same sums, in the
    same order, as ``matrix[rows].T @ w``, read straight from the CSR arrays (scipy's fancy
    row indexing built a new matrix per request: half of the kNN scorer's time)."""
    indptr = matrix.indptr
    starts = np.asarray(indptr[rows], dtype=np.intp)
    counts = np.asarray(indptr[rows + 1], dtype=np.intp) - starts
    out = np.zeros(matrix.shape[1], dtype=np.float32)
    total = int(counts.sum())
    if total == 0:
        return out
    # Every stored entry of the rows, row by row: start of its row + its rank in the row.
    first = np.cumsum(counts) - counts
    at = np.arange(total, dtype=np.intp) + np.repeat(starts - first, counts)
    np.add.at(out, matrix.indices[at], matrix.data[at] * np.repeat(w, counts))
    return out


def fit_item_item(user_items: sp.spmatrix, params: ItemItemParams, threads: int = 0) -> ItemItem:
    """EASE when the catalogue has at most ``max_dense_items`` items, else cosine kNN."""
    started = time.perf_counter()
    if user_items.shape[1] <= params.max_dense_items:
        b = ease(user_items, params.l2)
        return ItemItem("ease", dense=b, params=params, seconds=time.perf_counter() - started)
    sim = item_knn(user_items, params.neighbours, threads)
    return ItemItem("cosine-knn", sparse=sim, params=params, seconds=time.perf_counter() - started)
