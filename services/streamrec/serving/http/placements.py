"""Placements (``core/placements/``, docs/placements.md): ``GET /placements`` and
``GET /placements/{name}``, and the ``placement=`` parameter every list route takes.

Both routes answer from this worker's watched set and this replica's online counts (as
``/stats`` does): the placements as configured, where they came from (a watched file and the
last refused change, if any), failed expression evaluations, and per placement its CTR, hit
rate, coverage and the shares of promoted and exploration slots.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, Response, jsonify, request

from streamrec.core.experiments.assign import Assignment
from streamrec.core.placements.spec import to_json

from ..online import placements as onlineplacements
from ..online import stats as onlinestats
from ..placements.placer import PlacementCall, UnknownPlacement
from .context import service
from .errors import ApiError, check_keys

bp = Blueprint("placements", __name__)
log = logging.getLogger(__name__)

#: The query parameter of every list route.
PLACEMENT_KEY = "placement"


def query_placement(raw: str | None = None, given: bool = False) -> PlacementCall | None:
    """The request's placement (``placement=`` in the query, or ``raw`` from a body when
    ``given``); a 400 naming an unknown one."""
    name = raw if given else request.args.get(PLACEMENT_KEY)
    if name is None:
        return None
    try:
        return service().placer.call(name)
    except UnknownPlacement as e:
        known = ", ".join(e.known) or "none are configured"
        raise ApiError(400, "unknown_placement",
                       f"placement {e.name!r:.80} is not configured (known: {known})") from None


def arm_and_placement(user: str, asked: PlacementCall | None
                      ) -> tuple[Assignment | None, PlacementCall | None]:
    """The user's experiment arm for a request asking ``asked``, and the placement that
    serves it: the arm's own when it has one (a placement arm, ``core/experiments/spec.py``),
    else the one asked. An arm naming a placement the watched file no longer has is logged
    and the asked placement serves (a configuration slip is not the client's 400)."""
    svc = service()
    name = None if asked is None else asked.placement.name
    arm = svc.assignment(user, name)
    if arm is None or arm.arm.placement is None or (
            arm.experiment.placement is None and asked is not None):
        return arm, asked
    try:
        return arm, svc.placer.call(arm.arm.placement)
    except UnknownPlacement:
        log.warning("experiment %s arm %s names placement %r, which is not configured; the "
                    "asked placement serves", arm.experiment.name, arm.arm.name,
                    arm.arm.placement)
        return arm, asked


def _state() -> dict[str, Any]:
    svc = service()
    return onlinestats.replica_state(svc.online, time.time()) if svc.online is not None else {}


@bp.get("/placements")
def placements() -> Response:
    check_keys(request.args, ())
    svc = service()
    online = onlineplacements.results(svc.placer.book.placements, _state(), svc.model_items())
    return jsonify(**svc.placer.describe(), tracking=svc.online is not None, online=online)


@bp.get("/placements/<name>")
def placement(name: str) -> Response:
    check_keys(request.args, ())
    svc = service()
    p = svc.placer.book.named(name)
    if p is None:
        raise ApiError(404, "unknown_placement", f"no placement named {name!r:.80} is "
                                                 "configured")
    online = onlineplacements.results([p], _state(), svc.model_items())[p.name]
    return jsonify(placement=to_json((p,))[0], version=svc.placer.book.version,
                   tracking=svc.online is not None, online=online)
