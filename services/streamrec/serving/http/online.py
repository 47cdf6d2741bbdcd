"""``GET /stats``: online evaluation (CTR, hit rate, rank per model version, ``online/``) and
the retrain history this worker saw."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from ..online import stats as onlinestats
from .context import service
from .errors import check_keys

bp = Blueprint("online", __name__)


@bp.get("/stats")
def stats() -> Response:
    check_keys(request.args, ())
    svc = service()
    c = svc.config
    online = None
    if svc.online is not None:
        state = onlinestats.replica_state(svc.online, time.time())
        online = onlinestats.stats(state, c.online_horizon, c.online_positive)
    return jsonify(tracking=svc.online is not None, online=online, models=svc.models.list())
