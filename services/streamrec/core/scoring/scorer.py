"""The scorer seam: what every model behind a recommendation implements, and their registry.

As implicit's ``RecommenderBase`` gives ALS, BPR and the nearest-neighbour models one face
(one module per algorithm), a :class:`Scorer` is one model that scores every item for a
user's *weighted history*, and turns itself into plain arrays for a snapshot and back
(``save``/``load`` in implicit; never pickle here). The request path never knows which scorers
there are: it asks each one named in the blend table for a score vector and sums them
(``blend.blend``); the snapshot writes each scorer's arrays under its name
(``core/snapshot/layout.py``).

To add a model: a module with a class that implements :class:`Scorer` and
:class:`WindowFitted` (how it is fitted from the window, and its params), and one line in
:data:`SCORERS`. The trainer and ``streamrec evaluate`` fit every registered scorer whose weight
in the blend table (``scoring_weights``) is > 0 (``training.with_scorer``); ALS is the base
scorer every model holds (user vectors, fold-in) and is fitted by ``training.fit`` itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..ids import IdIndex
from .als import ALS
from .itemitem import ItemItem
from .recency import History
from .sequential import Sequential

__all__ = ["BASE", "SCORERS", "InOrder", "Scorer", "WindowFitted", "check_weights", "in_order",
           "fitted_by_window", "scorer_class", "window_fit"]

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
Idx = npt.NDArray[np.intp]
Array = npt.NDArray[Any]


class Scorer(Protocol):
    """One model that scores items for a weighted history.

    ``name`` is the scorer's key in :data:`SCORERS`, in the blend table and in a snapshot
    (its files are ``<name>.<array>.npy``, its settings ``params.<name>``; a name the model's
    own params or files use, such as ``factors`` or ``window``, is refused when written).
    """

    name: ClassVar[str]
    # Optional: ``user_rows``, a ClassVar tuple naming the arrays of `to_arrays` with one row
    # per user (ALS's ``user_factors``); a snapshot split by partition (format 9) writes each
    # partition's rows of them apart (``core/snapshot/usersides.py``). Without it: none.

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


@runtime_checkable
class InOrder(Protocol):
    """A scorer that reads the history's order (the sequential one): the request path asks it
    for :meth:`scores_in_order` instead of :meth:`Scorer.scores`."""

    def scores_in_order(self, order: Idx) -> F32:
        """Scores of every item (float32, ``(items,)``) for the item indices of a history's
        positive events, oldest first (intp ``(k,)``, k >= 1, repeats kept)."""
        ...


#: Per scorer class: does it read the order (`in_order`'s memo; a few classes at most).
_READS_ORDER: dict[type, bool] = {}


def in_order(scorer: object) -> InOrder | None:
    """``scorer`` as an :class:`InOrder` when it is one, else None: the answer is kept per
    class (a runtime protocol's ``isinstance`` walks its attributes each time, ~35 µs of
    every request with three scorers)."""
    kind = type(scorer)
    reads = _READS_ORDER.get(kind)
    if reads is None:
        reads = _READS_ORDER[kind] = isinstance(scorer, InOrder)
    return scorer if reads else None  # type: ignore[return-value]


class WindowFitted(Protocol):
    """How a scorer other than the base ALS is fitted from the trainer's window.

    ``params_type`` is its params class (a frozen dataclass whose defaults are what a
    deployment gets without settings of its own; ``Config.scorer_params`` supplies configured
    ones by scorer name).
    """

    params_type: ClassVar[type[Any]]

    @classmethod
    def from_window(cls, user_items: sp.csr_matrix, user_ids: IdIndex, item_ids: IdIndex,
                    params: Any, threads: int, history: History | None = None) -> Scorer:
        """Fit on the window: ``user_items`` is the users x items matrix of net weights
        (float32 CSR, shape ``(len(user_ids), len(item_ids))``, a value <= 0 negative feedback),
        ``user_ids``/``item_ids`` the model's ids of its rows and columns, ``params`` an
        instance of ``params_type``, ``threads`` the fit's thread budget (0: all cores),
        ``history`` each user's window events in order (``recency.History``; None when the
        model has none).
        Raises ``ValueError``, ``ArithmeticError``, ``MemoryError`` or
        ``numpy.linalg.LinAlgError`` when it cannot fit; the trainer then publishes without it.
        """
        ...


#: The scorer every model holds (user vectors, fold-in), fitted by ``training.fit``.
BASE = ALS.name

#: Every scorer this build knows, by name.
SCORERS: dict[str, type[Scorer]] = {
    ALS.name: ALS,
    ItemItem.name: ItemItem,
    Sequential.name: Sequential,
}


def scorer_class(name: str) -> type[Scorer]:
    """The class registered as ``name``; ``KeyError`` naming the known ones otherwise."""
    try:
        return SCORERS[name]
    except KeyError:
        raise KeyError(f"unknown scorer {name!r}; this build knows {sorted(SCORERS)}") from None


def fitted_by_window(weights: Mapping[str, float]) -> list[str]:
    """The registered scorers besides :data:`BASE` with a weight > 0 in the blend table
    ``weights``, in registry order: what the trainer fits beside ALS."""
    return [name for name in SCORERS if name != BASE and weights.get(name, 0.0) > 0]


def window_fit(name: str) -> type[WindowFitted]:
    """The class of scorer ``name`` as a :class:`WindowFitted`; ``TypeError`` when it does
    not say how it is fitted (the base ALS), ``KeyError`` for an unknown name."""
    cls = scorer_class(name)
    if not hasattr(cls, "from_window") or not hasattr(cls, "params_type"):
        raise TypeError(f"scorer {name!r} is not fitted from the window by the registry")
    return cls  # type: ignore[return-value]


def check_weights(weights: Mapping[str, float]) -> None:
    """``ValueError`` naming the first scorer of the blend table ``weights`` this build does
    not know (the weights' range is ``ScoringParams``'s check)."""
    for name in weights:
        if name not in SCORERS:
            raise ValueError(f"unknown scorer {name!r} in the scoring weights; this build "
                             f"knows {sorted(SCORERS)}")
