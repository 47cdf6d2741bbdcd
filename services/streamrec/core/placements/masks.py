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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from ..catalog.records import Catalogue, ItemRecord
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
    floor: F32 | None = None  # 0 where ``allowed``, -inf elsewhere (added to the scores)
    boosted: npt.NDArray[np.intp] | None = None  # rows some boost applies to
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


def _key(e: Expression, record: ItemRecord | None, item: str) -> tuple[object, ...]:
    """What ``e`` reads of ``item`` (its record): equal keys, equal answers."""
    if record is None:
        return (None, item) if "item" in e.variables else (None,)
    out: list[object] = []
    for name in e.variables:
        if name == "item":
            out.append(item)
        elif name == "categories":
            out.append(record.categories)
        elif name == "labels":
            out.append(tuple(record.labels.items()))
        elif name == "attributes":
            out.append(tuple(record.attributes.items()))
        elif name == "title":
            out.append(record.title)
    return tuple(out)


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

    def refresh(self, ids: IdIndex, interactions: Callable[[], npt.NDArray[np.int64]],
                placements: tuple[Placement, ...], now: float) -> Built:
        """The arrays for model ``ids`` (``interactions``: its users per item, shape
        ``(items,)``, asked only when the model changed: ``Model.users_per_item``) and
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
            if b is None or b.ids is not ids or self._counts is None:
                self._counts = interactions()
                self._values = {}
                self._evaluate(ids, expressions, range(len(ids)), at, errors)
            elif b.placements != placements and (b.catalogue_version != version
                                                 or b.now_step != step):
                self._values = {}  # the records or the clock moved too: all again
                self._evaluate(ids, expressions, range(len(ids)), at, errors)
            elif b.placements != placements:  # only the new expressions are evaluated
                self._values = {e: a for e, a in self._values.items() if e in expressions}
                new = [e for e in expressions if e not in self._values]
                self._evaluate(ids, new, range(len(ids)), at, errors)
            else:
                changed = self.catalogue.changed_since(b.catalogue_version)
                rows = range(len(ids)) if changed is None else sorted(
                    {r for i in changed if (r := ids.get(i)) is not None})
                self._evaluate(ids, expressions, rows, at, errors)
                if step != b.now_step:
                    timed = [e for e in expressions if e.uses_now]
                    self._evaluate(ids, timed, range(len(ids)), at, errors, fresh=True)
            arrays = {p.name: self._combine(p, ids) for p in placements}
            built = Built(ids, placements, arrays, version, step, errors)
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
        # Memoised by what an expression reads: items with the same categories (say) share
        # one evaluation, which is most of them for a category rule.
        memo: dict[Expression, dict[tuple[object, ...], bool | None]] = {
            e: {} for e in expressions}
        for r in rows:
            item = ids[r]
            record = get(item, keep=False)  # a pass over every item: none kept decoded
            context: dict[str, object] | None = None
            for e in expressions:
                key = _key(e, record, item)
                seen = memo[e]
                if key in seen:
                    value = seen[key]
                else:
                    if context is None:
                        context = activation(record, item, at)
                    value = seen[key] = e.test(context)
                if value is None:
                    errors[e.source] = errors.get(e.source, 0) + 1
                self._values[e][r] = bool(value)

    def _combine(self, p: Placement, ids: IdIndex) -> PlacementArrays:
        v = self._values
        multiply = add = None
        if p.boosts:
            items = len(ids)
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
        allowed = None if p.filter is None else v[p.filter].copy()
        multiply = None if multiply is None or np.all(multiply == 1) else multiply
        add = None if add is None or not np.any(add) else add
        boosted = None
        if multiply is not None or add is not None:
            touched = (multiply != 1) if multiply is not None else np.zeros(len(ids), dtype=bool)
            if add is not None:
                touched |= add != 0
            boosted = np.flatnonzero(touched)
        return PlacementArrays(
            allowed=allowed, multiply=multiply, add=add, boosted=boosted,
            floor=None if allowed is None
            else np.where(allowed, np.float32(0), np.float32(-np.inf)).astype(np.float32),
            promoted=None if p.promotion is None else v[p.promotion.filter].copy(),
            explore=explore)
