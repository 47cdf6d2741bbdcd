"""The serving app factory: `create_app(config)` builds a worker's `Service` and its HTTP app.

Nothing starts at import or in the factory: background threads start in `Service.start`
(``service.py``), which gunicorn calls in each worker after the fork.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from streamrec.adapters.source import EventSink, EventSource
from streamrec.adapters.stores import SnapshotStore, open_store
from streamrec.config import Config

from .feeds.foldin import SourceFactory
from .groups.prefix import GroupPrefix
from .http import (
    browse,
    erase,
    experiments,
    groups,
    handlers,
    interactions,
    items,
    online,
    ops,
    placements,
    recommend,
)
from .http.context import KEY
from .http.pathids import IdConverter, RawPathIds
from .http.writes import MAX_BODY
from .service import Service


def create_app(config: Config, *, store: SnapshotStore | None = None,
               source_factory: SourceFactory | None = None, sink: EventSink | None = None,
               notify_factory: Callable[[], EventSource] | None = None,
               items_factory: Callable[[], EventSource] | None = None,
               impressions_factory: Callable[[], EventSource] | None = None) -> Flask:
    """Build the Flask app; ``app.extensions["streamrec"]`` is its `Service`.

    ``items_factory`` opens the items topic (``items.py``); without it the catalogue is the
    served snapshot's. ``impressions_factory`` opens the impressions topic
    (``placements/feed.py``); without it a worker's rotation sees only its own lists."""
    app = Flask("streamrec.serving")
    # One byte more than accepted: writes.read_body tells a body past the limit from one that
    # ends on it, chunked or not; werkzeug refuses a larger Content-Length by itself.
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY + 1
    app.url_map.converters["id"] = IdConverter  # <id:user>: any id, "/" included (pathids.py)
    app.wsgi_app = RawPathIds(app.wsgi_app)  # type: ignore[method-assign]
    # Outermost: a group's Ingress path (/groups/<g>/...) is answered as its route.
    app.wsgi_app = GroupPrefix(app.wsgi_app)  # type: ignore[method-assign]
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if store is None:
        store = open_store(config.store, config.s3)
    service = Service(config, store, source_factory, sink, notify_factory, items_factory,
                      impressions_factory)
    app.extensions[KEY] = service
    # handlers first: its hooks (timer, checks) run before the groups' forwarding hook.
    for blueprint in (handlers.bp, groups.bp, recommend.bp, browse.bp, ops.bp, interactions.bp,
                      online.bp, items.bp, erase.bp, experiments.bp, placements.bp):
        app.register_blueprint(blueprint)
    return app
