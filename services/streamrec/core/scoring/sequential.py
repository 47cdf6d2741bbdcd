"""The sequential scorer: sequential rules (SR), "what comes next" after what a user just did.

Sequential rules (Ludewig & Jannach 2018, "Evaluation of session-based recommendation
algorithms", User Modeling and User-Adapted Interaction 28; Ludewig et al. 2021) count, over
every user's positive events in order, how often item ``j`` follows item ``i`` within
``steps`` events, each occurrence weighted by ``1 / distance``:

    T[i, j] = Σ_users Σ_{p < q, q - p <= steps, s_p = i, s_q = j, i ≠ j} 1 / (q - p)

Only the ``successors`` largest entries of each row are kept (bounded memory: at most
``items x successors`` float32 entries, a CSR matrix in the snapshot). The same counts the
other way round, ``P[i, j]``: item ``j`` came within ``steps`` events *before* item ``i``
(``P`` is ``T``'s transpose before each row keeps its ``successors`` largest), give what goes
with an item from the other side. A history is scored from its order, newest first: the
user's last ``query_items`` distinct items, the item at position ``p`` (1 = the newest)
weighted ``q_p = exp(-query_decay · (p - 1))``:

    s_j = Σ_p q_p (T[item_p, j] + γ P[item_p, j]),   γ = ``predecessors``

(Ludewig et al. 2021 weigh the query by position too; counting both directions, lightly, is
their "sequence-aware" kNN's and SR's middle ground. The defaults, γ = 0.35 and a decay of
0.3, were chosen on the validation half of both ML-100K protocols: docs/evaluation.md, issue
27.) ``GET /items/{item}/next`` and ``because`` read ``T`` alone: what came *next*.

so the item a user just touched drives their next answer, with no retrain: serving puts every
fresh event at the end of the history (``blend.weighted_history``). Negative feedback is no
transition: its events are left out of the counts and of the query. The trainer rebuilds
``T`` from the window's ordered history (``recency.History``, the newest ``history_cap``
events of each user) at every retrain, so an erased user's transitions are gone from the next
snapshot, with their events.

No maintained library ships SR for us outside research frameworks (session-rec, RecBole) we
must not install; the counts are a few vectorised numpy and scipy lines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .itemitem import sparse_row_sum
from .recency import History

__all__ = ["Sequential", "SequentialParams", "query_weights", "transitions"]

F32 = npt.NDArray[np.float32]
Idx = npt.NDArray[np.intp]
Array = npt.NDArray[Any]


@dataclass(frozen=True)
class SequentialParams:
    """``steps``: how many events after an item count as coming next (weight ``1/distance``);
    ``successors``: the entries kept per item (top by weight), forward and backward each;
    ``query_items``: how many of a user's newest distinct items score a request;
    ``query_decay``: their weight ``exp(-query_decay · (position - 1))``, the newest 1 (0:
    all 1); ``predecessors``: the weight γ of the backward counts ``P`` beside ``T`` in a
    request's scores (0: ``T`` alone, and the trainer builds no ``P``)."""

    steps: int = 10
    successors: int = 100
    query_items: int = 20
    query_decay: float = 0.3
    predecessors: float = 0.35

    def __post_init__(self) -> None:
        for name in ("steps", "successors", "query_items"):
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"sequential {name} must be an integer >= 1, got {value!r}")
        for name, high in (("query_decay", 10.0), ("predecessors", 1.0)):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and 0.0 <= value <= high):
                raise ValueError(f"sequential {name} must be a number in [0, {high:g}], "
                                 f"got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def transitions(history: History, items: int, steps: int, successors: int,
                backward: bool = False) -> sp.csr_matrix:
    """The SR matrix ``T`` (float32 CSR, shape ``(items, items)``) of ``history``'s positive
    events (weight > 0), each user's in order; each row keeps its ``successors`` largest
    entries (ties: the lower item index). ``backward``: the predecessor counts ``P`` instead
    (``P[i, j]``: ``j`` came before ``i``; ``T``'s transpose before the pruning). Raises
    ``ValueError`` for ``steps`` or ``successors`` < 1, or an item index outside
    ``[0, items)``."""
    if steps < 1 or successors < 1:
        raise ValueError(f"steps and successors must be >= 1, got {steps} and {successors}")
    indptr = np.asarray(history.indptr, dtype=np.int64)
    user = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    seq = np.asarray(history.items, dtype=np.int32)  # int32 pairs: 10 steps x 1M events
    keep = np.asarray(history.weights) > 0
    user, seq = user[keep], seq[keep]
    if len(seq) and (seq.min() < 0 or seq.max() >= items):
        raise ValueError(f"history holds item indices outside [0, {items})")
    rows: list[npt.NDArray[np.int32]] = []
    cols: list[npt.NDArray[np.int32]] = []
    vals: list[F32] = []
    for d in range(1, min(steps, max(len(seq) - 1, 0)) + 1):
        a, b = seq[:-d], seq[d:]
        ok = (user[:-d] == user[d:]) & (a != b)
        if backward:
            a, b = b, a
        rows.append(a[ok])
        cols.append(b[ok])
        vals.append(np.full(int(ok.sum()), 1.0 / d, dtype=np.float32))
    if not rows:
        return sp.csr_matrix((items, items), dtype=np.float32)
    coo = sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                        shape=(items, items), dtype=np.float32)
    return _top_per_row(coo.tocsr(), successors)  # tocsr sums repeated (i, j) entries


def _top_per_row(m: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """``m`` (duplicates summed, as ``tocsr`` leaves them) with each row's ``k`` largest
    entries (ties: lower column), columns sorted."""
    counts = np.diff(m.indptr)
    if not len(counts) or counts.max(initial=0) <= k:
        m.sort_indices()
        return m
    row = np.repeat(np.arange(m.shape[0]), counts)
    order = np.lexsort((m.indices, -m.data, row))  # by row, then weight down, then column
    rank = np.arange(len(order)) - np.repeat(m.indptr[:-1], counts)
    chosen = order[rank < k]
    out = sp.csr_matrix((m.data[chosen], (row[chosen], m.indices[chosen])), shape=m.shape,
                        dtype=np.float32)
    out.sort_indices()
    return out


def query_weights(order: npt.ArrayLike, query_items: int,
                  query_decay: float = 0.3) -> tuple[Idx, F32]:
    """The newest ``query_items`` distinct items of ``order`` (item indices, oldest first,
    repeats allowed) and their weights ``exp(-query_decay · (position - 1))`` (the newest:
    1; float32), newest first."""
    seq = np.asarray(order, dtype=np.intp).reshape(-1)[::-1]
    _, first = np.unique(seq, return_index=True)
    newest = seq[np.sort(first)][:query_items]
    return newest, np.exp(-query_decay * np.arange(len(newest))).astype(np.float32)


class Sequential:
    """The SR matrix ``T`` and the predecessor counts ``P`` (float32 CSR ``(items, items)``
    each, maybe memory-mapped; ``P`` None: ``T`` alone) and how to score a history in order
    with them: the :class:`~.scorer.Scorer` named ``sequential``."""

    name: ClassVar[str] = "sequential"
    params_type: ClassVar[type[SequentialParams]] = SequentialParams

    def __init__(self, matrix: sp.csr_matrix, params: SequentialParams | None = None,
                 seconds: float = 0.0, transitions_counted: int = 0,
                 before: sp.csr_matrix | None = None) -> None:
        if len(matrix.shape) != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"the transition matrix must be square, got {matrix.shape}")
        if before is not None and before.shape != matrix.shape:
            raise ValueError(f"the predecessor matrix is {before.shape}, not {matrix.shape}")
        self.matrix = matrix
        self.before = before
        self.params = params or SequentialParams()
        self.seconds = seconds
        self.transitions_counted = transitions_counted

    @property
    def items(self) -> int:
        return int(self.matrix.shape[0])

    def scores(self, items: npt.ArrayLike, weights: npt.ArrayLike) -> F32:
        """Without an order: ``Σ_i w_i (T[i, :] + γ P[i, :])`` over the positive items
        (float32, ``(items,)``); the request path calls :meth:`scores_in_order` instead."""
        idx = np.asarray(items, dtype=np.intp).reshape(-1)
        w = np.asarray(weights, dtype=np.float32).reshape(-1)
        keep = w > 0
        return self._summed(idx[keep], w[keep])

    def scores_in_order(self, order: npt.ArrayLike) -> F32:
        """``Σ_p q_p (T[item_p, :] + γ P[item_p, :])`` over the newest ``query_items``
        distinct items of ``order`` (item indices of positive events, oldest first; intp
        ``(k,)``), ``q_p = exp(-query_decay · (p - 1))``. Returns float32 ``(items,)``; zeros
        when no item has a known neighbour in order."""
        idx, w = query_weights(order, self.params.query_items, self.params.query_decay)
        return self._summed(idx, w)

    def _summed(self, idx: Idx, w: F32) -> F32:
        """``Σ_k w_k (T[idx_k, :] + γ P[idx_k, :])``, float32 ``(items,)``."""
        out = sparse_row_sum(self.matrix, idx, w)
        gamma = self.params.predecessors
        if self.before is not None and gamma > 0:
            out += np.float32(gamma) * sparse_row_sum(self.before, idx, w)
        return out

    def _row(self, item: int) -> tuple[Idx, F32]:
        """Row ``item`` of ``T``: its successors (intp) and weights (float32), stored order."""
        start, end = int(self.matrix.indptr[item]), int(self.matrix.indptr[item + 1])
        return (np.asarray(self.matrix.indices[start:end], dtype=np.intp),
                np.asarray(self.matrix.data[start:end], dtype=np.float32))

    def successors_of(self, item: int) -> tuple[Idx, F32]:
        """The items that came next after ``item`` (indices, intp) and their weights
        (float32, Σ 1/distance), heaviest first (ties: lower index first)."""
        cols, vals = self._row(item)
        order = np.lexsort((cols, -vals))
        return cols[order], vals[order]

    def transition(self, item: int, successor: int) -> float:
        """``T[item, successor]``: 0.0 when ``successor`` is not among ``item``'s kept ones."""
        cols, vals = self._row(item)
        at = np.flatnonzero(cols == successor)
        return float(vals[int(at[0])]) if len(at) else 0.0

    def to_arrays(self) -> dict[str, Array]:
        """``indptr`` (int64), ``indices`` (int32), ``data`` (float32): ``T`` as CSR; with
        ``P``, the same three prefixed ``before_``."""
        out = _csr_arrays(self.matrix)
        if self.before is not None:
            out.update({f"before_{k}": v for k, v in _csr_arrays(self.before).items()})
        return out

    def meta(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "transitions": self.transitions_counted,
                **self.params.to_dict()}

    @classmethod
    def from_window(cls, user_items: sp.csr_matrix, user_ids: Any, item_ids: Any,
                    params: SequentialParams, threads: int,
                    history: History | None = None) -> Sequential:
        """:func:`transitions` of the window's ordered ``history`` (``scorer.WindowFitted``;
        the matrix and ids give only the shape). Raises ``ValueError`` without a history."""
        if history is None:
            raise ValueError("the sequential scorer needs the window's ordered history")
        started = time.perf_counter()
        items = user_items.shape[1]
        matrix = transitions(history, items, params.steps, params.successors)
        before = (transitions(history, items, params.steps, params.successors, backward=True)
                  if params.predecessors > 0 else None)
        return cls(matrix, params, time.perf_counter() - started,
                   int(np.count_nonzero(np.asarray(history.weights) > 0)), before)

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Array], meta: Mapping[str, Any],
                    items: int) -> Sequential:
        """Raises ``ValueError`` for arrays that are not an ``items x items`` CSR matrix,
        ``KeyError`` for a missing one. A snapshot without ``before_*`` arrays (written
        before the predecessor counts, or with ``predecessors`` 0) scores with ``T`` alone."""
        rest = dict(meta)
        seconds = float(rest.pop("seconds", 0.0))
        counted = int(rest.pop("transitions", 0))
        matrix = _csr(arrays, "", items)
        before = _csr(arrays, "before_", items) if "before_indptr" in arrays else None
        return cls(matrix, SequentialParams(**rest) if rest else None, seconds, counted,
                   before)


def _csr_arrays(m: sp.csr_matrix) -> dict[str, Array]:
    return {"indptr": np.asarray(m.indptr, dtype=np.int64),
            "indices": np.asarray(m.indices, dtype=np.int32),
            "data": np.asarray(m.data, dtype=np.float32)}


def _csr(arrays: Mapping[str, Array], prefix: str, items: int) -> sp.csr_matrix:
    """The ``items x items`` CSR matrix of ``arrays``' ``<prefix>indptr/indices/data``."""
    indptr = arrays[f"{prefix}indptr"]
    indices, data = arrays[f"{prefix}indices"], arrays[f"{prefix}data"]
    if (len(indptr) != items + 1 or int(indptr[-1]) != len(indices)
            or len(data) != len(indices)):
        raise ValueError("sequential arrays do not describe an items x items matrix")
    if len(indices) and (int(np.min(indices)) < 0 or int(np.max(indices)) >= items):
        raise ValueError("sequential indices outside the catalogue")
    return sp.csr_matrix((data, indices, indptr), shape=(items, items), copy=False)
