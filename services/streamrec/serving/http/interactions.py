"""``POST /interactions``: ingest one event or a list, produced to the interactions topic.

Authenticated by the ingest token when one is set. The events are validated here exactly as
the log's readers will (``bodies.py``) and answered ``202`` once the log has them all.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from .. import metrics
from .bodies import parse_interactions
from .context import service
from .errors import ApiError, check_keys
from .guards import json_body, produce_acknowledged, require_bearer, require_sink

bp = Blueprint("interactions", __name__)


@bp.post("/interactions")
def interactions() -> tuple[Response, int]:
    config = service().config
    require_bearer(config.ingest_token)
    sink = require_sink()
    try:
        check_keys(request.args, ())
        events = parse_interactions(json_body(), time.time(), config.feedback)
    except ApiError:
        metrics.INGESTED.labels("invalid").inc()
        raise
    # As posted: consumers apply their own feedback table to a JSON event's type.
    try:
        produce_acknowledged(sink, config.topic, [(raw, e.user) for e, raw in events], "events")
    except ApiError:
        metrics.INGESTED.labels("unacknowledged").inc(len(events))
        raise
    metrics.INGESTED.labels("produced").inc(len(events))
    return jsonify(accepted=len(events), topic=config.topic), 202
