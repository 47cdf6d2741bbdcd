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
from .http import browse, erase, handlers, interactions, items, online, ops, recommend
from .http.context import KEY
from .service import Service

#: Largest accepted request body (POST /interactions, POST /recommendations).
MAX_BODY = 1 << 20


def create_app(config: Config, *, store: SnapshotStore | None = None,
               source_factory: SourceFactory | None = None, sink: EventSink | None = None,
               notify_factory: Callable[[], EventSource] | None = None,
               items_factory: Callable[[], EventSource] | None = None) -> Flask:
    """Build the Flask app; ``app.extensions["streamrec"]`` is its `Service`.

    ``items_factory`` opens the items topic (``items.py``); without it the catalogue is the
    served snapshot's."""
    app = Flask("streamrec.serving")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    app.json.sort_keys = False  # type: ignore[attr-defined]
    if store is None:
        store = open_store(config.store, s3_endpoint=config.s3_endpoint)
    service = Service(config, store, source_factory, sink, notify_factory, items_factory)
    app.extensions[KEY] = service
    for blueprint in (handlers.bp, recommend.bp, browse.bp, ops.bp, interactions.bp, online.bp,
                      items.bp, erase.bp):
        app.register_blueprint(blueprint)
    return app
