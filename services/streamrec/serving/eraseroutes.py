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
from typing import TYPE_CHECKING

from flask import Flask, Response, jsonify, request

from streamrec.adapters.source import Redacting, SourceMessage
from streamrec.core.codec import check_id, parse_record
from streamrec.core.erasure import Erasure, Tombstones
from streamrec.core.events import Event, InvalidEvent

from . import metrics
from .errors import ApiError, check_keys
from .routes import produce_acknowledged, refuse_other_routes_paths, require_bearer

if TYPE_CHECKING:
    from .service import Service

__all__ = ["register_erase_routes"]


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


def register_erase_routes(app: Flask, svc: Service) -> None:
    def erase(kind: str, ident: str) -> tuple[Response, int]:
        refuse_other_routes_paths(app)
        try:
            require_bearer(svc.config.ingest_token)
            check_keys(request.args, ())
            try:
                ident = check_id(ident, kind)
            except InvalidEvent as e:
                raise ApiError(400, "bad_id", e.detail) from None
            if svc.sink is None:
                raise ApiError(503, "ingest_disabled", "this replica has no event sink")
        except ApiError as e:
            result = "unauthorized" if e.status == 401 else "invalid"
            metrics.ERASE_REQUESTS.labels(kind, result).inc()
            raise
        erasure = Erasure(kind, ident, time.time())
        topic = svc.config.topic
        try:  # erasing twice is harmless: a client retries a 503
            produce_acknowledged(svc.sink, topic, [(erasure.to_bytes(), ident)], "erasures")
        except ApiError:
            metrics.ERASE_REQUESTS.labels(kind, "unavailable").inc()
            raise
        svc.erase(erasure)
        redacted = None
        if isinstance(svc.sink, Redacting):
            redacted = svc.sink.redact(topic, erased_by(erasure, svc.config.format))
        metrics.ERASE_REQUESTS.labels(kind, "accepted").inc()
        return jsonify(erased=kind, id=ident, at=erasure.at, topic=topic,
                       redacted=redacted), 202

    # <path:>: an id may hold "/" (sent as %2F, which the server decodes before routing), and
    # every id must be erasable; no other DELETE route lies beneath these two.
    @app.delete("/users/<path:user>")
    def delete_user(user: str) -> tuple[Response, int]:
        return erase("user", user)

    @app.delete("/items/<path:item>")
    def delete_item(item: str) -> tuple[Response, int]:
        return erase("item", item)
