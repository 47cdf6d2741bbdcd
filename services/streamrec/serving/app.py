"""The serving app factory: `create_app(config)` wires the model holder, reloader and fold-in.

Nothing starts at import or in the factory: background threads (snapshot polling, notify
listener, fold-in consumer) start in `Service.start`, which gunicorn calls in each worker after
the fork (``post_worker_init``) and the tests call when they want threads. Tests may instead
drive `service.reloader.check_once()` and `service.foldin.step()` by hand.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import Flask, Response, g, jsonify, request
from prometheus_client.metrics_core import Metric
from werkzeug.exceptions import HTTPException

from streamrec.adapters.erasurekeys import erasure_hasher
from streamrec.adapters.source import EventSink, EventSource
from streamrec.adapters.storebase import StoreError, TrainingReports
from streamrec.adapters.stores import SnapshotStore, open_store
from streamrec.config import Config
from streamrec.core.catalog.filters import CatalogueIndex
from streamrec.core.catalog.records import Catalogue
from streamrec.core.events.erasure import Erasure, Tombstones
from streamrec.core.events.erasurekey import KeyUnavailable
from streamrec.core.snapshot.trainingstatus import TrainingStatus

from . import metrics, onlinestats
from .eraseroutes import register_erase_routes
from .errors import ApiError
from .foldin import FoldIn, SourceFactory
from .forgotten import Forgotten
from .fresh import FreshEvents
from .guards import MAX_BODY, check_write, cors
from .itemroutes import register_item_routes
from .items import ItemsFollower
from .online import OnlineTracker
from .onlineroutes import ModelHistory, observe_batch, register_online_routes
from .onlinestats import Publisher, state_dir
from .pathids import IdConverter, RawPathIds, check_query
from .reloader import Holder, Reloader, Served
from .routes import register_routes

log = logging.getLogger(__name__)

#: ``/users/<id:user>/items`` is labelled ``/users/<user>/items`` in metrics (the converter is
#: an implementation detail; dashboards keep their series).
ROUTE_LABEL = re.compile(r"<\w+:(\w+)>")

class Service:
    """Everything a worker serves from: the holder, fresh events, reloader, fold-in, sink."""

    def __init__(self, config: Config, store: SnapshotStore,
                 source_factory: SourceFactory | None, sink: EventSink | None,
                 notify_factory: Callable[[], EventSource] | None = None,
                 items_factory: Callable[[], EventSource] | None = None) -> None:
        self.config, self.store, self.sink = config, store, sink
        self.holder = Holder()
        self.fresh = FreshEvents()
        #: The item catalogue (``core/catalog/records.py``) and its view for request filters.
        self.catalogue = Catalogue()
        self.items = CatalogueIndex(self.catalogue)
        #: Erased users and items (serving/forgotten.py): snapshot tombstones + live erasures.
        #: An erased item's catalogue record goes too, and later records of it are dropped.
        #: Tombstones and erasure records hold keyed hashes (core/events/erasurekey.py), never ids.
        self.hasher = erasure_hasher(config.erasure_key, store)
        self.forgotten = Forgotten(self.hasher, on_item=self.catalogue.remove,
                                   known_items=self._known_items)
        self.holder.before_swap(self.forgotten.before_swap)
        self.items_follower = ItemsFollower(items_factory, self.catalogue,
                                            erased=self.forgotten.item_erased) \
            if items_factory is not None else None
        cache = Path(config.cache_dir) if config.cache_dir else Path(
            tempfile.mkdtemp(prefix="streamrec-cache-"))
        self.reloader = Reloader(store, self.holder, cache, config.reload_interval,
                                 notify_factory)
        self.online = OnlineTracker(
            horizon=config.online_horizon, max_users=config.online_max_users,
            positive=config.online_positive, bucket_seconds=config.online_bucket_seconds,
            buckets=config.online_buckets) if config.online_tracking else None
        self.models = ModelHistory()
        self.holder.on_swap(self.models.add)
        self.foldin = FoldIn(source_factory, self.fresh, config.format, config.min_weight,
                             observe_batch(self.online), config.feedback, self.forgotten,
                             self._forget_online) \
            if source_factory is not None else None
        directory = state_dir()
        self.publisher = Publisher(self.online, directory) \
            if self.online is not None and directory is not None else None
        if self.items_follower is not None:
            self.holder.on_swap(self.items_follower.on_swap)
        else:  # no items topic: the snapshot's catalogue is all there is
            self.holder.on_swap(lambda served: self.catalogue.replace(served.snapshot.catalog))
        self.holder.on_swap(self.forgotten.scrub)  # after the catalogue is taken
        if self.foldin is not None:
            self.holder.on_swap(self.foldin.on_swap)
        else:  # no consumer: still keep the floor right for events nobody adds
            self.holder.on_swap(self._advance)
        self.started = False
        self._training: tuple[float, dict[str, Any]] | None = None

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

    def track(self, user: str | None, version: str, items: Sequence[str]) -> str | None:
        """The ``recommendation_id`` of a list being served (None with tracking off)."""
        if self.online is None:
            return None
        return self.online.serve(user, version, items, time.time())

    def online_families(self) -> list[Metric]:
        """The online evaluation's Prometheus families for this replica (all its workers)."""
        if self.online is None:
            return []
        return list(onlinestats.families(onlinestats.replica_state(self.online, time.time())))

    def erase(self, erasure: Erasure) -> None:
        """Apply an erasure in this worker at once (the others read it from the topic)."""
        if self.forgotten.add(erasure):
            metrics.ERASURES.labels(erasure.kind).inc()
            self.fresh.erase(Tombstones.of([erasure], self.hasher))
        self._forget_online([erasure])

    def _forget_online(self, erasures: Sequence[Erasure]) -> None:
        """The online tracker forgets erased users (their last lists judge nothing more)."""
        digests = {e.keyed(self.hasher).digest for e in erasures if e.kind == "user"}
        if self.online is not None and digests:
            self.online.forget(lambda user: self.hasher.digest("user", user) in digests)

    def _known_items(self) -> list[str]:
        """Item ids this worker could show: the served snapshot's and the catalogue's."""
        served = self.holder.current()
        ids = list(served.snapshot.model.item_ids) if served is not None else []
        return ids + [r.item for r in self.catalogue.records()]

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
        if self.publisher is not None:
            self.publisher.start()

    def stop(self) -> None:
        self.reloader.stop()
        if self.publisher is not None:
            self.publisher.stop()
        if self.foldin is not None:
            self.foldin.stop()
        if self.items_follower is not None:
            self.items_follower.stop()
        if self.sink is not None:
            self.sink.close()


def create_app(config: Config, *, store: SnapshotStore | None = None,
               source_factory: SourceFactory | None = None, sink: EventSink | None = None,
               notify_factory: Callable[[], EventSource] | None = None,
               items_factory: Callable[[], EventSource] | None = None) -> Flask:
    """Build the Flask app; ``app.extensions["streamrec"]`` is its `Service`.

    ``items_factory`` opens the items topic (``items.py``); without it the catalogue is the
    served snapshot's."""
    app = Flask("streamrec.serving")
    # One byte more than accepted: guards.read_body tells a body past the limit from one that
    # ends on it, chunked or not; werkzeug refuses a larger Content-Length by itself.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY + 1
    app.url_map.converters["id"] = IdConverter  # <id:user>: any id, "/" included (pathids.py)
    app.wsgi_app = RawPathIds(app.wsgi_app)  # type: ignore[method-assign]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if store is None:
        store = open_store(config.store, s3_endpoint=config.s3_endpoint)
    service = Service(config, store, source_factory, sink, notify_factory, items_factory)
    app.extensions["streamrec"] = service
    register_routes(app, service)
    register_online_routes(app, service)
    register_item_routes(app, service)
    register_erase_routes(app, service)

    @app.errorhandler(ApiError)
    def api_error(e: ApiError) -> tuple[Response, int]:
        response = jsonify(error=e.code, message=e.message)
        response.headers.update(e.headers)
        return response, e.status

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> tuple[Response, int]:
        code = getattr(e, "api_code", None) or (e.name or "error").lower().replace(" ", "_")
        response = jsonify(error=code, message=e.description or e.name)
        for name, value in e.get_headers():  # e.g. the 405's Allow (RFC 9110)
            if name.lower() != "content-type":
                response.headers[name] = value
        return response, e.code or 500

    @app.errorhandler(Exception)
    def bug(e: Exception) -> tuple[Response, int]:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return jsonify(error="internal", message="internal error (a bug; it was logged)"), 500

    @app.before_request
    def _start_timer() -> None:
        g.started = time.perf_counter()

    @app.before_request
    def _query_is_utf8() -> None:
        check_query(request.query_string)

    @app.before_request
    def _guard_writes() -> None:
        # Unmatched requests get their 404/405 first (request.routing_exception).
        if request.url_rule is not None:
            check_write(request, config.allowed_origins)

    @app.after_request
    def _cors(response: Response) -> Response:
        cors(request, response, config.allowed_origins)
        return response

    @app.after_request
    def _count(response: Response) -> Response:
        # The URL rule, never the raw path: one series per route, whatever the ids.
        route = ROUTE_LABEL.sub(r"<\1>", request.url_rule.rule) \
            if request.url_rule is not None else "unmatched"
        started: Any = g.get("started")
        seconds = None if started is None else time.perf_counter() - started
        metrics.observe(route, request.method, response.status_code, seconds)
        return response

    return app
