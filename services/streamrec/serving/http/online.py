"""``GET /stats``: online evaluation (CTR, hit rate, rank per model version, ``online/``), the
configured experiments' per-arm results (``online/experiments.py``) and the retrain history
this worker saw."""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from ..online import experiments as onlineexperiments
from ..online import placements as onlineplacements
from ..online import stats as onlinestats
from .context import service
from .errors import check_keys

bp = Blueprint("online", __name__)


@bp.get("/stats")
def stats() -> Response:
    check_keys(request.args, ())
    svc = service()
    c = svc.config
    online, experiments, placements = None, [], {}
    if svc.online is not None:
        now = time.time()
        state = onlinestats.replica_state(svc.online, now)
        online = onlinestats.stats(state, c.online_horizon, c.online_positive)
        experiments = onlineexperiments.results(c.experiments, state, now)
        placements = onlineplacements.results(svc.placer.book.placements, state,
                                              svc.model_items())
    return jsonify(tracking=svc.online is not None, online=online, experiments=experiments,
                   placements=placements, models=svc.models.list())
