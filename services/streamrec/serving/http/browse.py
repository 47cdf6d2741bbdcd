"""Lists around an item or a user's history: ``GET /items/{item}/similar``, ``GET /popular``,
``GET /users/{user}/because/{item}`` and ``GET /users/{user}/items`` (known items)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from .context import live, service
from .errors import check_keys, parse_n
from .guards import path_id
from .params import LIST_KEYS, list_query, scored

bp = Blueprint("browse", __name__)


def _item(item: str) -> str:
    """A valid id of an item that was not erased (404 whatever else the query says)."""
    return live().check_item(path_id(item, "item"))


@bp.get("/items/<item>/similar")
def similar(item: str) -> Response:
    check_keys(request.args, LIST_KEYS)
    item = _item(item)
    a = live().similar(item, list_query(personal=False))
    return jsonify(item=item, items=scored(a.recs.items, a.recs.scores), model_version=a.version,
                   fallback=None, recommendation_id=service().track(None, a.version, a.recs.items))


@bp.get("/popular")
def popular() -> Response:
    check_keys(request.args, LIST_KEYS)
    a = live().popular(list_query(personal=False))
    return jsonify(items=scored(a.recs.items, a.recs.scores), model_version=a.version,
                   fallback="popular",
                   recommendation_id=service().track(None, a.version, a.recs.items))


@bp.get("/users/<user>/because/<item>")
def because(user: str, item: str) -> Response:
    check_keys(request.args, ("n",))
    user, item = path_id(user, "user"), _item(item)
    e = live().because(user, item, parse_n(request.args.get("n"), default=5))
    return jsonify(user=user, item=item, items=[{"item": i, "score": c} for i, c in e.items],
                   model_version=e.version, fresh_events=e.fresh_events)


@bp.get("/users/<user>/items")
def user_items(user: str) -> Response:
    check_keys(request.args, ())
    user = path_id(user, "user")
    k = live().known_items(user)
    return jsonify(user=user, items=[{"item": i, "weight": w} for i, w in k.known],
                   fresh=[{"item": i, "weight": w} for i, w in k.fresh],
                   model_version=k.version, fresh_events=len(k.fresh))
