"""``DELETE /users/{user}`` and ``DELETE /items/{item}``: forget a user or an item.

A deletion is published as an erasure control record (``core/erasure.py``) on the interactions
topic, keyed by the id, and applied in the answering worker at once; every other worker and
replica reads it from the topic it already follows (within the fold-in's latency, well under a
second), and the trainer drops the id from its window, retrains at once and prunes the older
snapshots (docs/feedback.md, "Forgetting"). With the embedded log, the id's records are also
redacted from the log itself (``adapters/locallog.py``). Authenticated like ingest.

Answers 202 ``{"erased": kind, "id": ..., "at": seconds, "topic": ...}``: accepted and
durable in the log, applied here, applied elsewhere within the documented bounds.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from flask import Blueprint, Response, jsonify, request

from streamrec.adapters.source import EventSink, Redacting, SourceMessage
from streamrec.core.codec import parse_record
from streamrec.core.erasure import Erasure, Tombstones
from streamrec.core.events import Event, InvalidEvent

from .. import metrics
from .context import service
from .errors import ApiError, check_keys
from .guards import (
    path_id,
    produce_acknowledged,
    refuse_other_routes_paths,
    require_bearer,
    require_sink,
)

__all__ = ["bp", "erased_by"]

bp = Blueprint("erase", __name__)


def erased_by(erasure: Erasure, fmt: str) -> Callable[[SourceMessage], bool]:
    """A predicate: is this log record an event ``erasure`` erases? (For redaction; control
    records and records that do not parse are never redacted.)"""
    tombstones = Tombstones.of([erasure])
    # A record that does not even contain the id's bytes cannot name it (JSON may escape
    # non-ASCII ids: those records are parsed).
    needle = erasure.id.encode("utf-8") if erasure.id.isascii() else None

    def erased(message: SourceMessage) -> bool:
        if message.value is None or (needle is not None and needle not in message.value):
            return False
        try:
            record = parse_record(bytes(message.value), fmt, message.timestamp)
        except InvalidEvent:
            return False
        return isinstance(record, Event) and tombstones.erased(record.user, record.item,
                                                               record.ts)

    return erased


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
    refuse_other_routes_paths()
    ident, sink = _checked(kind, ident)
    svc = service()
    erasure = Erasure(kind, ident, time.time())
    topic = svc.config.topic
    try:  # erasing twice is harmless: a client retries a 503
        produce_acknowledged(sink, topic, [(erasure.to_bytes(), ident)], "erasures")
    except ApiError:
        metrics.ERASE_REQUESTS.labels(kind, "unavailable").inc()
        raise
    svc.erase(erasure)
    redacted = None
    if isinstance(sink, Redacting):
        redacted = sink.redact(topic, erased_by(erasure, svc.config.format))
    metrics.ERASE_REQUESTS.labels(kind, "accepted").inc()
    return jsonify(erased=kind, id=ident, at=erasure.at, topic=topic, redacted=redacted), 202


# <path:>: an id may hold "/" (sent as %2F, which the server decodes before routing), and
# every id must be erasable; no other DELETE route lies beneath these two.
@bp.delete("/users/<path:user>")
def delete_user(user: str) -> tuple[Response, int]:
    return _erase("user", user)


@bp.delete("/items/<path:item>")
def delete_item(item: str) -> tuple[Response, int]:
    return _erase("item", item)
