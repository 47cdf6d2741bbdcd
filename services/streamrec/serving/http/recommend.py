"""Personal lists: ``GET /users/{user}/recommendations``, ``GET /recommendations?user=``, the
original service's ``GET /?userId=``, ``POST /recommendations`` (an anonymous session) and
``GET /recommendations/batch``. Each list carries a ``recommendation_id`` (online evaluation).

A user in a running experiment (``core/experiments/``) is scored by their arm; the answer
names it (``experiment: {"name", "arm"}``, null otherwise) and its id carries it. A list asked
with ``placement=`` (``core/placements/``) is made by that placement's rules; the answer names
it (``placement``, null otherwise) and marks promoted and exploration items."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from flask import Blueprint, Response, jsonify, request

from streamrec.core.experiments.assign import Assignment

from ..groups.forward import FORWARDED_HEADER
from ..live.answers import Listed, ListQuery
from ..placements.placer import PlacementCall
from .bodies import parse_session
from .context import live, service
from .errors import ApiError, check_keys, parse_list, parse_n, require
from .guards import json_body, path_id
from .params import REC_KEYS, item_filter, list_query, query_fields, scored, with_fields
from .placements import arm_and_placement, query_placement

bp = Blueprint("recommend", __name__)

MAX_BATCH_USERS = 1000


def _experiment(arm: Assignment | None) -> dict[str, str] | None:
    return None if arm is None else {"name": arm.experiment.name, "arm": arm.arm.name}


def _answer(tracked: str | None, a: Listed, fields: tuple[str, ...],
            arm: Assignment | None = None, placing: PlacementCall | None = None,
            **head: object) -> Response:
    """A list as the API answers it, after ``head`` (e.g. the user); ``tracked`` is the user
    whose last served list it becomes (None: anonymous); ``arm`` the experiment arm that
    scored it; ``placing`` the placement that chose it."""
    rid = service().track(tracked, a.version, a.recs.items, arm, placing, a.recs.marks)
    return jsonify(**head, items=with_fields(scored(a.recs.items, a.recs.scores, a.recs.marks),
                                             fields),
                   model_version=a.version, fallback=a.recs.fallback,
                   fresh_events=a.fresh_events, experiment=_experiment(arm),
                   placement=None if placing is None else placing.placement.name,
                   recommendation_id=rid)


def placed_query(q: ListQuery, placing: PlacementCall | None) -> ListQuery:
    """``q`` with the placement's ``excludeSeen`` when it sets one and the request did not."""
    seen = None if placing is None else placing.placement.exclude_seen
    if seen is None or "exclude_seen" in request.args:
        return q
    return replace(q, exclude_seen=seen)


def _for_user(user: str, allowed: tuple[str, ...]) -> Response:
    check_keys(request.args, allowed)
    user = path_id(user, "user")
    q, fields = list_query(), query_fields()
    arm, placing = arm_and_placement(user, query_placement())
    listed = live().recommend(user, placed_query(q, placing), None if arm is None else arm.arm,
                              placing)
    return _answer(user, listed, fields, arm, placing, user=user)


@bp.get("/users/<id:user>/recommendations")
def user_recommendations(user: str) -> Response:
    return _for_user(user, REC_KEYS)


@bp.get("/recommendations")
def query_recommendations() -> Response:
    return _for_user(require(request.args.get("user"), "user"), ("user", *REC_KEYS))


@bp.get("/")
def compat() -> Response:
    """The original service: ``?userId=&recommendationsNumber=``."""
    check_keys(request.args, ("userId", "recommendationsNumber"))
    user = path_id(require(request.args.get("userId"), "userId"), "user")
    n = parse_n(request.args.get("recommendationsNumber"), "recommendationsNumber")
    arm, placing = arm_and_placement(user, None)
    a = live().recommend(user, placed_query(ListQuery(n=n), placing),
                         None if arm is None else arm.arm, placing)
    response = jsonify(user_id=user, recommended_items=a.recs.items)
    rid = service().track(user, a.version, a.recs.items, arm, placing, a.recs.marks)
    if rid is not None:  # a header: the original service's body keeps its two keys
        response.headers["X-Recommendation-Id"] = rid
    return response


@bp.post("/recommendations")
def session_recommendations() -> Response:
    check_keys(request.args, ())  # n and the rest go in the body; a query is a mistake
    kw = parse_session(json_body())
    q = ListQuery(n=kw["n"], exclude_seen=kw["exclude_seen"], items=kw["candidates"],
                  exclude=kw["exclude"], filter=item_filter(kw["category"], kw["category_mode"]))
    placing = query_placement(kw["placement"], given=True)
    return _answer(None, live().recommend_session(kw["items"], q, placing), kw["fields"],
                   placing=placing)


@bp.get("/recommendations/batch")
def batch_recommendations() -> Response:
    check_keys(request.args, ("users", *REC_KEYS))
    users = [path_id(u, "user") for u in parse_list(request.args.get("users"), "users") or []]
    if not users or len(users) > MAX_BATCH_USERS:
        raise ApiError(400, "bad_parameter", f"users must list 1..{MAX_BATCH_USERS} ids")
    q, fields, asked = list_query(), query_fields(), query_placement()
    svc = service()
    order = list(dict.fromkeys(users))
    remote: dict[str, Any] = {}
    remote_version: str | None = None
    if svc.forwarder is not None and FORWARDED_HEADER not in request.headers:
        users, remote, remote_version = _owned_and_forwarded(order)
        if not users:
            return jsonify(results={u: remote[u] for u in order if u in remote},
                           model_version=remote_version,
                           placement=None if asked is None else asked.placement.name)
    chosen = {u: arm_and_placement(u, asked) for u in dict.fromkeys(users)}
    arms = {u: a for u, (a, _) in chosen.items() if a is not None}
    placings = {u: p for u, (_, p) in chosen.items() if p is not None}
    if not placings:
        version, lists = live().recommend_batch(users, q, {u: a.arm for u, a in arms.items()})
    else:  # a placement ranks each list itself: one user at a time
        lists = {u: live().recommend(u, placed_query(q, placings.get(u)),
                                     None if u not in arms else arms[u].arm, placings.get(u))
                 for u in chosen}
        version = next(iter(lists.values())).version
    results = {u: {"items": with_fields(scored(a.recs.items, a.recs.scores, a.recs.marks),
                                        fields),
                   "fallback": a.recs.fallback, "fresh_events": a.fresh_events,
                   "experiment": _experiment(arms.get(u)),
                   "placement": None if u not in placings else placings[u].placement.name,
                   "recommendation_id": svc.track(u, a.version, a.recs.items, arms.get(u),
                                                  placings.get(u), a.recs.marks)}
               for u, a in lists.items()}
    if remote:  # the answer keeps the asked order; model_version is this group's
        results = {u: results[u] if u in results else remote[u] for u in order
                   if u in results or u in remote}
    return jsonify(results=results, model_version=version,
                   placement=None if asked is None else asked.placement.name)


def _owned_and_forwarded(users: list[str]) -> tuple[list[str], dict[str, Any], str | None]:
    """Serving groups: this group's ``users``, the other groups' results (their lists asked
    of their owners at once, ``groups/forward.py``) and the first of their model versions."""
    svc = service()
    assert svc.forwarder is not None
    by_group = svc.groups.split(users)
    mine = by_group.pop(svc.groups.group, [])
    if not by_group:
        return mine, {}, None
    query = {k: v for k, v in request.args.items() if k != "users"}
    answers = svc.forwarder.batch(request.script_root + request.path, query, by_group,
                                  request.headers.items(), svc.groups.group)
    remote: dict[str, Any] = {}
    for answer in answers.values():
        remote.update(answer.get("results") or {})
    return mine, remote, next((a.get("model_version") for a in answers.values()), None)
