"""`LiveModel`: the served snapshot joined with everything that happened since, in one place.

A request asks the live model and gets an answer computed from *one* served snapshot (read
once per call, so a hot reload never changes the model mid-request) joined with:

- the user's **fresh events** since that snapshot (``fresh.py``): the fold-in's ``extra``;
- **seen stays seen**: fresh items the fold-in's history bound dropped are still excluded
  when ``exclude_seen`` is asked for;
- the **catalogue restriction**: hidden and expired items never, the category filter when
  asked for (``core/catalog/filters.py``);
- **forgotten ids** (``forgotten.py``): erased items are never shown and never looked up;
  erased users are masked in the snapshot until one without them arrives;
- the user's **experiment arm**, when the caller passes one (``core/experiments/``): the
  arm's scoring overrides over the snapshot's own scoring;
- the request's **placement**, when the caller passes one (``core/placements/``): its scoring
  overrides (under the arm's), rotation's skipped items as weak negatives, and its own final
  ranking step (filter, boosts, rotation, promotions, exploration, diversity).

As Oryx's ``ALSServingModel``, it knows nothing of HTTP: the routes parse, ask, and answer.
It raises `NoModel` before the first snapshot, `ErasedItem` for an erased item, and the
core's `UnknownUser` / `UnknownItem` where the model does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace

from streamrec.core.catalog.filters import CatalogueIndex, ItemFilter, Restriction
from streamrec.core.catalog.records import Catalogue, ItemRecord
from streamrec.core.events.erasure import Erasure, Tombstones
from streamrec.core.events.erasurekey import ErasureHasher
from streamrec.core.experiments.spec import Arm
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.model import UnknownUser

from .. import metrics
from .answers import (
    NO_MODEL,
    ErasedItem,
    Explained,
    Known,
    Listed,
    ListQuery,
    NoModel,
    Placing,
)
from .forgotten import Forgotten
from .fresh import FreshEvents
from .holder import Holder, Served

__all__ = ["LiveModel"]

class LiveModel:
    """One worker's live state (holder, fresh events, catalogue, forgotten ids) and its
    answers. Thread-safe: the feeds write, request threads read."""

    def __init__(self, hasher: ErasureHasher, fresh: FreshEvents | None = None) -> None:
        self.holder = Holder()
        self.fresh = FreshEvents() if fresh is None else fresh
        self.catalogue = Catalogue()
        self.index = CatalogueIndex(self.catalogue)
        #: Tombstones and erasure records hold keyed hashes (core/events/erasurekey.py), never ids.
        self.hasher = hasher
        # An erased item's catalogue record goes too; later records of it are dropped.
        self.forgotten = Forgotten(hasher, on_item=self.catalogue.remove,
                                   known_items=self.item_ids)
        self.holder.before_swap(self.forgotten.before_swap)

    # -- state ---------------------------------------------------------------------------

    def current(self) -> Served | None:
        return self.holder.current()

    def served(self, why: str = NO_MODEL) -> Served:
        """The served snapshot; `NoModel` (with ``why``) before the first one."""
        s = self.holder.current()
        if s is None:
            raise NoModel(why)
        return s

    def item_ids(self) -> list[str]:
        """Item ids this worker could show: the served snapshot's and the catalogue's (an
        erasure read from the topic holds only a hash, matched against them)."""
        served = self.holder.current()
        ids = list(served.snapshot.model.item_ids) if served is not None else []
        return ids + self.catalogue.items()

    def take_catalogue(self, served: Served) -> None:
        """Holder listener when no items topic is followed: the snapshot's catalogue is all."""
        self.catalogue.replace(served.snapshot.catalog)

    def forget(self, erasures: Sequence[Erasure]) -> list[Erasure]:
        """Apply erasures now (from the log, or a DELETE this worker answered): remember them
        and drop what they erase from the fresh events. Returns those that were new here."""
        applied = [e for e in erasures if self.forgotten.add(e)]
        for e in applied:
            metrics.ERASURES.labels(e.kind).inc()
        if applied:
            self.fresh.erase(Tombstones.of(applied, self.hasher))
        return applied

    def erased(self, item: str) -> bool:
        """Whether ``item`` was erased (for good: its records are refused too)."""
        return self.forgotten.item_erased(item)

    def check_item(self, item: str) -> str:
        """``item`` itself; `ErasedItem` when it was erased."""
        if self.forgotten.item_erased(item):
            raise ErasedItem(item)
        return item

    def record(self, item: str) -> ItemRecord | None:
        """The catalogue record of ``item`` (None: none); `NoModel` before the first snapshot,
        which brings the catalogue."""
        self.served("no snapshot loaded yet (the catalogue comes with it); retry shortly")
        return self.catalogue.get(item)

    def _restriction(self, s: Served, flt: ItemFilter | None) -> Restriction:
        """Hidden, expired and erased items out, always; the category filter when asked."""
        return self.index.restrict(s.snapshot.model.item_ids, flt, time.time(),
                                   self.forgotten.items)

    def _seen(self, user: str, q: ListQuery) -> ListQuery:
        """Seen stays seen: fresh items the fold-in history bound dropped are excluded too
        (``q`` itself when there are none)."""
        beyond = self.fresh.beyond_history(user) if q.exclude_seen else []
        return replace(q, exclude=[*(q.exclude or ()), *beyond]) if beyond else q

    # -- answers -------------------------------------------------------------------------

    @staticmethod
    def _scoring(s: Served, arm: Arm | None,
                 placing: Placing | None = None) -> ScoringParams | None:
        """The placement's scoring over the snapshot's own, the arm's over that (None: the
        snapshot's)."""
        if arm is None and placing is None:
            return None
        base = s.snapshot.model.scoring
        if placing is not None:
            base = placing.scoring_for(base)
        return base if arm is None else arm.scoring_for(base)

    def recommend(self, user: str, q: ListQuery, arm: Arm | None = None,
                  placing: Placing | None = None) -> Listed:
        """Top ``q.n`` for ``user``, refolded over their fresh events, scored as ``arm`` says
        when the user is in an experiment, ranked by ``placing`` when a placement is asked."""
        q = self._seen(user, q)
        s = self.served()
        extra = self.fresh.timed(user)
        fold = [*extra, *placing.skips(user, extra)] if placing is not None else extra
        recs = s.snapshot.model.recommend(
            user, n=q.n, exclude_seen=q.exclude_seen, items=q.items, exclude=q.exclude,
            extra=fold or None, scoring=self._scoring(s, arm, placing),
            restrict=self._restriction(s, q.filter),
            ranker=None if placing is None else placing.ranker(s, user))
        return Listed(s.version, recs, len(extra))

    def recommend_batch(self, users: Sequence[str], q: ListQuery,
                        arms: Mapping[str, Arm] | None = None) -> tuple[str, dict[str, Listed]]:
        """:meth:`recommend` for many users in one pass over the snapshot: the version and a
        list per user (users whose seen set outgrew their history, and users in an
        experiment arm (``arms``), are ranked one by one)."""
        s = self.served()
        model, restrict = s.snapshot.model, self._restriction(s, q.filter)
        arms = arms or {}
        extra = {u: p for u in users if (p := self.fresh.timed(u))}
        own = {u: k for u in users if (k := self._seen(u, q)) is not q or u in arms}
        out = model.recommend_batch([u for u in users if u not in own], n=q.n,
                                    exclude_seen=q.exclude_seen, items=q.items,
                                    exclude=q.exclude, extra=extra, restrict=restrict)
        for u, k in own.items():  # their own ban list, or their arm's scoring
            out[u] = model.recommend(u, n=k.n, exclude_seen=k.exclude_seen, items=k.items,
                                     exclude=k.exclude, extra=extra.get(u),
                                     scoring=self._scoring(s, arms.get(u)), restrict=restrict)
        return s.version, {u: Listed(s.version, r, len(extra.get(u, ()))) for u, r in out.items()}

    def recommend_session(self, items: Sequence[tuple[str, float]], q: ListQuery,
                          placing: Placing | None = None) -> Listed:
        """Top ``q.n`` for an anonymous session of (item, weight) pairs; ``q.items`` is the
        whitelist of candidates. A placement's scoring overrides do not apply (a session is
        scored as the snapshot says); its ranking step does."""
        s = self.served()
        recs = s.snapshot.model.recommend_anonymous(
            items=list(items), n=q.n, exclude_seen=q.exclude_seen, candidates=q.items,
            exclude=q.exclude, restrict=self._restriction(s, q.filter),
            ranker=None if placing is None else placing.ranker(s, None))
        return Listed(s.version, recs)

    def similar(self, item: str, q: ListQuery, placing: Placing | None = None) -> Listed:
        """Items closest to ``item`` (``q.items`` and ``q.exclude_seen`` do not apply)."""
        self.check_item(item)
        s = self.served()
        recs = s.snapshot.model.similar_items(
            item, n=q.n, exclude=q.exclude, restrict=self._restriction(s, q.filter),
            ranker=None if placing is None else placing.ranker(s, None))
        return Listed(s.version, recs)

    def next_items(self, item: str, q: ListQuery, placing: Placing | None = None) -> Listed:
        """What most often came next after ``item`` (``q.items`` and ``q.exclude_seen`` do
        not apply); similar items, ``fallback="similar"``, when nothing did."""
        self.check_item(item)
        s = self.served()
        recs = s.snapshot.model.next_items(
            item, n=q.n, exclude=q.exclude, restrict=self._restriction(s, q.filter),
            ranker=None if placing is None else placing.ranker(s, None))
        return Listed(s.version, recs)

    def popular(self, q: ListQuery, placing: Placing | None = None) -> Listed:
        """The most popular items that pass the restriction."""
        s = self.served()
        recs = s.snapshot.model.popular(
            n=q.n, exclude=q.exclude, restrict=self._restriction(s, q.filter),
            ranker=None if placing is None else placing.ranker(s, None))
        return Listed(s.version, recs)

    def because(self, user: str, item: str, n: int) -> Explained:
        """Why ``item`` for ``user``: their top ``n`` contributing items (erased ones out)."""
        self.check_item(item)
        s = self.served()
        extra = self.fresh.timed(user)
        model = s.snapshot.model
        why = model.explain(user, item, n=n, extra=extra or None)
        driven_by, transitions = model.explain_terms(user, item, extra=extra or None)
        erased = self.forgotten.items
        return Explained(s.version, [(i, c) for i, c in why if i not in erased], len(extra),
                         driven_by, [t for t in transitions[:n] if t[0] not in erased])

    def known_items(self, user: str) -> Known:
        """The user's items, erased ones out; `UnknownUser` when there are none at all."""
        s = self.served()
        erased = self.forgotten.items
        fresh = [(i, w) for i, w in self.fresh.pairs(user) if i not in erased]
        try:
            known = [(i, w) for i, w in s.snapshot.model.known_items(user) if i not in erased]
        except UnknownUser:
            if not fresh:
                raise
            known = []
        return Known(s.version, known, fresh)
