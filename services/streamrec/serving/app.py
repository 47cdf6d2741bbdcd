"""The serving app factory: `create_app(config)` builds a worker's `Service` and its HTTP app.

Nothing starts at import or in the factory: background threads start in `Service.start`
(``service.py``), which gunicorn calls in each worker after the fork.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from streamrec.adapters.source import EventSink, EventSource
from streamrec.adapters.stores import SnapshotStore, open_store
from streamrec.config import Config

from . import metrics
from .eraseroutes import register_erase_routes
from .errors import ApiError
from .feeds.foldin import SourceFactory
from .itemroutes import register_item_routes
from .onlineroutes import register_online_routes
from .routes import register_routes
from .service import Service

log = logging.getLogger(__name__)

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
        code = (e.name or "error").lower().replace(" ", "_")
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

    @app.after_request
    def _count(response: Response) -> Response:
        # The URL rule, never the raw path: one series per route, whatever the ids.
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        started: Any = g.get("started")
        seconds = None if started is None else time.perf_counter() - started
        metrics.observe(route, request.method, response.status_code, seconds)
        return response

    return app
