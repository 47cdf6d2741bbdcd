"""What write routes share: a bearer token, ids checked where they enter, the JSON body under
its size limit, and producing to the log (acknowledged)."""

from __future__ import annotations

import hmac
from typing import Any

from flask import request

from streamrec.adapters.source import EventSink, SourceUnavailable
from streamrec.core.events import InvalidEvent
from streamrec.core.events.codec import check_id

from .bodies import read_json
from .context import service
from .errors import ApiError
from .writes import MAX_BODY, read_body

#: Seconds a write waits for the log's acknowledgement; the Kafka sink gives a message up for
#: good after this long (``message.timeout.ms``): after a 503 it never sends them again.
INGEST_TIMEOUT_S = 5.0
#: The ``Retry-After`` (seconds) of a 503 ``log_unavailable``.
RETRY_AFTER_S = 1

__all__ = ["INGEST_TIMEOUT_S", "RETRY_AFTER_S", "path_id", "produce_acknowledged",
           "json_body", "require_bearer", "require_sink"]


def path_id(value: str, field: str) -> str:
    """``value`` as a valid id; 400 ``bad_id`` naming ``field`` otherwise."""
    try:
        return check_id(value, field)
    except InvalidEvent as e:
        raise ApiError(400, "bad_id", e.detail) from None


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


def require_sink() -> EventSink:
    """This replica's event sink; 503 ``ingest_disabled`` when it has none."""
    sink = service().sink
    if sink is None:
        raise ApiError(503, "ingest_disabled", "this replica has no event sink")
    return sink


def json_body() -> Any:
    """The request's JSON body: 413 over ``MAX_BODY`` (chunked too), 400 ``bad_json`` /
    ``duplicate_key`` when it does not parse or names a key twice."""
    return read_json(read_body(request, MAX_BODY))


def produce_acknowledged(sink: EventSink, topic: str, messages: list[tuple[bytes, str]],
                         what: str, partition: int | None = None) -> None:
    """Produce (value, key) ``messages`` to ``topic`` and wait until the log has them all;
    503 ``log_unavailable`` otherwise, counting this request's messages only.

    The delivery contract (docs/reliability.md, "Delivery"): the sink gives up each message
    it could not deliver within `INGEST_TIMEOUT_S` for good and never sends it again, so one
    that never reached the log (a broker down or unreachable) is not written, and the retry
    a 503 invites writes it once. The exception is Kafka's "possibly persisted" message: one
    a broker received but did not acknowledge in time (it stalled or failed mid-request) may
    be written all the same. The embedded log has no exception: none is written.
    """
    try:
        unacknowledged = sink.produce_acknowledged(
            topic, [(value, key.encode("utf-8")) for value, key in messages], INGEST_TIMEOUT_S,
            partition)
    except SourceUnavailable as e:
        raise ApiError(503, "log_unavailable", f"none of the {len(messages)} {what} was "
                       f"written: {e}", {"Retry-After": str(RETRY_AFTER_S)}) from None
    if unacknowledged:
        raise ApiError(503, "log_unavailable",
                       f"{unacknowledged} of {len(messages)} {what} not acknowledged by the "
                       f"log within {INGEST_TIMEOUT_S:g} s and given up: those the log never "
                       "received are not written (retry them); those a stalled broker had "
                       "received may be", {"Retry-After": str(RETRY_AFTER_S)})
