"""Request-time item filters, turned into model indices that ranking honours.

A request may ask for items in some categories (``any`` of them, the default, or ``all``);
whatever it asks, hidden and expired items (and ids the caller adds, such as deleted items)
are never returned. The filter is applied *inside* ranking, before the top ``n`` is chosen:
:meth:`CatalogueIndex.restrict` gives a whitelist of candidate indices (the category filter)
and a ban list (hidden, expired, excluded), which ``recommend.py`` removes from the scores
before selecting. So a list is exactly ``n`` long whenever ``n`` items pass, with no holes and
no over-long answers (the classic bug of filtering a fixed top-n afterwards, implicit#736).

Resolving ids to a model's indices costs a pass over the hidden and expiring ids after each
change of the catalogue (with the id -> row lookups memoised per model), and a pass over a
category's members when that category changed; everything else is cached.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..ids import IdIndex
from .records import Catalogue
from .table import CatalogueTable

__all__ = ["MAX_FILTER_CATEGORIES", "MODES", "CatalogueIndex", "ItemFilter", "Restriction",
           "parse_filter"]

Idx = npt.NDArray[np.intp]
_EMPTY: Idx = np.empty(0, dtype=np.intp)
MODES = ("any", "all")
#: At most this many categories in one request's filter.
MAX_FILTER_CATEGORIES = 64
#: Candidate arrays of multi-category filters kept (distinct filters asked for; then cleared).
_MAX_CACHED_FILTERS = 256


@dataclass(frozen=True)
class ItemFilter:
    """``categories`` to keep (empty: no category filter) and how they combine."""

    categories: tuple[str, ...] = ()
    mode: Literal["any", "all"] = "any"


@dataclass(frozen=True)
class Restriction:
    """Model item indices: ``candidates`` (None: every item; sorted, unique) minus ``banned``
    (unsorted, may repeat: ranking only sets those scores to -inf, and a set union per request
    would cost more than the ranking itself)."""

    candidates: Idx | None
    banned: Idx


@dataclass
class _Resolved:
    version: int
    hidden: Idx  # model indices of hidden items
    expiring: Idx  # model indices of items with an expires_at ...
    expires_at: npt.NDArray[np.float64]  # ... and those times, seconds


@dataclass
class _ModelView:
    """What is kept for one model's ids across catalogue versions."""

    ids: IdIndex
    rows: dict[str, int | None]  # item id -> model row (None: not in the model), memoised
    # The catalogue's base table and, per base row, the model row (-1: not in the model).
    base: CatalogueTable | None
    base_rows: npt.NDArray[Any]  # intp, or the snapshot's int32 model rows
    # Rows of the hidden items and row -> expires_at, kept up to date by the changes since
    # ``synced`` (the catalogue version they reflect; -1: never read).
    hidden: set[int]
    expiring: dict[int, float]
    synced: int
    # Per category and per filter: (catalogue version computed at, candidate rows); reused
    # while the catalogue has not changed the categories involved since.
    categories: dict[str, tuple[int, Idx]]
    filters: dict[ItemFilter, tuple[int, Idx]]


def _unique(rows: list[int]) -> Idx:
    return np.unique(np.asarray(rows, dtype=np.intp))


class CatalogueIndex:
    """A :class:`Catalogue` seen through one model's item ids at a time (thread-safe)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._resolved: _Resolved | None = None
        self._view: _ModelView | None = None
        self._lock = threading.Lock()

    def _model(self, ids: IdIndex) -> _ModelView:
        v = self._view
        # A new model, or the memo grown well past the catalogue (ids of removed records).
        if v is None or v.ids is not ids or len(v.rows) > 2 * len(self.catalogue) + 10_000:
            v = self._view = _ModelView(ids, {}, None, _EMPTY, set(), {}, -1, {}, {})
            self._resolved = None
        return v

    def _row(self, v: _ModelView, item: str) -> int | None:
        try:
            return v.rows[item]
        except KeyError:  # a model's id lookup costs ~3 µs; a dict's, 50 ns
            row = v.rows[item] = v.ids.get(item)
            return row

    def _mapped(self, v: _ModelView, base: CatalogueTable | None, rows: npt.NDArray[np.int32],
                others: Collection[str]) -> list[int]:
        """Model rows of base ``rows`` and of the ``others`` ids (those in the model)."""
        out = [row for i in others if (row := self._row(v, i)) is not None]
        if base is None or not len(rows):
            return out
        found = self._base_map(v, base)[rows]
        kept: list[int] = found[found >= 0].tolist()
        return out + kept

    @staticmethod
    def _base_map(v: _ModelView, base: CatalogueTable) -> Idx:
        """Per row of ``base``, its model row (-1: not in the model): the snapshot's own
        ``catalog.model_rows`` for its own model, else built once per base and model (~2 µs
        per record, one intp each)."""
        if v.base is not base and base.model_ids is v.ids and base.model_rows is not None:
            v.base, v.base_rows = base, base.model_rows  # the snapshot's own: mapped already
        elif v.base is not base:
            get = v.ids.get
            v.base, v.base_rows = base, np.fromiter(
                (-1 if (r := get(i)) is None else r for i in base.ids.tolist()),
                dtype=np.intp, count=len(base))
        return v.base_rows

    def _resolve(self, v: _ModelView) -> _Resolved:
        r = self._resolved
        version = self.catalogue.version  # read first: a change meanwhile rebuilds next time
        if r is not None and r.version == version:
            return r
        self._sync(v, version)
        r = self._resolved = _Resolved(
            version, np.fromiter(v.hidden, dtype=np.intp, count=len(v.hidden)),
            np.fromiter(v.expiring.keys(), dtype=np.intp, count=len(v.expiring)),
            np.fromiter(v.expiring.values(), dtype=np.float64, count=len(v.expiring)))
        return r

    def _sync(self, v: _ModelView, version: int) -> None:
        """Bring ``v.hidden`` and ``v.expiring`` to ``version``: by the changed items when the
        catalogue still remembers them (O(changes)), else by reading it all."""
        changed = None if v.synced < 0 else self.catalogue.changed_since(v.synced)
        if changed is None:
            v.hidden = set(self._mapped(v, *self.catalogue.hidden_parts()))
            base, rows, others = self.catalogue.expiring_parts()
            v.expiring = {row: t for i, t in others.items()
                          if (row := self._row(v, i)) is not None}
            if base is not None and len(rows):
                found = self._base_map(v, base)[rows]
                keep = found >= 0
                v.expiring.update(zip(found[keep].tolist(),
                                      base.expires_at[rows[keep]].tolist(), strict=True))
        for item in changed or ():
            row = self._row(v, item)
            if row is None:
                continue
            rec = self.catalogue.get(item)  # the current record: replaying a change is harmless
            if rec is not None and rec.hidden:
                v.hidden.add(row)
            else:
                v.hidden.discard(row)
            if rec is not None and rec.expires_at is not None:
                v.expiring[row] = rec.expires_at
            else:
                v.expiring.pop(row, None)
        v.synced = version

    def _category(self, v: _ModelView, category: str) -> Idx:
        cached = v.categories.get(category)
        if cached is not None and cached[0] >= self.catalogue.category_version(category):
            return cached[1]
        version = self.catalogue.version
        base, rows, others = self.catalogue.member_parts(category)
        if not others and not len(rows):
            # A name nobody has (any string a client sends) is not remembered: caching it
            # would grow this dict with every distinct unknown category asked for.
            v.categories.pop(category, None)
            return _EMPTY
        found = _unique(self._mapped(v, base, rows, others))
        v.categories[category] = (version, found)
        return found

    def restrict(self, ids: IdIndex, flt: ItemFilter | None, now: float,
                 excluded: Collection[str] = ()) -> Restriction:
        """The :class:`Restriction` for a model with item ``ids`` at ``now`` (seconds).

        ``excluded`` adds ids never to return (e.g. deleted items). An unknown category
        matches nothing: alone (or under ``all``) it empties the list; it is not an error.
        """
        with self._lock:
            v = self._model(ids)
            r = self._resolve(v)
            candidates = None if flt is None or not flt.categories else self._candidates(v, flt)
            banned = r.hidden
            expired = r.expiring[r.expires_at <= now]
            if len(expired):
                banned = np.concatenate((banned, expired))
        if excluded:
            get = ids.get
            more = [row for i in excluded if (row := get(i)) is not None]
            if more:
                banned = np.concatenate((banned, np.asarray(more, dtype=np.intp)))
        return Restriction(candidates, banned)

    def _candidates(self, v: _ModelView, flt: ItemFilter) -> Idx:
        if len(flt.categories) == 1:
            return self._category(v, flt.categories[0])
        cached = v.filters.get(flt)
        if cached is not None and all(cached[0] >= self.catalogue.category_version(c)
                                      for c in flt.categories):
            return cached[1]
        version = self.catalogue.version
        sets = [self._category(v, c) for c in flt.categories]
        found = sets[0]
        for s in sets[1:]:
            found = (np.union1d(found, s) if flt.mode == "any"
                     else np.intersect1d(found, s, assume_unique=True))
        if len(v.filters) >= _MAX_CACHED_FILTERS:
            v.filters.clear()
        v.filters[flt] = (version, found)
        return found


def parse_filter(categories: Sequence[str], mode: str | None) -> ItemFilter:
    """An :class:`ItemFilter` from request values (``categories`` may hold comma lists).

    Names are stripped of surrounding whitespace (records cannot have any, ``catalog.py``).
    Raises ``ValueError`` naming the problem (an empty name, as in ``a,,b`` or ``[""]``: a
    filter silently dropped would answer unfiltered; too many categories; a bad mode)."""
    split = [c.strip() for raw in categories for c in raw.split(",")]
    if "" in split:
        raise ValueError(f"category has an empty name (entry {split.index('') + 1} of "
                         f"{len(split)}); give non-empty names")
    names = tuple(dict.fromkeys(split))
    if len(names) > MAX_FILTER_CATEGORIES:
        raise ValueError(f"at most {MAX_FILTER_CATEGORIES} categories, got {len(names)}")
    chosen = "any" if mode is None or mode == "" else mode
    if chosen not in MODES:
        raise ValueError(f"category_mode must be 'any' or 'all', got {mode!r:.40}")
    return ItemFilter(names, "any" if chosen == "any" else "all")
