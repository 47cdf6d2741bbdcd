"""Per-item arrays of each placement, kept up to date as records change: a request only
combines them.

For one model's items (its ``item_ids``, rows ``0..items-1``) and the live catalogue, each
distinct expression of the placements is evaluated once per item into a boolean array; a
placement's `PlacementArrays` are those arrays combined (its filter, the product and sum of its
boosts, its promotion and exploration pools). `PlacementMasks.refresh` brings them up to date:

- a new model or a new set of placements: every item, every expression (50k items x one
  expression ~0.7 s here; serving does it before a new snapshot is swapped in);
- a changed catalogue: only the items changed since (``Catalogue.changed_since``), unless it
  no longer remembers that far back;
- expressions that read ``now``: every item again each `NOW_STEP_S` seconds.

An evaluation that fails counts in ``errors`` (per expression) and the item does not match.
Pure (the caller passes the clock); the swap of the result is atomic, so requests read one
consistent set of arrays while a refresh builds the next.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..catalog.records import Catalogue
from ..ids import IdIndex
from .expressions import NOW_STEP_S, Expression, activation
from .spec import Placement

__all__ = ["Built", "PlacementArrays", "PlacementMasks"]

Bools = npt.NDArray[np.bool_]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class PlacementArrays:
    """One placement's per-item arrays over a model's items (shape ``(items,)`` each; None:
    the placement has no such rule)."""

    allowed: Bools | None = None  # its filter
    multiply: F32 | None = None  # product of the multipliers of the boosts that apply
    add: F32 | None = None  # sum of their addends
    promoted: Bools | None = None  # the promotion pool (before the filter)
    explore: Bools | None = None  # the exploration pool (filter or few interactions)


@dataclass(frozen=True)
class Built:
    """What requests read: the arrays of every placement for one model and placement set."""

    ids: IdIndex
    placements: tuple[Placement, ...]
    arrays: dict[str, PlacementArrays]
    catalogue_version: int
    now_step: int
    errors: dict[str, int] = field(default_factory=dict)  # failed evaluations per expression


def _interactions(user_items: sp.csr_matrix, items: int) -> npt.NDArray[np.int64]:
    """Users per item in the window (shape ``(items,)``)."""
    return np.bincount(np.asarray(user_items.indices), minlength=items)[:items]


class PlacementMasks:
    """Keeps `Built` current for the served model, the catalogue and the placements."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._built: Built | None = None
        self._values: dict[Expression, Bools] = {}  # per expression, per item row
        self._counts: npt.NDArray[np.int64] | None = None
        self._lock = threading.Lock()  # one refresh at a time

    def current(self) -> Built | None:
        return self._built

    def refresh(self, ids: IdIndex, user_items: sp.csr_matrix,
                placements: tuple[Placement, ...], now: float) -> Built:
        """The arrays for model ``ids`` (with its ``user_items``, for interaction counts) and
        ``placements`` at ``now`` (seconds), rebuilt only where something changed."""
        with self._lock:
            b = self._built
            step = int(now // NOW_STEP_S)
            version = self.catalogue.version  # read first: a change meanwhile shows next time
            if b is not None and b.ids is ids and b.placements == placements \
                    and b.catalogue_version == version and b.now_step == step:
                return b
            at = datetime.fromtimestamp(step * NOW_STEP_S, UTC)
            expressions = list(dict.fromkeys(e for p in placements for e in p.expressions()))
            errors = dict(b.errors) if b is not None else {}
            if b is None or b.ids is not ids or b.placements != placements or self._counts is None:
                self._counts = _interactions(user_items, len(ids))
                self._values = {}
                self._evaluate(ids, expressions, range(len(ids)), at, errors)
            else:
                changed = self.catalogue.changed_since(b.catalogue_version)
                rows = range(len(ids)) if changed is None else sorted(
                    {r for i in changed if (r := ids.get(i)) is not None})
                self._evaluate(ids, expressions, rows, at, errors)
                if step != b.now_step:
                    timed = [e for e in expressions if e.uses_now]
                    self._evaluate(ids, timed, range(len(ids)), at, errors, fresh=True)
            built = Built(ids, placements,
                          {p.name: self._combine(p) for p in placements}, version, step, errors)
            self._built = built
            return built

    def _evaluate(self, ids: IdIndex, expressions: Sequence[Expression],
                  rows: Sequence[int] | range, at: datetime, errors: dict[str, int],
                  fresh: bool = False) -> None:
        """Evaluate ``expressions`` for the items at ``rows`` into ``self._values``."""
        for e in expressions:
            if fresh or e not in self._values:
                self._values[e] = np.zeros(len(ids), dtype=bool)
        if not expressions or not len(rows):
            return
        get = self.catalogue.get
        for r in rows:
            item = ids[r]
            context = activation(get(item), item, at)
            for e in expressions:
                value = e.test(context)
                if value is None:
                    errors[e.source] = errors.get(e.source, 0) + 1
                self._values[e][r] = bool(value)

    def _combine(self, p: Placement) -> PlacementArrays:
        v = self._values
        multiply = add = None
        if p.boosts:
            items = len(next(iter(v.values())))
            multiply = np.ones(items, dtype=np.float32)
            add = np.zeros(items, dtype=np.float32)
            for b in p.boosts:
                hit = v[b.when]
                if b.multiply != 1.0:
                    multiply[hit] *= np.float32(b.multiply)
                if b.add:
                    add[hit] += np.float32(b.add)
        explore = None
        if p.exploration is not None:
            e = p.exploration
            assert self._counts is not None
            few = (self._counts < e.max_interactions) if e.max_interactions is not None else None
            pool = v[e.filter] if e.filter is not None else None
            explore = few if pool is None else pool.copy() if few is None else (pool | few)
        return PlacementArrays(
            allowed=None if p.filter is None else v[p.filter].copy(),
            multiply=None if multiply is None or np.all(multiply == 1) else multiply,
            add=None if add is None or not np.any(add) else add,
            promoted=None if p.promotion is None else v[p.promotion.filter].copy(),
            explore=explore)
