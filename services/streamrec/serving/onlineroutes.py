"""`GET /stats` (online evaluation and the retrain history) and the console at `/console/`.

The console is static: ``serving/console/`` holds its HTML, CSS, script and the vendored
Chart.js (see ``console/VENDOR.md``), served as files; the page calls the JSON API with
relative URLs, so it works behind an Ingress under any path prefix.
"""

from __future__ import annotations

import time
from importlib import resources
from typing import TYPE_CHECKING

from flask import Flask, Response, jsonify, redirect, request, send_from_directory
from werkzeug.wrappers import Response as BaseResponse

from .errors import check_keys
from .online import stats as onlinestats

if TYPE_CHECKING:
    from .service import Service

#: The console runs only its own files and talks only to this API (ids from users of the API
#: are shown in it); Chart.js sets inline styles on its canvases.
CSP = ("default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")

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
