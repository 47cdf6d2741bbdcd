"""The HTTP routes: thin handlers that parse, read the served model once, and answer JSON.

Each handler calls `served()` once and uses that snapshot to the end, so a hot reload never
changes the model in the middle of a request. Shapes follow ARCHITECTURE.md (Serving); the
OpenAPI document next to this file describes every route, and a test keeps the two in step.
"""

from __future__ import annotations

import hmac
import json
import struct
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from streamrec import __version__
from streamrec.adapters.source import EventSink, SourceUnavailable
from streamrec.core.codec import check_id
from streamrec.core.events import InvalidEvent
from streamrec.core.itemfilter import ItemFilter, parse_filter
from streamrec.core.model import Recommendations, UnknownItem, UnknownUser

from . import metrics
from .bodies import parse_interactions, parse_session, read_json
from .errors import ApiError, check_keys, parse_bool, parse_list, parse_n, require
from .live.holder import Served
from .live.model import ListQuery, NoModel

if TYPE_CHECKING:
    from .service import Service

#: The catalogue filter (``core/itemfilter.py``), taken by every list-returning route.
FILTER_KEYS = ("category", "category_mode")
REC_KEYS = ("n", "exclude_seen", "items", "exclude", *FILTER_KEYS)
MAX_BATCH_USERS = 1000
T = TypeVar("T")
METRICS_ATTEMPTS = 5


def _id(value: str, field: str) -> str:
    try:
        return check_id(value, field)
    except InvalidEvent as e:
        raise ApiError(400, "bad_id", e.detail) from None


def _items(recs: Recommendations) -> list[dict[str, Any]]:
    return [{"item": i, "score": s} for i, s in zip(recs.items, recs.scores, strict=True)]


def require_bearer(token: str | None) -> None:
    """401 unless the request carries ``Authorization: Bearer <token>`` (no token: open)."""
    if token is None:
        return
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    # The scheme is case-insensitive (RFC 9110); the token is compared in constant time.
    if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode("utf-8"), token.encode("utf-8")):
        raise ApiError(401, "unauthorized", "a valid 'Authorization: Bearer' is required",
                       {"WWW-Authenticate": 'Bearer realm="streamrec"'})


def refuse_other_routes_paths(app: Flask) -> None:
    """405 when a ``<path:>`` id (one that may hold "/", sent as %2F) would swallow a path that
    another route owns: ``DELETE /users/u1/recommendations`` names the GET route's methods in
    ``Allow``; it does not erase a user called "u1/recommendations"."""
    adapter = app.url_map.bind_to_environ(request.environ)
    valid: set[str] = set()
    for method in ("GET", "POST", "PUT", "DELETE"):
        try:
            rule, _ = adapter.match(method=method, return_rule=True)
        except HTTPException:
            continue
        if "<path:" not in rule.rule:
            valid.update(rule.methods or ())
    if valid:
        raise MethodNotAllowed(valid_methods=sorted(valid))


def produce_acknowledged(sink: EventSink, topic: str, messages: list[tuple[bytes, str]],
                         what: str) -> None:
    """Produce (value, key) ``messages`` to ``topic`` and wait until the log has them all;
    503 ``log_unavailable`` otherwise (the caller may retry: the answer was not 2xx)."""
    try:
        for value, key in messages:
            sink.produce(topic, value, key=key.encode("utf-8"))
        undelivered = sink.flush(5.0)
    except SourceUnavailable as e:
        raise ApiError(503, "log_unavailable", str(e)) from None
    if undelivered:
        raise ApiError(503, "log_unavailable", f"{undelivered} {what} not yet acknowledged")


def item_filter(categories: list[str] | None, mode: str | None) -> ItemFilter | None:
    """The request's catalogue filter; None when it asks for no category (a bad
    ``category_mode`` is a 400 all the same)."""
    try:
        flt = parse_filter(categories or [], mode)
    except ValueError as e:
        raise ApiError(400, "bad_parameter", str(e)) from None
    return flt if flt.categories else None


def register_routes(app: Flask, svc: Service) -> None:  # noqa: C901  (one closure per route)
    openapi = json.loads(resources.files("streamrec.serving").joinpath("openapi.json").read_text())

    live = svc.live

    def served() -> Served:
        try:
            return live.served()
        except NoModel as e:
            raise ApiError(503, "no_model", str(e)) from None

    def rec_args() -> ListQuery:
        a = request.args
        return ListQuery(n=parse_n(a.get("n")),
                         exclude_seen=parse_bool(a.get("exclude_seen"), "exclude_seen", True),
                         items=parse_list(a.get("items"), "items"),
                         exclude=parse_list(a.get("exclude"), "exclude"),
                         filter=query_filter())

    def query_filter() -> ItemFilter | None:
        return item_filter(parse_list(request.args.get("category"), "category"),
                           request.args.get("category_mode"))

    def check_item(item: str) -> str:
        try:
            return live.check_item(_id(item, "item"))
        except UnknownItem as e:
            raise ApiError(404, "unknown_item", str(e)) from None

    def ask(call: Callable[[], T]) -> T:
        try:
            return call()
        except NoModel as e:
            raise ApiError(503, "no_model", str(e)) from None
        except UnknownItem as e:
            raise ApiError(404, "unknown_item", str(e)) from None
        except UnknownUser as e:
            raise ApiError(404, "unknown_user", str(e)) from None

    def recommend_user(user: str, allowed: tuple[str, ...]) -> Response:
        check_keys(request.args, allowed)
        user = _id(user, "user")
        a = ask(lambda: live.recommend(user, rec_args()))
        return jsonify(user=user, items=_items(a.recs), model_version=a.version,
                       fallback=a.recs.fallback, fresh_events=a.fresh_events,
                       recommendation_id=svc.track(user, a.version, a.recs.items))

    @app.get("/users/<user>/recommendations")
    def user_recommendations(user: str) -> Response:
        return recommend_user(user, REC_KEYS)

    @app.get("/recommendations")
    def query_recommendations() -> Response:
        return recommend_user(require(request.args.get("user"), "user"), ("user", *REC_KEYS))

    @app.get("/")
    def compat() -> Response:
        """The original service: ``?userId=&recommendationsNumber=``."""
        check_keys(request.args, ("userId", "recommendationsNumber"))
        user = _id(require(request.args.get("userId"), "userId"), "user")
        n = parse_n(request.args.get("recommendationsNumber"), "recommendationsNumber")
        a = ask(lambda: live.recommend(user, ListQuery(n=n)))
        response = jsonify(user_id=user, recommended_items=a.recs.items)
        rid = svc.track(user, a.version, a.recs.items)
        if rid is not None:  # a header: the original service's body keeps its two keys
            response.headers["X-Recommendation-Id"] = rid
        return response

    @app.post("/recommendations")
    def session_recommendations() -> Response:
        check_keys(request.args, ())  # n and the rest go in the body; a query is a mistake
        kw = parse_session(read_json(request.get_data(cache=True)))
        q = ListQuery(n=kw["n"], exclude_seen=kw["exclude_seen"], items=kw["candidates"],
                      exclude=kw["exclude"],
                      filter=item_filter(kw["category"], kw["category_mode"]))
        a = ask(lambda: live.recommend_session(kw["items"], q))
        return jsonify(items=_items(a.recs), model_version=a.version, fallback=a.recs.fallback,
                       fresh_events=0, recommendation_id=svc.track(None, a.version, a.recs.items))

    @app.get("/recommendations/batch")
    def batch_recommendations() -> Response:
        check_keys(request.args, ("users", *REC_KEYS))
        users = [_id(u, "user") for u in parse_list(request.args.get("users"), "users") or []]
        if not users or len(users) > MAX_BATCH_USERS:
            raise ApiError(400, "bad_parameter", f"users must list 1..{MAX_BATCH_USERS} ids")
        q = rec_args()
        version, out = ask(lambda: live.recommend_batch(users, q))
        results = {u: {"items": _items(a.recs), "fallback": a.recs.fallback,
                       "fresh_events": a.fresh_events,
                       "recommendation_id": svc.track(u, version, a.recs.items)}
                   for u, a in out.items()}
        return jsonify(results=results, model_version=version)

    @app.get("/items/<item>/similar")
    def similar(item: str) -> Response:
        check_keys(request.args, ("n", "exclude", *FILTER_KEYS))
        item = check_item(item)
        q = ListQuery(n=parse_n(request.args.get("n")),
                      exclude=parse_list(request.args.get("exclude"), "exclude"),
                      filter=query_filter())
        a = ask(lambda: live.similar(item, q))
        return jsonify(item=item, items=_items(a.recs), model_version=a.version, fallback=None,
                       recommendation_id=svc.track(None, a.version, a.recs.items))

    @app.get("/users/<user>/items")
    def user_items(user: str) -> Response:
        check_keys(request.args, ())
        user = _id(user, "user")
        k = ask(lambda: live.known_items(user))
        return jsonify(user=user, items=[{"item": i, "weight": w} for i, w in k.known],
                       fresh=[{"item": i, "weight": w} for i, w in k.fresh],
                       model_version=k.version, fresh_events=len(k.fresh))

    @app.get("/popular")
    def popular() -> Response:
        check_keys(request.args, ("n", "exclude", *FILTER_KEYS))
        q = ListQuery(n=parse_n(request.args.get("n")),
                      exclude=parse_list(request.args.get("exclude"), "exclude"),
                      filter=query_filter())
        a = ask(lambda: live.popular(q))
        return jsonify(items=_items(a.recs), model_version=a.version, fallback="popular",
                       recommendation_id=svc.track(None, a.version, a.recs.items))

    @app.get("/users/<user>/because/<item>")
    def because(user: str, item: str) -> Response:
        check_keys(request.args, ("n",))
        user, item = _id(user, "user"), check_item(item)
        n = parse_n(request.args.get("n"), default=5)
        e = ask(lambda: live.because(user, item, n))
        return jsonify(user=user, item=item,
                       items=[{"item": i, "score": c} for i, c in e.items],
                       model_version=e.version, fresh_events=e.fresh_events)

    @app.get("/model")
    def model_info() -> Response:
        s = served()
        m = s.snapshot.manifest
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
                       fresh_events=len(svc.fresh), fresh_users=svc.fresh.users)

    @app.post("/interactions")
    def interactions() -> tuple[Response, int]:
        require_bearer(svc.config.ingest_token)
        if svc.sink is None:
            raise ApiError(503, "ingest_disabled", "this replica has no event sink")
        try:
            check_keys(request.args, ())
            events = parse_interactions(read_json(request.get_data(cache=True)), time.time(),
                                        svc.config.feedback)
        except ApiError:
            metrics.INGESTED.labels("invalid").inc()
            raise
        # As posted: consumers apply their own feedback table to a JSON event's type.
        produce_acknowledged(svc.sink, svc.config.topic,
                             [(raw, e.user) for e, raw in events], "events")
        metrics.INGESTED.labels("produced").inc(len(events))
        return jsonify(accepted=len(events), topic=svc.config.topic), 202

    @app.get("/healthz")
    def healthz() -> Response:
        # The version tells which build a replica runs (a rollout half-way, a stale pod).
        return jsonify(status="ok", version=__version__)

    @app.get("/readyz")
    def readyz() -> tuple[Response, int]:
        s = svc.holder.current()
        if s is None:
            return jsonify(ready=False, model_version=None), 503
        return jsonify(ready=True, model_version=s.version), 200

    @app.get("/metrics")
    def prometheus() -> Response:
        for attempt in range(METRICS_ATTEMPTS):
            try:
                body, ctype = metrics.exposition(extra=svc.online_families())
                return Response(body, content_type=ctype)
            except struct.error:
                # prometheus-client race: another worker's metrics file was just created and
                # is still empty (it opens, then sizes it). It is complete a moment later.
                time.sleep(0.01 * (attempt + 1))
        raise ApiError(503, "metrics_busy", "a worker's metrics file is being created; retry")

    @app.get("/openapi.json")
    def openapi_doc() -> Response:
        return jsonify(openapi)
