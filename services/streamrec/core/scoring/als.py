"""The ALS scorer: fixed item factors, and every user's vector by fold-in.

A user with a weighted history gets the exact implicit-ALS user vector for it (``foldin.py``:
Hu, Koren & Volinsky 2008, the same system as implicit's ``recalculate_user``), and every item
the score ``Y x_u``. The fitted user factors are kept too: a user with nothing new is scored
with their fitted vector, and many such users at once with one matrix product
(``recommend.rank_many``). This is the :class:`~.scorer.Scorer` named ``als``; fitting is in
``training.py``, so serving never loads implicit.

The regularization scaling is the fitting engine's (``foldin.CONSTANT`` for implicit,
``foldin.POSITIVES``, ALS-WR's λ·n⁺, for Spark MLlib): it is recorded in ``meta()`` and the
fold-in follows it, so a refolded user agrees with the fit whichever engine ran.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from ..domains import MAX_CONFIDENCE
from . import foldin
from .ann import AnnParams, ItemIndex

__all__ = ["ALS", "sane_cap"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Idx = npt.NDArray[np.intp]
Array = npt.NDArray[Any]
#: Item rows per block when computing ``YᵀY`` (a 2 MB float64 block at 64 factors).
_GRAM_ROWS = 4096


def sane_cap(raw: object) -> float | None:
    """A recorded confidence cap, or None (the default cap) unless it is a number in
    ``[1, MAX_CONFIDENCE]``."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and 1.0 <= raw <= MAX_CONFIDENCE:
        return float(raw)
    return None


class ALS:
    """ALS factors and the fold-in against them; safe to share between threads once built.

    ``user_factors``: float32 ``(users, f)``; ``item_factors``: float32 ``(items, f)``; either
    may be memory-mapped. ``regularization`` (λ) and ``alpha`` are the fit's, and
    ``confidence_cap`` the per-cell cap it used (``domains.MAX_CONFIDENCE`` unless the fit
    was retried with a lower one). ``regularization_scaling`` is ``"constant"`` (λ for every
    user, implicit) or ``"positives"`` (λ·n⁺, ALS-WR, Spark MLlib): see ``foldin.py``.
    ``ann``: the HNSW graph over the item factors (``ann.py``), which ranking uses instead of
    scoring every item; None below the catalogue size that gets one. Raises ``ValueError``
    when the factor shapes disagree or the scaling is unknown.
    """

    name: ClassVar[str] = "als"
    #: Arrays with one row per user: a snapshot split by partition (format 9) writes each
    #: partition's rows apart (``core/snapshot/usersides.py``).
    user_rows: ClassVar[tuple[str, ...]] = ("user_factors",)

    def __init__(
        self,
        user_factors: npt.NDArray[np.floating],
        item_factors: npt.NDArray[np.floating],
        regularization: float,
        alpha: float,
        confidence_cap: float = MAX_CONFIDENCE,
        regularization_scaling: str = foldin.CONSTANT,
        ann: ItemIndex | None = None,
    ) -> None:
        uf, itf = user_factors.shape, item_factors.shape
        if len(uf) != 2 or len(itf) != 2 or uf[1] != itf[1]:
            raise ValueError(f"factor shapes {uf} and {itf} do not match")
        if regularization_scaling not in foldin.SCALINGS:
            raise ValueError(f"regularization_scaling must be one of {foldin.SCALINGS}, got "
                             f"{regularization_scaling!r}")
        self.regularization_scaling = regularization_scaling
        self.user_factors, self.item_factors = user_factors, item_factors
        self.regularization, self.alpha = regularization, alpha
        self.confidence_cap = confidence_cap
        if ann is not None and (ann.items, ann.factors) != itf:
            raise ValueError(f"an HNSW index of {ann.items} x {ann.factors} for factors {itf}")
        self.ann = ann
        # Caches filled on first use; two threads computing one at once is harmless.
        self._gram: F64 | None = None
        self._item_norms: F32 | None = None

    @property
    def items(self) -> int:
        return int(self.item_factors.shape[0])

    @property
    def users(self) -> int:
        return int(self.user_factors.shape[0])

    @property
    def factors(self) -> int:
        return int(self.item_factors.shape[1])

    @property
    def _ridge_per_positive(self) -> float:
        """λ per positive item (ALS-WR), or 0 when λ is constant and in :attr:`gram`."""
        return self.regularization if self.regularization_scaling == foldin.POSITIVES else 0.0

    @property
    def gram(self) -> F64:
        """``YᵀY + λI`` (``YᵀY`` under ALS-WR, whose λ·n⁺ is per user), cached; touch it
        once after loading to warm a replica."""
        if self._gram is None:
            # In blocks: a float64 copy of all item factors (26 MB at 50k x 64) would be kept
            # by glibc's heap in every serving worker long after it is freed.
            y, f = self.item_factors, self.factors
            g = np.zeros((f, f))
            for start in range(0, len(y), _GRAM_ROWS):
                g += foldin.gram(y[start : start + _GRAM_ROWS], 0.0)
            g[np.diag_indices_from(g)] += self.regularization - self._ridge_per_positive
            self._gram = g
        return self._gram

    @property
    def item_norms(self) -> F32:
        if self._item_norms is None:
            norms = np.linalg.norm(np.asarray(self.item_factors, dtype=np.float32), axis=1)
            norms[norms == 0] = 1e-10  # as implicit: an all-zero item is similar to nothing
            self._item_norms = norms
        return self._item_norms

    def fold_in(self, items: npt.ArrayLike, weights: npt.ArrayLike) -> F32:
        """The exact ALS user vector (float32, ``(f,)``) for item indices and raw weights."""
        return foldin.fold_in(self.item_factors, self.gram, items, weights, self.alpha,
                              self.confidence_cap, self._ridge_per_positive)

    def user_vector(self, row: int) -> npt.NDArray[np.floating]:
        """The fitted vector of user row ``row``."""
        return np.asarray(self.user_factors[row])

    def scores(self, items: Idx, weights: F64) -> F32:
        """``Y x_u`` for the fold-in of a weighted history: float32, shape ``(items,)``."""
        return np.asarray(self.item_factors @ self.fold_in(items, weights), dtype=np.float32)

    def similar(self, target: int) -> F32:
        """Cosine of every item's factors with item ``target``'s (float32, ``(items,)``)."""
        norms = self.item_norms
        scores = np.asarray(self.item_factors @ self.item_factors[target], dtype=np.float32)
        scores /= norms * norms[target]
        return scores

    def contributions(self, items: npt.ArrayLike, weights: npt.ArrayLike,
                      target: int) -> tuple[Idx, F64]:
        """Each history item's share of the score for ``target`` (``foldin.contributions``)."""
        return foldin.contributions(self.item_factors, self.gram, items, weights, self.alpha,
                                    target, self.confidence_cap, self._ridge_per_positive)

    def with_ann(self, ann: ItemIndex | None) -> ALS:
        """The same factors with ``ann`` as their HNSW graph (None: none)."""
        return ALS(self.user_factors, self.item_factors, self.regularization, self.alpha,
                   self.confidence_cap, self.regularization_scaling, ann)

    def to_arrays(self) -> dict[str, Array]:
        """The factors, and the graph as ``hnsw`` (an optional file: snapshots without it
        load, and rank exactly)."""
        return {"user_factors": np.asarray(self.user_factors, dtype=np.float32),
                "item_factors": np.asarray(self.item_factors, dtype=np.float32),
                **({} if self.ann is None else {"hnsw": self.ann.to_array()})}

    def meta(self) -> dict[str, Any]:
        return {"regularization": self.regularization, "alpha": self.alpha,
                "confidence_cap": sane_cap(self.confidence_cap),
                "regularization_scaling": self.regularization_scaling,
                **({} if self.ann is None else {"ann_ef_search": self.ann.ef_search})}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Array], meta: Mapping[str, Any],
                    items: int) -> ALS:
        """Raises ``KeyError`` for a missing array or setting and ``ValueError`` for factors
        that do not fit ``items`` or hold NaN or infinity, or an unknown regularization
        scaling. A snapshot without ``regularization_scaling`` (before the Spark engine) was
        fitted by implicit: ``constant``."""
        user_factors, item_factors = arrays["user_factors"], arrays["item_factors"]
        for name, a in (("user_factors", user_factors), ("item_factors", item_factors)):
            if not np.isfinite(a).all():  # never serve (or fold in against) a poisoned fit
                raise ValueError(f"{name} holds NaN or infinity")
        if item_factors.shape[0] != items:
            raise ValueError(f"{item_factors.shape[0]} item factors for {items} items")
        cap = sane_cap(meta.get("confidence_cap"))
        scaling = meta.get("regularization_scaling", foldin.CONSTANT)
        ann = None
        if "hnsw" in arrays:
            ef = meta.get("ann_ef_search")
            ann = ItemIndex.from_array(arrays["hnsw"], items, int(item_factors.shape[1]),
                                       int(ef) if isinstance(ef, int) and ef > 0 else
                                       AnnParams().ef_search)
        return cls(user_factors, item_factors, float(meta["regularization"]),
                   float(meta["alpha"]), MAX_CONFIDENCE if cap is None else cap,
                   str(scaling), ann)
