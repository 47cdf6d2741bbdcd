"""`GET /stats` (online evaluation and the retrain history) and the console at `/console/`.

The console is static: ``serving/console/`` holds its HTML, CSS, script and the vendored
Chart.js (see ``console/VENDOR.md``), served as files; the page calls the JSON API with
relative URLs, so it works behind an Ingress under any path prefix.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from flask import Flask, Response, jsonify, redirect, request, send_from_directory
from werkzeug.wrappers import Response as BaseResponse

from streamrec.core.events import Event

from . import onlinestats
from .errors import check_keys
from .online import OnlineTracker
from .reloader import Served

if TYPE_CHECKING:
    from .app import Service

#: The console runs only its own files and talks only to this API (ids from users of the API
#: are shown in it); Chart.js sets inline styles on its canvases.
CSP = ("default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")

#: Snapshots remembered for the retrain history (this worker's loads).
HISTORY = 50


class ModelHistory:
    """The last `HISTORY` snapshots this worker loaded: fit time, window size, sizes."""

    def __init__(self, size: int = HISTORY) -> None:
        self._items: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, served: Served) -> None:
        m = served.snapshot.manifest
        with self._lock:
            # As in /model and the manifest: created_at RFC 3339, created_at_unix seconds.
            self._items.append({"version": m.version, "created_at": m.created_at,
                                "created_at_unix": m.created_at_unix,
                                "loaded_at": served.loaded_at, "fit": m.fit,
                                "window": m.window, "sizes": m.sizes})

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._items)


def observe_batch(tracker: OnlineTracker | None) -> (
        Callable[[Sequence[Event], Sequence[float | None]], None] | None):
    """The fold-in observer feeding ``tracker`` (None when tracking is off)."""
    if tracker is None:
        return None

    def observe(events: Sequence[Event], stamps: Sequence[float | None]) -> None:
        now = time.time()
        for e, ts in zip(events, stamps, strict=True):
            tracker.observe(e.user, e.item, e.weight, e.recommendation_id,
                            now if ts is None else ts, now)

    return observe


def register_online_routes(app: Flask, svc: Service) -> None:
    console = resources.files("streamrec.serving").joinpath("console")

    @app.get("/stats")
    def stats() -> Response:
        check_keys(request.args, ())
        c = svc.config
        online = None
        if svc.online is not None:
            state = onlinestats.replica_state(svc.online, time.time())
            online = onlinestats.stats(state, c.online_horizon, c.online_positive)
        return jsonify(tracking=svc.online is not None, online=online,
                       models=svc.models.list())

    @app.get("/console")
    def console_redirect() -> BaseResponse:
        # Relative, so that a path prefix in front of the app (an Ingress) is kept.
        response = redirect("console/", 308)
        response.autocorrect_location_header = False
        return response

    @app.get("/console/")
    @app.get("/console/<path:name>")
    def console_file(name: str = "index.html") -> Response:
        response = send_from_directory(str(console), name, max_age=60)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = CSP
        return response
