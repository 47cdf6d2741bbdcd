"""What operators and tools read: ``/healthz``, ``/readyz``, ``/model``, ``/metrics``,
``/openapi.json`` and the console at ``/console/``.

The console is static: ``serving/console/`` holds its HTML, CSS, script and the vendored
Chart.js (see ``console/VENDOR.md``), served as files; the page calls the JSON API with
relative URLs, so it works behind an Ingress under any path prefix.
"""

from __future__ import annotations

import functools
import json
import struct
import time
from importlib import resources
from typing import Any

from flask import Blueprint, Response, jsonify, redirect, send_from_directory
from werkzeug.wrappers import Response as BaseResponse

from streamrec import __version__

from .. import metrics
from .context import live, service
from .errors import ApiError

bp = Blueprint("ops", __name__)

METRICS_ATTEMPTS = 5
#: The console runs only its own files and talks only to this API (ids from users of the API
#: are shown in it); Chart.js sets inline styles on its canvases.
CSP = ("default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
       "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")
_PACKAGE = resources.files("streamrec.serving")


@functools.cache
def openapi() -> dict[str, Any]:
    """The OpenAPI document next to the package (read once)."""
    doc: dict[str, Any] = json.loads(_PACKAGE.joinpath("openapi.json").read_text())
    return doc


@bp.get("/healthz")
def healthz() -> Response:
    # The version tells which build a replica runs (a rollout half-way, a stale pod).
    return jsonify(status="ok", version=__version__)


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    s = live().current()
    if s is None:
        return jsonify(ready=False, model_version=None), 503
    return jsonify(ready=True, model_version=s.version), 200


@bp.get("/model")
def model_info() -> Response:
    s = live().served()
    m = s.snapshot.manifest
    svc = service()
    training = svc.training_report()
    last_error = None if not training.get("reason") else {
        "reason": training["reason"], "message": training.get("message"),
        "at": training.get("last_failure_at"), "failing": not training.get("ok", True)}
    return jsonify(version=m.version, created_at=m.created_at,
                   created_at_unix=m.created_at_unix,
                   age_seconds=max(0.0, time.time() - m.created_at_unix),
                   loaded_at=s.loaded_at, sizes=m.sizes, params=m.params, fit=m.fit,
                   last_fit_error=last_error, training=training,
                   offsets={str(p): o for p, o in m.offsets.items()},
                   fresh_events=len(svc.fresh), fresh_users=svc.fresh.users,
                   group=_group(len(s.snapshot.model.user_ids)))


def _group(mapped_users: int) -> dict[str, Any]:
    """This replica's serving group (docs/groups.md): its index, the count, the partitions it
    folds in (every partition with one group), the users its snapshot holds (its own of a
    snapshot split by partition) and the groups' URLs."""
    svc = service()
    layout = svc.groups
    return {"group": layout.group, "groups": layout.groups,
            "partitions": list(layout.owned) if layout.sharded else None,
            "mapped_users": mapped_users, "urls": list(svc.config.group_urls)}


@bp.get("/metrics")
def prometheus() -> Response:
    for attempt in range(METRICS_ATTEMPTS):
        try:
            body, ctype = metrics.exposition(extra=service().online_families())
            return Response(body, content_type=ctype)
        except struct.error:
            # prometheus-client race: another worker's metrics file was just created and
            # is still empty (it opens, then sizes it). It is complete a moment later.
            time.sleep(0.01 * (attempt + 1))
    raise ApiError(503, "metrics_busy", "a worker's metrics file is being created; retry")


@bp.get("/openapi.json")
def openapi_doc() -> Response:
    return jsonify(openapi())


@bp.get("/console")
def console_redirect() -> BaseResponse:
    # Relative, so that a path prefix in front of the app (an Ingress) is kept.
    response = redirect("console/", 308)
    response.autocorrect_location_header = False
    return response


@bp.get("/console/")
@bp.get("/console/<path:name>")
def console_file(name: str = "index.html") -> Response:
    response = send_from_directory(str(_PACKAGE.joinpath("console")), name, max_age=60)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = CSP
    return response
