"""The catalogue's routes: ``GET``/``PUT /items/{item}`` and ``POST /items`` (a list).

Writes go through the items topic, never straight into this worker's catalogue: every worker
(and the trainer, for the next snapshot) then applies the same records in the same order, and
the answer is ``202 Accepted`` once the log has acknowledged them; the record shows on every
worker as soon as its follower reads it (``feeds/items.py``, well under a second). Writes are
authenticated like ``POST /interactions``. A record is a whole replacement, not a patch
(``core/catalog/records.py``).
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from streamrec.core.catalog.records import InvalidItem, ItemRecord, encode_record, parse_record

from .. import metrics
from .context import live, service
from .errors import ApiError, check_keys
from .guards import json_body, path_id, produce_acknowledged, require_bearer, require_sink

bp = Blueprint("items", __name__)

#: At most this many records in one ``POST /items``.
MAX_RECORDS = 1000


def _record(body: object, item: str | None, where: str) -> tuple[ItemRecord, bytes]:
    """The parsed record and its message value; 400 ``invalid_item`` naming the reason (and
    ``where``: the index in a list)."""
    try:
        record = parse_record(body, item)
        return record, encode_record(record)  # too_large: the topic's readers would refuse it
    except InvalidItem as e:
        metrics.ITEMS_PRODUCED.labels("invalid").inc()
        raise ApiError(400, "invalid_item", f"{where}{e.reason}: {e.detail}") from None


def _publish(records: list[tuple[ItemRecord, bytes]]) -> tuple[Response, int]:
    sink = require_sink()
    erased = [r.item for r, _ in records if live().erased(r.item)]
    if erased:  # DELETE /items erases an item for good (docs/feedback.md)
        raise ApiError(409, "erased_item", f"item {erased[0]!r} was erased by DELETE "
                       f"/items and cannot come back ({len(erased)} such in the request)")
    topic = service().config.items
    produce_acknowledged(sink, topic, [(value, r.item) for r, value in records], "records")
    metrics.ITEMS_PRODUCED.labels("produced").inc(len(records))
    return jsonify(accepted=len(records), topic=topic), 202


# <id:>: one path segment, which may hold "/" sent as %2F (pathids.py).
@bp.get("/items/<id:item>")
def get_item(item: str) -> Response:
    check_keys(request.args, ())
    item = path_id(item, "item")
    record = live().record(item)
    if record is None:
        raise ApiError(404, "unknown_item", f"no record for item {item!r}")
    return jsonify(record.to_dict())


@bp.put("/items/<id:item>")
def put_item(item: str) -> tuple[Response, int]:
    require_bearer(service().config.ingest_token)
    check_keys(request.args, ())
    item = path_id(item, "item")
    return _publish([_record(json_body(), item, "")])


@bp.post("/items")
def post_items() -> tuple[Response, int]:
    require_bearer(service().config.ingest_token)
    check_keys(request.args, ())
    body = json_body()
    if not isinstance(body, list) or not body or len(body) > MAX_RECORDS:
        got = f"{len(body)} records" if isinstance(body, list) else type(body).__name__
        raise ApiError(400, "bad_body", f"expected a JSON list of 1..{MAX_RECORDS} item "
                                        f"records, each with its 'item'; got {got}")
    # All or nothing: one bad record refuses the request, naming it; nothing is produced.
    return _publish([_record(r, None, f"records[{k}]: ") for k, r in enumerate(body)])
