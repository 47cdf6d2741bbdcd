"""App-wide answers to errors, and the per-route request metrics.

Every error is ``{"error": code, "message": text}``: an `ApiError` as raised, the live model's
`NoModel` as a 503 and its unknown users and items as 404s, werkzeug's HTTP errors (404, 405,
413...) with their headers, and anything else as a 500 that is logged (a bug, never bad input).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from streamrec.core.scoring.model import UnknownItem, UnknownUser

from .. import metrics
from ..live.answers import NoModel
from .context import service
from .errors import ApiError
from .pathids import check_query
from .writes import check_write, cors

log = logging.getLogger(__name__)

bp = Blueprint("handlers", __name__)

#: ``/users/<id:user>/items`` is labelled ``/users/<user>/items`` in metrics (the converter is
#: an implementation detail; dashboards keep their series).
ROUTE_LABEL = re.compile(r"<\w+:(\w+)>")


@bp.app_errorhandler(ApiError)
def api_error(e: ApiError) -> tuple[Response, int]:
    response = jsonify(error=e.code, message=e.message)
    response.headers.update(e.headers)
    return response, e.status


@bp.app_errorhandler(NoModel)
def no_model(e: NoModel) -> tuple[Response, int]:
    return jsonify(error="no_model", message=str(e)), 503


@bp.app_errorhandler(UnknownItem)
def unknown_item(e: UnknownItem) -> tuple[Response, int]:
    return jsonify(error="unknown_item", message=str(e)), 404


@bp.app_errorhandler(UnknownUser)
def unknown_user(e: UnknownUser) -> tuple[Response, int]:
    return jsonify(error="unknown_user", message=str(e)), 404


@bp.app_errorhandler(HTTPException)
def http_error(e: HTTPException) -> tuple[Response, int]:
    code = getattr(e, "api_code", None) or (e.name or "error").lower().replace(" ", "_")
    response = jsonify(error=code, message=e.description or e.name)
    for name, value in e.get_headers():  # e.g. the 405's Allow (RFC 9110)
        if name.lower() != "content-type":
            response.headers[name] = value
    return response, e.code or 500


@bp.app_errorhandler(Exception)
def bug(e: Exception) -> tuple[Response, int]:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return jsonify(error="internal", message="internal error (a bug; it was logged)"), 500


@bp.before_app_request
def start_timer() -> None:
    g.started = time.perf_counter()


@bp.before_app_request
def query_is_utf8() -> None:
    check_query(request.query_string)


@bp.before_app_request
def guard_writes() -> None:
    # Unmatched requests get their 404/405 first (request.routing_exception).
    if request.url_rule is not None:
        check_write(request, service().config.allowed_origins)


@bp.after_app_request
def add_cors(response: Response) -> Response:
    cors(request, response, service().config.allowed_origins)
    return response


@bp.after_app_request
def count(response: Response) -> Response:
    # The URL rule, never the raw path: one series per route, whatever the ids.
    route = ROUTE_LABEL.sub(r"<\1>", request.url_rule.rule) \
        if request.url_rule is not None else "unmatched"
    started: Any = g.get("started")
    seconds = None if started is None else time.perf_counter() - started
    metrics.observe(route, request.method, response.status_code, seconds)
    return response
