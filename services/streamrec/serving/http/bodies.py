"""JSON request bodies: ingest events and anonymous sessions, validated without any I/O.

`POST /interactions` events go through the same `core.events` rules as Kafka messages (each
object, decoded once with the body, is checked as a JSON message would be and re-encoded as
its message value), so the API accepts exactly what the log accepts; a text string
``"user:item[:weight]"`` is accepted too. A batch is all or nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from streamrec.core.domains import MAX_WEIGHT, show, weight_ok
from streamrec.core.events import (
    Event,
    InvalidEvent,
    parse_event,
    parse_json_value,
    serialize_event,
    strictjson,
)
from streamrec.core.events.codec import check_id

from .errors import ApiError, check_keys, parse_bool, parse_n
from .fields import parse_fields_body

MAX_EVENTS = 1000
MAX_SESSION = 1000
SESSION_KEYS = ("items", "n", "exclude_seen", "candidates", "exclude", "category",
                "category_mode", "fields", "placement")


def read_json(data: bytes) -> Any:
    """The request body as JSON; 400 ``bad_json`` for an empty or unparsable body, 400
    ``duplicate_key`` naming the key when an object gives one twice (which one would count is
    a guess: ``core/events/strictjson.py``)."""
    if not data.strip():
        raise ApiError(400, "bad_json", "the request body is empty; expected JSON")
    try:
        return strictjson.loads(data)
    except strictjson.DuplicateKey as e:
        raise ApiError(400, "duplicate_key", str(e)) from None
    except (ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise ApiError(400, "bad_json", f"the request body is not valid JSON: {e}") from None


def parse_interactions(body: Any, now: float, weights: Mapping[str, float] | None = None
                       ) -> list[tuple[Event, bytes]]:
    """A JSON event or a list of them → (event, message value) pairs; 400 naming every bad one.

    ``now`` (unix seconds) is the arrival time: the ts of events without one and the bound
    of those with one, exactly as the Kafka timestamp is for the trainer. ``weights`` is the
    feedback table (an unknown ``type`` is a 400 ``unknown_type`` here, a dead letter on the
    topic). The value of a JSON event is the object as posted (its ``type``, not a resolved
    weight), so every consumer applies its own table, as for events produced to Kafka
    directly; a text event is re-encoded as JSON.
    """
    raw = body if isinstance(body, list) else [body]
    if not raw:
        raise ApiError(400, "bad_body", "expected an event or a non-empty list of events")
    if len(raw) > MAX_EVENTS:
        raise ApiError(400, "bad_body", f"at most {MAX_EVENTS} events per request")
    events: list[tuple[Event, bytes]] = []
    problems = []
    for k, obj in enumerate(raw):
        try:
            if isinstance(obj, str):
                event = parse_event(obj, "text", now, weights)
                events.append((event, serialize_event(event, "json")))
            elif isinstance(obj, dict):  # decoded once, with the body
                events.append(parse_json_value(obj, now, weights))
            else:
                raise InvalidEvent("malformed", "an event is a JSON object or 'user:item' text")
        except InvalidEvent as e:
            problems.append(f"[{k}] {e.reason}: {e.detail}")
        except (ValueError, TypeError) as e:  # e.g. json.dumps of a lone surrogate
            problems.append(f"[{k}] malformed: {e}")
    if problems:
        raise ApiError(400, "invalid_event", "; ".join(problems[:20]))
    return events


def _ids(value: Any, name: str) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "bad_body", f"{name} must be a list of item ids")
    return value


def parse_session(body: Any) -> dict[str, Any]:
    """``{"items": [...], "n": 10, ...}`` → keyword arguments for `recommend_anonymous`."""
    if not isinstance(body, dict):
        raise ApiError(400, "bad_body", "expected a JSON object with 'items'")
    check_keys(body, SESSION_KEYS, "body")
    items = body.get("items")
    if not isinstance(items, list):
        raise ApiError(400, "bad_body", "'items' must be a list of ids or {item, weight}")
    if len(items) > MAX_SESSION:
        raise ApiError(400, "bad_body", f"at most {MAX_SESSION} session items")
    pairs: list[tuple[str, float]] = []
    for k, it in enumerate(items):
        if isinstance(it, str):
            item, weight = it, 1.0
        elif isinstance(it, dict) and isinstance(it.get("item"), str) and set(it) <= {
                "item", "weight"}:
            item, weight = it["item"], it.get("weight", 1.0)
        else:
            raise ApiError(400, "bad_body", f"items[{k}] must be an id or {{item, weight}}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight_ok(
                weight):
            raise ApiError(400, "bad_body",
                           f"items[{k}].weight must be a number in (0, {show(MAX_WEIGHT)}]")
        try:
            check_id(item, "item")
        except InvalidEvent as e:
            raise ApiError(400, "bad_body", f"items[{k}]: {e.detail}") from None
        pairs.append((item, float(weight)))
    # A JSON body has types: "5" and "true" are mistakes here, not query-string text.
    if isinstance(body.get("n"), str):
        raise ApiError(400, "bad_body",
                       f"n must be a JSON integer, got the string {body['n']!r:.40}")
    if body.get("exclude_seen") is not None and not isinstance(body["exclude_seen"], bool):
        raise ApiError(400, "bad_body", "exclude_seen must be true or false, got "
                                        f"{body['exclude_seen']!r:.40}")
    placement = body.get("placement")
    if placement is not None and not isinstance(placement, str):
        raise ApiError(400, "bad_body", f"placement must be a name, got {placement!r:.40}")
    return {
        "placement": placement,
        "items": pairs,
        "n": parse_n(body.get("n")),
        "exclude_seen": parse_bool(body.get("exclude_seen"), "exclude_seen", True),
        "candidates": _ids(body.get("candidates"), "candidates"),
        "exclude": _ids(body.get("exclude"), "exclude"),
        "category": _categories(body.get("category")),
        "category_mode": _mode(body.get("category_mode")),
        "fields": parse_fields_body(body.get("fields")),
    }


def _categories(value: Any) -> list[str] | None:
    """``category``: a list of names, or one string of comma-separated names; an empty string
    or list is a 400 (leave the key out for no filter), empty names are refused by
    ``parse_filter``."""
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "bad_body", "category must be a list of category names")
    if not value:
        raise ApiError(400, "bad_body", "category is an empty list; leave it out for no filter")
    return value


def _mode(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "bad_body", "category_mode must be 'any' or 'all'")
    return value
