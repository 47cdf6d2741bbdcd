"""Approximate item search: a faiss HNSW graph over the ALS item factors, by inner product.

Exact top-n scores every item (``item_factors @ x_u``): ~18 ms a request at 1M items. An HNSW
graph (Malkov & Yashunin 2018, "Efficient and robust approximate nearest neighbor search using
Hierarchical Navigable Small World graphs"; faiss's ``IndexHNSWFlat`` with
``METRIC_INNER_PRODUCT``) visits a few thousand of them. It is approximate: the recall@10 of
each snapshot's graph against exact search is measured (bench/ann.py, docs/benchmarks.md),
never assumed; ALS item vectors have skewed norms, on which tricks that reduce inner product
to L2 (and annoy) lost most of the true top 10 (issue 25).

The graph is built once per snapshot by the trainer (:meth:`ItemIndex.build`), shipped in it as
one uint8 array (``als.hnsw``, :meth:`ItemIndex.to_array`) and only for catalogues of at least
``AnnParams.min_items`` items; below that exact search is as fast. The exclusions (seen, hidden,
deleted, expired, the blacklist) stay the ranking's mask: the graph is asked for more than ``n``
(over-fetch) and the banned ones dropped (``rules.rank_vector``). Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AnnParams", "ItemIndex"]

F32 = npt.NDArray[np.float32]
Idx = npt.NDArray[np.intp]


def _faiss() -> ModuleType:
    """faiss, imported on first use: 0.16 s and ~30 MB that a process without a graph (the
    operator, a small catalogue's workers, every CLI call) never pays."""
    import faiss

    return faiss


@dataclass(frozen=True)
class AnnParams:
    """How the trainer builds the HNSW graph (``ann_*`` settings).

    ``min_items``: smallest catalogue that gets a graph (0: never build one); ``m``: links per
    node (faiss's ``M``); ``ef_construction``: candidate list while building; ``ef_search``:
    candidate list while searching (at least the number of results asked), stored in the
    snapshot for serving. Defaults measured in bench/ann.py (docs/benchmarks.md).
    """

    min_items: int = 50_000
    m: int = 32
    ef_construction: int = 40
    ef_search: int = 128

    def wanted(self, items: int) -> bool:
        """Whether a catalogue of ``items`` items gets a graph."""
        return 0 < self.min_items <= items


class ItemIndex:
    """An HNSW graph over item vectors; searching is thread-safe once built.

    ``index`` holds ``items`` vectors of ``factors`` float32 dimensions, item ``k`` as id ``k``.
    """

    def __init__(self, index: Any, ef_search: int) -> None:
        if ef_search < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        self.index, self.ef_search = index, int(ef_search)

    @property
    def items(self) -> int:
        return int(self.index.ntotal)

    @property
    def factors(self) -> int:
        return int(self.index.d)

    @classmethod
    def build(cls, item_factors: npt.NDArray[np.floating], params: AnnParams,
              threads: int | None = None) -> ItemIndex:
        """The graph over ``item_factors`` (``(items, f)``, any float dtype); ``threads``
        bounds faiss's OpenMP threads while building (None: faiss's default)."""
        faiss = _faiss()
        y = np.ascontiguousarray(item_factors, dtype=np.float32)
        if y.ndim != 2 or not len(y):
            raise ValueError(f"item factors of shape {y.shape} cannot be indexed")
        index = faiss.IndexHNSWFlat(int(y.shape[1]), params.m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params.ef_construction
        before = faiss.omp_get_max_threads()
        if threads is not None:
            faiss.omp_set_num_threads(max(1, threads))
        try:
            index.add(y)
        finally:
            faiss.omp_set_num_threads(before)
        return cls(index, params.ef_search)

    def to_array(self) -> npt.NDArray[np.uint8]:
        """faiss's own serialization of the graph and its vectors, as bytes."""
        return np.asarray(_faiss().serialize_index(self.index), dtype=np.uint8)

    @classmethod
    def from_array(cls, raw: npt.NDArray[Any], items: int, factors: int,
                   ef_search: int) -> ItemIndex:
        """The graph stored by :meth:`to_array`; ``ValueError`` when it does not parse or holds
        other than ``items`` vectors of ``factors`` dimensions."""
        faiss = _faiss()
        try:
            index = faiss.deserialize_index(np.ascontiguousarray(raw, dtype=np.uint8))
        except RuntimeError as e:  # faiss raises RuntimeError on a bad stream
            raise ValueError(f"the HNSW index does not parse: {str(e)[:200]}") from None
        if not isinstance(index, faiss.IndexHNSWFlat) or \
                index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise ValueError(f"expected an inner-product IndexHNSWFlat, got {type(index).__name__}")
        if (index.ntotal, index.d) != (items, factors):
            raise ValueError(f"the HNSW index holds {index.ntotal} vectors of {index.d} "
                             f"dimensions, expected {items} of {factors}")
        return cls(index, ef_search)

    def search(self, vector: npt.NDArray[np.floating], k: int) -> tuple[Idx, F32]:
        """About the ``k`` items of highest inner product with ``vector`` (``(f,)``), best
        first: (item indices, scores), fewer than ``k`` only when the catalogue is smaller.
        The scores are exact inner products (the graph stores the vectors themselves)."""
        k = max(1, min(int(k), self.items))
        x = np.ascontiguousarray(vector, dtype=np.float32).reshape(1, -1)
        # Per call, not on the shared index: concurrent requests never race on efSearch.
        params = _faiss().SearchParametersHNSW(efSearch=max(self.ef_search, k))
        scores, ids = self.index.search(x, k, params=params)
        found = ids[0] >= 0
        return ids[0][found].astype(np.intp), scores[0][found].astype(np.float32)
