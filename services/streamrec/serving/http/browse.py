"""Lists around an item or a user's history: ``GET /items/{item}/similar``,
``GET /items/{item}/next`` ("what comes next": autoplay, watch next), ``GET /popular``,
``GET /users/{user}/because/{item}`` and ``GET /users/{user}/items`` (known items)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Response, jsonify, request

from ..live.answers import Listed, ListQuery, Placing
from .context import live, service
from .errors import check_keys, parse_n
from .guards import path_id
from .params import FIELDS_KEY, LIST_KEYS, list_query, query_fields, scored, with_fields
from .placements import query_placement

bp = Blueprint("browse", __name__)


def _item(item: str) -> str:
    """A valid id of an item that was not erased (404 whatever else the query says)."""
    return live().check_item(path_id(item, "item"))


def _around(item: str, answer: Callable[[str, ListQuery, Placing | None], Listed]) -> Response:
    """A list around one item (``answer``: similar or next) with the list parameters."""
    check_keys(request.args, LIST_KEYS)
    item = _item(item)
    q, fields, placing = list_query(personal=False), query_fields(), query_placement()
    a = answer(item, q, placing)
    rid = service().track(None, a.version, a.recs.items, None, placing, a.recs.marks)
    return jsonify(item=item, items=with_fields(scored(a.recs.items, a.recs.scores,
                                                       a.recs.marks), fields),
                   model_version=a.version, fallback=a.recs.fallback,
                   placement=None if placing is None else placing.placement.name,
                   recommendation_id=rid)


@bp.get("/items/<id:item>/similar")
def similar(item: str) -> Response:
    return _around(item, live().similar)


@bp.get("/items/<id:item>/next")
def next_items(item: str) -> Response:
    return _around(item, live().next_items)


@bp.get("/popular")
def popular() -> Response:
    check_keys(request.args, LIST_KEYS)
    q, fields, placing = list_query(personal=False), query_fields(), query_placement()
    a = live().popular(q, placing)
    rid = service().track(None, a.version, a.recs.items, None, placing, a.recs.marks)
    return jsonify(items=with_fields(scored(a.recs.items, a.recs.scores, a.recs.marks), fields),
                   model_version=a.version, fallback="popular",
                   placement=None if placing is None else placing.placement.name,
                   recommendation_id=rid)


@bp.get("/users/<id:user>/because/<id:item>")
def because(user: str, item: str) -> Response:
    check_keys(request.args, ("n", FIELDS_KEY))
    user, item = path_id(user, "user"), _item(item)
    n, fields = parse_n(request.args.get("n"), default=5), query_fields()
    e = live().because(user, item, n)
    return jsonify(user=user, item=item,
                   items=with_fields([{"item": i, "score": c} for i, c in e.items], fields),
                   driven_by=e.driven_by,
                   transitions=with_fields([{"item": i, "position": p, "score": w}
                                            for i, p, w in e.transitions], fields),
                   model_version=e.version, fresh_events=e.fresh_events)


@bp.get("/users/<id:user>/items")
def user_items(user: str) -> Response:
    check_keys(request.args, (FIELDS_KEY,))
    user, fields = path_id(user, "user"), query_fields()
    k = live().known_items(user)
    return jsonify(user=user,
                   items=with_fields([{"item": i, "weight": w} for i, w in k.known], fields),
                   fresh=with_fields([{"item": i, "weight": w} for i, w in k.fresh], fields),
                   model_version=k.version, fresh_events=len(k.fresh))
