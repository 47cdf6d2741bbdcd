"""``DELETE /users/{user}`` and ``DELETE /items/{item}``: forget a user or an item.

A deletion is published as an erasure control record (``core/events/erasure.py``) on the
interactions topic, keyed by the id, and applied in the answering worker at once; every other
worker and replica reads it from the topic it already follows (within the fold-in's latency,
well under a second), and the trainer drops the id from its window, retrains at once and
prunes the older snapshots (docs/feedback.md, "Forgetting"). With serving groups a user's
erasure goes to the user's partition and an item's to one partition of every group
(docs/groups.md). With the embedded log, the id's
records are also redacted from the log itself (``adapters/locallog.py``). Authenticated like
ingest.

Answers 202 ``{"erased": kind, "id": ..., "at": seconds, "topic": ...}``: accepted and
durable in the log, applied here, applied elsewhere within the documented bounds.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, jsonify, request

from streamrec.adapters.source import EventSink, Redacting
from streamrec.core.events.erasure import Erasure
from streamrec.core.events.erasurekey import KeyUnavailable

from .. import metrics
from . import redaction
from .context import service
from .errors import ApiError, check_keys
from .guards import path_id, produce_acknowledged, require_bearer, require_sink

__all__ = ["bp"]

bp = Blueprint("erase", __name__)


def _checked(kind: str, ident: str) -> tuple[str, EventSink]:
    """The id and the sink, or the 4xx/503 (counted by result)."""
    try:
        require_bearer(service().config.ingest_token)
        check_keys(request.args, ())
        ident = path_id(ident, kind)
        return ident, require_sink()
    except ApiError as e:
        result = "unauthorized" if e.status == 401 else "invalid"
        metrics.ERASE_REQUESTS.labels(kind, result).inc()
        raise


def _erase(kind: str, ident: str) -> tuple[Response, int]:
    ident, sink = _checked(kind, ident)
    svc = service()
    try:
        erasure = Erasure(kind, ident, time.time()).keyed(svc.hasher)
    except KeyUnavailable as e:
        metrics.ERASE_REQUESTS.labels(kind, "unavailable").inc()
        raise ApiError(503, "erasure_key_unavailable", str(e), {"Retry-After": "5"}) from None
    assert erasure.digest is not None
    c = svc.config
    topic = c.topic
    try:  # erasing twice is harmless: a client retries a 503
        # Keyed by the hash too: the record holds no id anywhere. With serving groups, the
        # hash's partition may belong to another group than the user's: the record goes where
        # the groups that must apply it read (`GroupLayout.erasure_partitions`).
        for partition in svc.groups.erasure_partitions(kind, ident):
            produce_acknowledged(sink, topic, [(erasure.to_bytes(), erasure.digest)],
                                 "erasures", partition)
    except ApiError:
        metrics.ERASE_REQUESTS.labels(kind, "unavailable").inc()
        raise
    svc.erase(erasure)
    redacted = None
    if isinstance(sink, Redacting):
        redacted = sink.redact(topic, redaction.events(erasure, c.format, svc.hasher))
        redacted += sink.redact(c.items, redaction.item_records(erasure))
        redacted += sink.redact(c.dlq, redaction.dead_letters(erasure))
        redacted += sink.redact(c.impressions, redaction.impressions(erasure))
    metrics.ERASE_REQUESTS.labels(kind, "accepted").inc()
    return jsonify(erased=kind, id=ident, at=erasure.at, topic=topic, redacted=redacted), 202


# <id:>: one path segment, which may hold "/" sent as %2F (pathids.py): every id is
# erasable, and DELETE /users/u1/recommendations is a 405, not the erasure of "u1/...".
@bp.delete("/users/<id:user>")
def delete_user(user: str) -> tuple[Response, int]:
    return _erase("user", user)


@bp.delete("/items/<id:item>")
def delete_item(item: str) -> tuple[Response, int]:
    return _erase("item", item)
