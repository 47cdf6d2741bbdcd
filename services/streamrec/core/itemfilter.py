"""Request-time item filters, turned into model indices that ranking honours.

A request may ask for items in some categories (``any`` of them, the default, or ``all``);
whatever it asks, hidden and expired items (and ids the caller adds, such as deleted items)
are never returned. The filter is applied *inside* ranking, before the top ``n`` is chosen:
:meth:`CatalogueIndex.restrict` gives a whitelist of candidate indices (the category filter)
and a ban list (hidden, expired, excluded), which ``recommend.py`` removes from the scores
before selecting. So a list is exactly ``n`` long whenever ``n`` items pass, with no holes and
no over-long answers (the classic bug of filtering a fixed top-n afterwards, implicit#736).

Resolving ids to a model's indices costs a pass over the hidden, expiring and category member
sets; it is cached per (catalogue version, model) and redone only after a change.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from .catalog import Catalogue
from .ids import IdIndex

__all__ = ["MAX_FILTER_CATEGORIES", "MODES", "CatalogueIndex", "ItemFilter", "Restriction",
           "parse_filter"]

Idx = npt.NDArray[np.intp]
_EMPTY: Idx = np.empty(0, dtype=np.intp)
MODES = ("any", "all")
#: At most this many categories in one request's filter.
MAX_FILTER_CATEGORIES = 64
#: Candidate arrays kept per catalogue version (distinct filters asked for; then cleared).
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
    ids: IdIndex
    hidden: Idx  # model indices of hidden items
    expiring: Idx  # model indices of items with an expires_at ...
    expires_at: npt.NDArray[np.float64]  # ... and those times, seconds
    categories: dict[str, Idx]  # filled on first use
    filters: dict[ItemFilter, Idx]  # candidates per filter, filled on first use (bounded)


def _unique(rows: list[int]) -> Idx:
    return np.unique(np.asarray(rows, dtype=np.intp))


class CatalogueIndex:
    """A :class:`Catalogue` seen through one model's item ids at a time (thread-safe)."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self._resolved: _Resolved | None = None
        self._lock = threading.Lock()

    def _resolve(self, ids: IdIndex) -> _Resolved:
        r = self._resolved
        version = self.catalogue.version
        if r is not None and r.version == version and r.ids is ids:
            return r
        get = ids.get
        hidden = [row for i in self.catalogue.hidden() if (row := get(i)) is not None]
        expiring = [(row, t) for i, t in self.catalogue.expiring().items()
                    if (row := get(i)) is not None]
        r = _Resolved(version, ids, _unique(hidden),
                      np.asarray([i for i, _ in expiring], dtype=np.intp),
                      np.asarray([t for _, t in expiring], dtype=np.float64), {}, {})
        self._resolved = r
        return r

    def _category(self, r: _Resolved, category: str) -> Idx:
        found = r.categories.get(category)
        if found is None:
            get = r.ids.get
            found = _unique([row for i in self.catalogue.members(category)
                             if (row := get(i)) is not None])
            r.categories[category] = found
        return found

    def restrict(self, ids: IdIndex, flt: ItemFilter | None, now: float,
                 excluded: Collection[str] = ()) -> Restriction:
        """The :class:`Restriction` for a model with item ``ids`` at ``now`` (seconds).

        ``excluded`` adds ids never to return (e.g. deleted items). An unknown category
        matches nothing: alone (or under ``all``) it empties the list; it is not an error.
        """
        with self._lock:
            r = self._resolve(ids)
            candidates = None if flt is None or not flt.categories else self._candidates(r, flt)
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

    def _candidates(self, r: _Resolved, flt: ItemFilter) -> Idx:
        found = r.filters.get(flt)
        if found is None:
            sets = [self._category(r, c) for c in flt.categories]
            found = sets[0]
            for s in sets[1:]:
                found = (np.union1d(found, s) if flt.mode == "any"
                         else np.intersect1d(found, s, assume_unique=True))
            if len(r.filters) >= _MAX_CACHED_FILTERS:
                r.filters.clear()
            r.filters[flt] = found
        return found


def parse_filter(categories: Sequence[str], mode: str | None) -> ItemFilter:
    """An :class:`ItemFilter` from request values (``categories`` may hold comma lists).

    Raises ``ValueError`` naming the problem (too many categories, a bad mode)."""
    names = tuple(dict.fromkeys(c.strip() for raw in categories for c in raw.split(",")
                                if c.strip()))
    if len(names) > MAX_FILTER_CATEGORIES:
        raise ValueError(f"at most {MAX_FILTER_CATEGORIES} categories, got {len(names)}")
    chosen = "any" if mode is None or mode == "" else mode
    if chosen not in MODES:
        raise ValueError(f"category_mode must be 'any' or 'all', got {mode!r:.40}")
    return ItemFilter(names, "any" if chosen == "any" else "all")
