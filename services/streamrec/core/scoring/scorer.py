"""The scorer seam: what every model behind a recommendation implements, and their registry.

As implicit's ``RecommenderBase`` gives ALS, BPR and the nearest-neighbour models one face
(one module per algorithm), a :class:`Scorer` is one model that scores every item for a
user's *weighted history*, and turns itself into plain arrays for a snapshot and back
(``save``/``load`` in implicit; never pickle here). The request path never knows which scorers
there are: it asks each one named in the blend table for a score vector and sums them
(``blend.blend``); the snapshot writes each scorer's arrays under its name
(``snapshotlayout.py``).

To add a model: a module with a class that implements :class:`Scorer`, and one line in
:data:`SCORERS`. The trainer fits it (``training.py``) and the blend table gives it a weight.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import numpy as np
import numpy.typing as npt

from .als import ALS
from .itemitem import ItemItem

__all__ = ["SCORERS", "Scorer", "scorer_class"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Idx = npt.NDArray[np.intp]
Array = npt.NDArray[Any]


class Scorer(Protocol):
    """One model that scores items for a weighted history.

    ``name`` is the scorer's key in :data:`SCORERS`, in the blend table and in a snapshot
    (its files are ``<name>.<array>.npy``, its settings ``params.scorers.<name>``).
    """

    name: ClassVar[str]

    @property
    def items(self) -> int:
        """The number of items it scores (the model's item count)."""
        ...

    def scores(self, items: Idx, weights: F64) -> F32:
        """Scores of every item for one history.

        ``items``: the history's distinct item indices, sorted (intp, shape ``(k,)``, k >= 1);
        ``weights``: their net, recency-weighted weights (float64, ``(k,)``; a weight <= 0 is
        negative feedback), as ``feedback.aggregate`` returns them. Returns float32 of shape
        ``(items,)``: higher is better; only the order matters (the blend standardises).
        """
        ...

    def to_arrays(self) -> dict[str, Array]:
        """Its arrays by name (without the ``<name>.`` prefix); saved without pickle."""
        ...

    def meta(self) -> dict[str, Any]:
        """Its settings and fit figures, JSON-serialisable, for the manifest."""
        ...

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Array], meta: Mapping[str, Any],
                    items: int) -> Scorer:
        """Rebuild from :meth:`to_arrays` (maybe memory-mapped) and :meth:`meta` for a model
        of ``items`` items. Raises ``KeyError`` for a missing array or setting and
        ``ValueError`` for arrays that do not fit together."""
        ...


#: Every scorer this build knows, by name.
SCORERS: dict[str, type[Scorer]] = {
    ALS.name: ALS,
    ItemItem.name: ItemItem,
}


def scorer_class(name: str) -> type[Scorer]:
    """The class registered as ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return SCORERS[name]
    except KeyError:
        raise KeyError(f"unknown scorer {name!r}; this build knows {sorted(SCORERS)}") from None
