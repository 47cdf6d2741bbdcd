"""One worker's state and its lifecycle: the live model, its feeds, online evaluation, the sink.

`Service` wires the parts together and owns their threads. Nothing starts at construction:
`Service.start` runs after the fork (gunicorn's ``post_worker_init``) and the tests call it
when they want threads; they may instead drive ``service.reloader.check_once()`` and
``service.foldin.step()`` by hand. The HTTP layer (``serving/http/``) reads it through
``app.extensions["streamrec"]``.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from streamrec.adapters.erasurekeys import erasure_hasher
from streamrec.adapters.source import EventSink, EventSource
from streamrec.adapters.storebase import ExperimentResults, StoreError, TrainingReports
from streamrec.adapters.stores import SnapshotStore
from streamrec.config import Config
from streamrec.core.events import Event
from streamrec.core.events.erasure import Erasure
from streamrec.core.events.erasurekey import KeyUnavailable
from streamrec.core.experiments.assign import Assignment, assign
from streamrec.core.snapshot.trainingstatus import TrainingStatus

from .feeds.foldin import FoldIn, SourceFactory
from .feeds.items import ItemsFollower
from .feeds.reloader import Reloader
from .groups.forward import Forwarder
from .live.holder import Served
from .live.model import LiveModel
from .online import experiments as onlineexperiments
from .online import placements as onlineplacements
from .online import stats as onlinestats
from .online.archive import Archive
from .online.history import ModelHistory
from .online.observe import observe_batch
from .online.stats import Publisher, state_dir
from .online.tracker import OnlineTracker
from .placements.placer import PlacementCall, Placer

log = logging.getLogger(__name__)

__all__ = ["Service"]


class Service:
    """Everything a worker serves from: the live model, its feeds (reloader, fold-in, items
    follower), online evaluation and the event sink."""

    def __init__(self, config: Config, store: SnapshotStore,
                 source_factory: SourceFactory | None, sink: EventSink | None,
                 notify_factory: Callable[[], EventSource] | None = None,
                 items_factory: Callable[[], EventSource] | None = None,
                 impressions_factory: Callable[[], EventSource] | None = None) -> None:
        self.config, self.store, self.sink = config, store, sink
        #: The live state and its answers (``live/model.py``); the names below are its parts.
        self.hasher = erasure_hasher(config.erasure_key, store)
        self.live = live = LiveModel(self.hasher)
        self.holder, self.fresh, self.catalogue = live.holder, live.fresh, live.catalogue
        self.forgotten = live.forgotten
        self.items_follower = ItemsFollower(items_factory, self.catalogue,
                                            erased=self.forgotten.item_erased) \
            if items_factory is not None else None
        cache = Path(config.cache_dir) if config.cache_dir else Path(
            tempfile.mkdtemp(prefix="streamrec-cache-"))
        self.reloader = Reloader(store, self.holder, cache, config.reload_interval,
                                 notify_factory, config.user_shard)
        self.online = OnlineTracker(
            horizon=config.online_horizon, max_users=config.online_max_users,
            positive=config.online_positive, bucket_seconds=config.online_bucket_seconds,
            buckets=config.online_buckets) if config.online_tracking else None
        self.models = ModelHistory()
        #: Placements (``placements/placer.py``): rules, rotation, exploration.
        self.placer = Placer(config.placements, live, sink, config.impressions,
                             impressions_factory,
                             self.online.token if self.online is not None
                             else secrets.token_hex(6))
        #: Serving groups (``core/groups.py``): whose users this worker serves, and where it
        #: forwards the others' requests (``groups/forward.py``).
        self.groups = config.groups
        self.forwarder = Forwarder(config.group_urls, config.forward_timeout,
                                   config.threads) if self.groups.sharded else None
        self.foldin = FoldIn(source_factory, live, config.format, config.min_weight,
                             self._observer(), config.feedback, self._forget_online,
                             self.groups.owns if self.groups.sharded else None) \
            if source_factory is not None else None
        directory = state_dir()
        self.publisher = Publisher(self.online, directory) \
            if self.online is not None and directory is not None else None
        #: Experiments' results in the store (``online/archive.py``); None without tracking.
        self.archive = Archive(store, self.online, config.experiments) \
            if self.online is not None and isinstance(store, ExperimentResults) else None
        self._listen()
        self.started = False
        self._training: tuple[float, dict[str, Any]] | None = None

    def _observer(self) -> Callable[[Sequence[Event], Sequence[float | None]], None]:
        """The fold-in's observer: online evaluation, then exploration's clicks."""
        tracker = observe_batch(self.online)

        def observe(events: Sequence[Event], stamps: Sequence[float | None]) -> None:
            if tracker is not None:
                tracker(events, stamps)
            self.placer.observe(events, stamps)

        return observe

    def _listen(self) -> None:
        """Swap listeners, in order: history, catalogue, erased items scrubbed from it, the
        fresh events' floor."""
        self.holder.on_swap(self.models.add)
        if self.items_follower is not None:
            self.holder.on_swap(self.items_follower.on_swap)
        else:  # no items topic: the snapshot's catalogue is all there is
            self.holder.on_swap(self.live.take_catalogue)
        self.holder.on_swap(self.forgotten.scrub)  # after the catalogue is taken
        self.holder.on_swap(self.placer.on_swap)  # placements read the catalogue just taken
        if self.foldin is not None:
            self.holder.on_swap(self.foldin.on_swap)
        else:  # no consumer: still keep the floor right for events nobody adds
            self.holder.on_swap(self._advance)

    def training_report(self) -> dict[str, Any]:
        """The trainer's fit report from the store (``core.trainingstatus``), cached for one
        reload interval; ``{"available": False, "error": ...}`` when it cannot be read."""
        now = time.monotonic()
        cached = self._training
        if cached is not None and now - cached[0] < self.config.reload_interval:
            return cached[1]
        report: dict[str, Any]
        if not isinstance(self.store, TrainingReports):
            report = {"available": False, "error": "this store keeps no training report"}
        else:
            try:
                raw = self.store.training_status()
                report = {"available": False, "error": "no fit reported yet"} if raw is None \
                    else {"available": True, **asdict(TrainingStatus.from_bytes(raw))}
            except StoreError as e:
                report = {"available": False, "error": f"store unavailable: {e}"}
            except ValueError as e:
                report = {"available": False, "error": f"unreadable report: {e}"}
        self._training = (now, report)
        return report

    def assignment(self, user: str, placement: str | None = None) -> Assignment | None:
        """The user's arm in a running experiment (``config.experiments``) that applies to a
        request asking ``placement``, None when in none: a salted hash, the same in every
        worker and replica (``core/experiments/assign.py``)."""
        if not self.config.experiments:
            return None
        return assign(self.config.experiments, user, time.time(), placement)

    def track(self, user: str | None, version: str, items: Sequence[str],
              arm: Assignment | None = None, placing: PlacementCall | None = None,
              marks: Sequence[str | None] | None = None) -> str | None:
        """The ``recommendation_id`` of a list being served (None with tracking off); a list
        of an experiment arm is counted for it and its id carries the arm's label, as does a
        list of a placement (whose impression is remembered for rotation)."""
        self.placer.served(placing, user, items, marks)
        if self.online is None:
            return None
        return self.online.serve(user, version, items, time.time(),
                                 None if arm is None else arm.label,
                                 None if placing is None else placing.placement.name, marks)

    def online_families(self) -> list[Metric]:
        """The online evaluation's Prometheus families for this replica (all its workers)."""
        if self.online is None:
            return []
        now = time.time()
        state = onlinestats.replica_state(self.online, now)
        return [*onlinestats.families(state),
                *onlineexperiments.families(self.config.experiments, state, now),
                *onlineplacements.families(self.placer.book.placements, state,
                                           self.model_items())]

    def model_items(self) -> int | None:
        """Items in the served model (None before the first snapshot): coverage's base."""
        s = self.holder.current()
        return None if s is None else len(s.snapshot.model.item_ids)

    def erase(self, erasure: Erasure) -> None:
        """Apply an erasure in this worker at once (the others read it from the topic)."""
        self.live.forget([erasure])
        self._forget_online([erasure])

    def _forget_online(self, erasures: Sequence[Erasure]) -> None:
        """The online tracker forgets erased users (their last lists judge nothing more); the
        placements' impressions forget erased users and items."""
        items = {e.keyed(self.hasher).digest for e in erasures if e.kind == "item"}
        if items:  # exploration's counts and the impressions that listed them
            self.placer.impressions.forget_items(
                lambda item: self.hasher.digest("item", item) in items)
        digests = {e.keyed(self.hasher).digest for e in erasures if e.kind == "user"}
        if not digests:
            return
        if self.online is not None:
            self.online.forget(lambda user: self.hasher.digest("user", user) in digests)
        self.placer.impressions.forget(lambda user: self.hasher.digest("user", user) in digests)

    def _advance(self, served: Served) -> None:
        self.fresh.advance(served.snapshot.offsets, served.snapshot.event_ids)

    def start(self) -> None:
        """Load the newest snapshot, then start the background threads (once; after the fork).

        The first load is synchronous: gunicorn runs this before the worker accepts, so a new
        or respawned worker never answers 503 "no model" while its siblings serve one."""
        if self.started:
            return
        self.started = True
        try:
            self.hasher.key()  # the store's key, read (or created) once; retried on first use
        except KeyUnavailable as e:
            log.warning("%s; erasures wait for it", e)
        try:
            self.reloader.check_once()
        except Exception:  # the poll loop retries; a worker must start even if the store is down
            log.exception("first snapshot load failed; the poll loop will retry")
        self.reloader.start()
        if self.foldin is not None:
            self.foldin.start()
        if self.items_follower is not None:
            self.items_follower.start()
        self.placer.start()
        if self.publisher is not None:
            self.publisher.start()
        if self.archive is not None:
            self.archive.start()

    def stop(self) -> None:
        self.reloader.stop()
        if self.publisher is not None:
            self.publisher.stop()
        if self.archive is not None:
            self.archive.stop()
        if self.foldin is not None:
            self.foldin.stop()
        if self.items_follower is not None:
            self.items_follower.stop()
        self.placer.stop()
        if self.forwarder is not None:
            self.forwarder.close()
        if self.sink is not None:
            self.sink.close()
