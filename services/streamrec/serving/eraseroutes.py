"""``DELETE /users/{user}`` and ``DELETE /items/{item}``: forget a user or an item.

A deletion is published as an erasure control record (``core/events/erasure.py``) on the
interactions
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
from typing import TYPE_CHECKING

from flask import Flask, Response, jsonify, request

from streamrec.adapters.source import Redacting
from streamrec.core.events import InvalidEvent
from streamrec.core.events.codec import check_id
from streamrec.core.events.erasure import Erasure
from streamrec.core.events.erasurekey import KeyUnavailable

from . import metrics, redaction
from .errors import ApiError, check_keys
from .routes import produce_acknowledged, require_bearer

if TYPE_CHECKING:
    from .app import Service

__all__ = ["register_erase_routes"]


def register_erase_routes(app: Flask, svc: Service) -> None:
    def erase(kind: str, ident: str) -> tuple[Response, int]:
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
        try:
            erasure = Erasure(kind, ident, time.time()).keyed(svc.hasher)
        except KeyUnavailable as e:
            metrics.ERASE_REQUESTS.labels(kind, "unavailable").inc()
            raise ApiError(503, "erasure_key_unavailable", str(e), {"Retry-After": "5"}) \
                from None
        assert erasure.digest is not None
        c = svc.config
        topic = c.topic
        try:  # erasing twice is harmless: a client retries a 503
            # Keyed by the hash too: the record holds no id anywhere.
            produce_acknowledged(svc.sink, topic, [(erasure.to_bytes(), erasure.digest)],
                                 "erasures")
        except ApiError:
            metrics.ERASE_REQUESTS.labels(kind, "unavailable").inc()
            raise
        svc.erase(erasure)
        redacted = None
        if isinstance(svc.sink, Redacting):
            redacted = svc.sink.redact(topic, redaction.events(erasure, c.format, svc.hasher))
            redacted += svc.sink.redact(c.items, redaction.item_records(erasure))
            redacted += svc.sink.redact(c.dlq, redaction.dead_letters(erasure))
        metrics.ERASE_REQUESTS.labels(kind, "accepted").inc()
        return jsonify(erased=kind, id=ident, at=erasure.at, topic=topic,
                       redacted=redacted), 202

    # <id:>: one path segment, which may hold "/" sent as %2F (pathids.py): every id is
    # erasable, and DELETE /users/u1/recommendations is a 405, not the erasure of "u1/...".
    @app.delete("/users/<id:user>")
    def delete_user(user: str) -> tuple[Response, int]:
        return erase("user", user)

    @app.delete("/items/<id:item>")
    def delete_item(item: str) -> tuple[Response, int]:
        return erase("item", item)
