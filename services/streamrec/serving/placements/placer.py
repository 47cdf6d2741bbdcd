"""A worker's placements, as a request uses them: resolve a name, rank with its rules,
remember what was shown.

`Placer` owns the watched `PlacementBook`, the per-item `PlacementMasks` (kept current by the
book's watch thread and at each snapshot swap, so a request normally evaluates no
expression), the `Impressions` read back from their topic, and the sink impressions are
published to. `Placer.call` gives a route the `PlacementCall` that `LiveModel` asks for the
request's ranker, its rotation skips and its scoring.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from streamrec.adapters.source import EventSink, EventSource
from streamrec.core.events import Event
from streamrec.core.placements.impressions import Impression, Impressions, encode, skipped
from streamrec.core.placements.masks import Built, PlacementArrays, PlacementMasks
from streamrec.core.placements.rerank import PlacementRanker
from streamrec.core.placements.spec import Placement, to_json
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.model import Model
from streamrec.core.scoring.types import Pairs
from streamrec.settings.placements import PlacementSource

from .. import metrics
from ..live.holder import Served
from ..live.model import LiveModel
from .book import PlacementBook
from .feed import ImpressionsFollower

log = logging.getLogger(__name__)

__all__ = ["EXPIRE_EVERY_S", "PlacementCall", "Placer", "UnknownPlacement"]

#: Seconds between two passes dropping impressions past their day (`Impressions.expire`).
EXPIRE_EVERY_S = 60.0


class UnknownPlacement(LookupError):
    """A ``placement=`` no configured placement has; the HTTP layer answers 400 naming it."""

    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(name)
        self.name, self.known = name, tuple(known)


class PlacementCall:
    """One request's placement: what `LiveModel` asks of it."""

    def __init__(self, placer: Placer, placement: Placement) -> None:
        self.placer, self.placement = placer, placement

    def scoring_for(self, base: ScoringParams) -> ScoringParams:
        return self.placement.scoring_for(base)

    def ranker(self, served: Served, user: str | None) -> PlacementRanker:
        return self.placer.ranker(self.placement, served, user)

    def skips(self, user: str, extra: Pairs) -> list[tuple[str, float, float | None]]:
        return self.placer.skips(self.placement, user, extra)


class Placer:
    """See the module docstring. ``origin`` names this worker in the impressions it
    publishes (its own are not read back)."""

    def __init__(self, source: PlacementSource, live: LiveModel, sink: EventSink | None,
                 topic: str, impressions_factory: Callable[[], EventSource] | None,
                 origin: str) -> None:
        self.book = PlacementBook(source)
        self.live = live
        self.masks = PlacementMasks(live.catalogue)
        self.impressions = Impressions()
        self.sink, self.topic, self.origin = sink, topic, origin
        self.follower = ImpressionsFollower(impressions_factory, self.impressions, origin) \
            if impressions_factory is not None else None
        self.rng = random.Random()
        self._errors: dict[str, int] = {}  # expression -> failures already counted
        self._expired_at = 0.0
        self.book.on_tick(self.refresh)

    # -- keeping the arrays current --------------------------------------------------------

    def _build(self, model: Model) -> Built:
        built = self.masks.refresh(model.item_ids, model.users_per_item, self.book.placements,
                                   time.time())
        for source, count in built.errors.items():
            new = count - self._errors.get(source, 0)
            if new > 0:
                for p in built.placements:
                    if any(e.source == source for e in p.expressions()):
                        metrics.PLACEMENT_EVAL_ERRORS.labels(p.name).inc(new)
                self._errors[source] = count
        return built

    def refresh(self) -> None:
        """The watch thread's tick: bring the arrays up to the served model, the catalogue,
        the placements and the clock."""
        s = self.live.current()
        if s is not None and self.book.placements:
            self._build(s.snapshot.model)
        now = time.time()
        if now - self._expired_at >= EXPIRE_EVERY_S:  # a pass over every user: not each tick
            self._expired_at = now
            self.impressions.expire(now)

    def on_swap(self, served: Served) -> None:
        """Holder listener, after the catalogue is taken: the new model's arrays, built once
        here rather than by the first request that asks."""
        if self.book.placements:
            self._build(served.snapshot.model)

    def _arrays(self, model: Model, placement: Placement) -> PlacementArrays:
        """The placement's arrays for ``model``: as the watch thread left them, or brought up
        to date here (an O(1) check when nothing changed; the changed records only when the
        catalogue moved; everything after a swap or a new set of placements)."""
        b = self._build(model)
        if placement.name not in b.arrays:  # the set changed between the lookup and now
            b = self.masks.refresh(model.item_ids, model.users_per_item, (placement,),
                                   time.time())
        return b.arrays[placement.name]

    # -- a request -------------------------------------------------------------------------

    def call(self, name: str | None) -> PlacementCall | None:
        """The request's placement (None: none asked); `UnknownPlacement` for a name no
        placement has."""
        if name is None:
            return None
        p = self.book.named(name)
        if p is None:
            raise UnknownPlacement(name, [q.name for q in self.book.placements])
        return PlacementCall(self, p)

    def ranker(self, placement: Placement, served: Served, user: str | None) -> PlacementRanker:
        model = served.snapshot.model
        ids, catalogue = model.item_ids, self.live.catalogue
        shown = None
        if placement.rotation is not None and user is not None:
            seen = self.impressions.shown(user, time.time() - placement.rotation.seconds)
            shown = np.asarray([r for i in seen if (r := ids.get(i)) is not None],
                               dtype=np.intp)

        def categories(row: int) -> Sequence[str]:
            return catalogue.categories_of(ids[row])

        def counts(rows: Sequence[int]) -> Mapping[int, tuple[int, int]]:
            got = self.impressions.counts(ids[r] for r in rows)
            return {r: got[ids[r]] for r in rows if ids[r] in got}

        return PlacementRanker(placement, self._arrays(model, placement), shown=shown,
                               categories=categories, factors=model.als.item_factors,
                               counts=counts, rng=self.rng)

    def skips(self, placement: Placement, user: str,
              extra: Pairs) -> list[tuple[str, float, float | None]]:
        """Rotation's weak negatives: items shown to ``user`` within the window and not acted
        on since, each as an event of weight ``skipWeight`` (none when it is 0)."""
        r = placement.rotation
        if r is None or r.skip_weight == 0:
            return []
        now = time.time()
        shown = self.impressions.shown(user, now - r.seconds)
        acted = [(e[0], now if len(e) < 3 or e[2] is None else float(e[2]))
                 for e in extra]
        return [(i, r.skip_weight, shown[i]) for i in skipped(shown, acted)]

    def served(self, call: PlacementCall | None, user: str | None, items: Sequence[str],
               marks: Sequence[str | None] | None) -> None:
        """Remember (and publish) a list a user was shown under a placement with rotation or
        exploration."""
        if call is None or user is None or not items:
            return
        p = call.placement
        if p.rotation is None and p.exploration is None:
            return
        explored = tuple(i for i, m in zip(items, marks or (), strict=False) if m == "exploration")
        imp = Impression(user, tuple(items), time.time(), p.name, explored, self.origin)
        self.impressions.add(imp, imp.at)
        if self.sink is None:
            return
        try:
            self.sink.produce(self.topic, encode(imp), key=user.encode("utf-8", "surrogatepass"))
            metrics.IMPRESSIONS.labels("published").inc()
        except Exception as e:  # a list is served even when its impression cannot be sent
            metrics.IMPRESSIONS.labels("published_failed").inc()
            log.warning("impression not published: %s", e)

    def observe(self, events: Sequence[Event], stamps: Sequence[float | None]) -> None:
        """The fold-in's observer: a positive event credits the exploration slot that showed
        its item to its user (Thompson sampling's clicks)."""
        now = time.time()
        for e, ts in zip(events, stamps, strict=True):
            if e.weight > 0:
                self.impressions.click(e.user, e.item, now if ts is None else ts)

    def describe(self) -> dict[str, Any]:
        """``GET /placements``: the placements, where they came from, and their health."""
        b = self.masks.current()
        return {"version": self.book.version, "path": self.book.path,
                "loaded_at": self.book.loaded_at, "error": self.book.error,
                "placements": to_json(self.book.placements),
                "expression_errors": dict(b.errors) if b is not None else {},
                "impressions": {"users": len(self.impressions)}}

    def start(self) -> None:
        self.book.start()
        if self.follower is not None:
            self.follower.start()

    def stop(self) -> None:
        self.book.stop()
        if self.follower is not None:
            self.follower.stop()
