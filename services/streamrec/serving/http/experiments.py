"""Experiments (``core/experiments/``): ``GET /experiments``, ``GET /experiments/{name}`` and
``GET /experiments/{name}/users/{user}`` (the user's arm).

``/experiments`` answers from this replica's workers (as ``/stats`` does);
``/experiments/{name}`` from the parts every worker of every replica keeps in the snapshot
store (``online/archive.py``), so it is the cluster's result, and it still answers after the
experiment ended or left the configuration.
"""

from __future__ import annotations

import re
import time

from flask import Blueprint, Response, jsonify, request

from streamrec.adapters.storebase import StoreError
from streamrec.core.experiments.assign import arm_of, assign
from streamrec.core.experiments.results import summary
from streamrec.core.experiments.spec import NAME_PATTERN, Experiment

from ..online import experiments as onlineexperiments
from ..online import stats as onlinestats
from .context import service
from .errors import ApiError, check_keys
from .guards import path_id

bp = Blueprint("experiments", __name__)

_NAME = re.compile(NAME_PATTERN)


def _configured(name: str) -> Experiment | None:
    return next((e for e in service().config.experiments if e.name == name), None)


def _unknown(name: str) -> ApiError:
    return ApiError(404, "unknown_experiment", f"no experiment named {name!r} is configured "
                                               "or has results in the store")


@bp.get("/experiments")
def experiments() -> Response:
    check_keys(request.args, ())
    svc, now = service(), time.time()
    state = onlinestats.replica_state(svc.online, now) if svc.online is not None else {}
    archived: list[str] = []
    if svc.archive is not None:
        try:
            archived = svc.archive.store.experiment_names()
        except StoreError:
            archived = []
    return jsonify(tracking=svc.online is not None,
                   experiments=onlineexperiments.results(svc.config.experiments, state, now),
                   archived=archived)


@bp.get("/experiments/<name>")
def experiment(name: str) -> Response:
    check_keys(request.args, ())
    if not _NAME.match(name):
        # No experiment can have this name (spec.NAME_PATTERN); the store is not asked, so a
        # name that is no safe key (``%C2%84``, ``..``) is a 404 like any other unknown one.
        raise _unknown(name)
    svc = service()
    if svc.archive is None:
        spec = _configured(name)
        if spec is None:
            raise _unknown(name)
        return jsonify(summary(spec, {}, time.time()) | {"scope": "none (tracking is off)"})
    try:
        found = svc.archive.stored(name)
    except StoreError as e:
        raise ApiError(503, "store_unavailable", f"experiment results unreadable: {e}") from None
    if found is None:
        raise _unknown(name)
    spec, counts = found
    return jsonify(summary(spec, counts, time.time()) | {"scope": "cluster (the store)"})


@bp.get("/experiments/<name>/users/<id:user>")
def user_arm(name: str, user: str) -> Response:
    check_keys(request.args, ())
    spec = _configured(name)
    if spec is None:
        raise _unknown(name)
    user, now = path_id(user, "user"), time.time()
    drawn = arm_of(spec, user)
    served = assign(service().config.experiments, user, now)
    reason: str | None = None
    if drawn is None:
        reason = "outside the experiment's traffic share"
    elif not spec.running(now):
        reason = "the experiment is not running"
    elif served is not None and served.experiment.name != name:
        reason = f"taken by experiment {served.experiment.name!r}, listed before it"
    # arm: the arm the user's lists are scored by now; drawn_arm: the hash's arm, whatever the
    # time (what the user will get while the experiment runs, unless an earlier one takes them).
    return jsonify(experiment=name, user=user, state=spec.state(now),
                   arm=drawn.name if drawn is not None and reason is None else None,
                   drawn_arm=None if drawn is None else drawn.name, reason=reason)
