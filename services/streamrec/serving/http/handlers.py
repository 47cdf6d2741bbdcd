"""App-wide answers to errors, and the per-route request metrics.

Every error is ``{"error": code, "message": text}``: an `ApiError` as raised, the live model's
`NoModel` as a 503 and its unknown users and items as 404s, werkzeug's HTTP errors (404, 405,
413...) with their headers, and anything else as a 500 that is logged (a bug, never bad input).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from werkzeug.exceptions import HTTPException

from streamrec.core.model import UnknownItem, UnknownUser

from .. import metrics
from ..live.answers import NoModel
from .errors import ApiError

log = logging.getLogger(__name__)

bp = Blueprint("handlers", __name__)


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
    code = (e.name or "error").lower().replace(" ", "_")
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


@bp.after_app_request
def count(response: Response) -> Response:
    # The URL rule, never the raw path: one series per route, whatever the ids.
    route = request.url_rule.rule if request.url_rule is not None else "unmatched"
    started: Any = g.get("started")
    seconds = None if started is None else time.perf_counter() - started
    metrics.observe(route, request.method, response.status_code, seconds)
    return response
