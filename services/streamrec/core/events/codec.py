"""Single-message codec: the reference semantics for turning one Kafka value into an Event.

Two wire formats share a topic (see docs/core.md):

* text ``user:item`` or ``user:item:weight`` - the original service's format - and
  ``user:item:weight:recommendation_id`` (an empty weight means 1.0). Two to four
  ``:``-separated fields, so ids containing ``:`` must be sent as JSON;
* a JSON object ``{"user", "item", "weight", "ts", "recommendation_id", "type", "event_id"}``,
  with
  ``rating`` accepted for ``weight`` and ``timestamp`` for ``ts``; integer ids are stringified;
  unknown keys are ignored. ``type`` names a feedback type whose configured weight multiplies
  ``weight`` (``feedback.py``); without a type the weight may be negative (negative feedback).

The topic also carries control records, JSON objects with an ``erase`` key (``erasure.py``):
:func:`parse_record` returns them as :class:`~.erasure.Erasure`; :func:`parse_event` refuses
them (``control_record``), since an event was expected.

With ``fmt="auto"`` a message whose first non-blank character is ``{`` is JSON, anything else
is text. Surrounding ASCII blanks (space, tab, CR, LF) are ignored; fields are otherwise taken
verbatim. The batch parser (``batch.py``) defers to this module for anything unusual, so this
is the one place where validation rules live.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from ..domains import MAX_TS, MAX_TS_AHEAD, MAX_WEIGHT, show, signed_weight_ok, ts_ok, weight_ok
from .erasure import Erasure, parse_control
from .event import MAX_EVENT_BYTES, MAX_EVENT_ID_BYTES, MAX_ID_BYTES, Event, InvalidEvent
from .feedback import DEFAULT_WEIGHTS
from .strictjson import DuplicateKey, loads

__all__ = ["FORMATS", "check_event_id", "check_format", "parse_event", "parse_json_value",
           "parse_record", "serialize_event", "validate_event"]

#: A feedback table, ``{type: weight}`` (``feedback.py``).
Weights = Mapping[str, float]
#: What one message may be: an event, an erasure, or a redacted record (None).
Record = Event | Erasure | None

FORMATS = ("auto", "text", "json")

#: Blanks stripped around a message (as bytes and as text).
BLANKS = " \t\r\n"
BLANKS_BYTES = BLANKS.encode()

#: Unicode category Cc: C0 controls, DEL and C1 controls.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

# An id of at most this many code points cannot exceed MAX_ID_BYTES (UTF-8 uses <= 4 bytes each),
# which lets the common case skip encoding the id just to measure it.
SAFE_ID_CHARS = MAX_ID_BYTES // 4

_WEIGHT_KEYS = ("weight", "rating")
_TS_KEYS = ("ts", "timestamp")


def check_format(fmt: str) -> None:
    """Raise ``ValueError`` for an unknown format name (a configuration error, not bad data)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown event format {fmt!r}; expected one of {', '.join(FORMATS)}")


def _show(value: object, limit: int = 40) -> str:
    # Details end up in logs and DLQ headers: never echo a 64 KiB value back.
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_id(value: str, field: str) -> str:
    """Validate one id string; return it unchanged.

    Raises ``InvalidEvent``: ``bad_id`` (empty, only whitespace, or not valid Unicode),
    ``control_char``, ``id_too_long`` (over ``MAX_ID_BYTES`` bytes of UTF-8)."""
    if not value:
        raise InvalidEvent("bad_id", f"{field} id is empty")
    if value.isspace():  # " " is no id a client meant to send; it stops at the first non-blank
        raise InvalidEvent("bad_id", f"{field} id {_show(value)} is only whitespace")
    if CONTROL.search(value):
        raise InvalidEvent(
            "control_char", f"{field} id {_show(value)} contains a control character"
        )
    if len(value) > SAFE_ID_CHARS:
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:  # a lone surrogate from a JSON "\ud800" escape
            raise InvalidEvent(
                "bad_id", f"{field} id {_show(value)} is not valid Unicode"
            ) from None
        if size > MAX_ID_BYTES:
            raise InvalidEvent(
                "id_too_long", f"{field} id is {size} bytes of UTF-8; the limit is {MAX_ID_BYTES}"
            )
    elif not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEvent(
                "bad_id", f"{field} id {_show(value)} is not valid Unicode"
            ) from None
    return value


def check_event_id(value: object) -> str:
    """Validate a client ``event_id``: a string, checked as an id, of at most
    ``MAX_EVENT_ID_BYTES`` bytes of UTF-8; return it. Raises ``InvalidEvent`` (``bad_id``,
    ``control_char``, ``id_too_long``)."""
    if not isinstance(value, str):
        raise InvalidEvent("bad_id", f"event_id must be a string, got {_show(value)}")
    check_id(value, "event")
    size = len(value) if value.isascii() else len(value.encode("utf-8"))
    if size > MAX_EVENT_ID_BYTES:
        raise InvalidEvent("id_too_long", f"event_id is {size} bytes of UTF-8; the limit is "
                           f"{MAX_EVENT_ID_BYTES}")
    return value


def text_weight(field: str) -> float | None:
    """The weight in a text message, or ``None`` when the field is not a valid weight.

    Only plain ASCII decimal or exponent notation in the domain ``(0, MAX_WEIGHT]`` is
    accepted: Python's ``float`` would also take ``1_000`` and non-ASCII digits, which no
    producer means.
    """
    if not field.isascii() or "_" in field:
        return None
    try:
        weight = float(field)
    except ValueError:
        return None
    return weight if weight_ok(weight) else None


def _weight_from_text(field: str) -> float:
    weight = text_weight(field)
    if weight is None:
        raise InvalidEvent("bad_weight", f"weight {_show(field)} is not a number in "
                                         f"(0, {show(MAX_WEIGHT)}]")
    return weight


def _from_text(text: str, default_ts: float | None) -> Event:
    if CONTROL.search(text):
        raise InvalidEvent("control_char", f"message {_show(text)} contains a control character")
    parts = text.split(":")
    if len(parts) == 2:
        return Event(check_id(parts[0], "user"), check_id(parts[1], "item"), 1.0, default_ts)
    if len(parts) == 3:
        user, item = check_id(parts[0], "user"), check_id(parts[1], "item")
        return Event(user, item, _weight_from_text(parts[2]), default_ts)
    if len(parts) == 4:  # user:item:weight:recommendation_id; an empty weight is 1.0
        user, item = check_id(parts[0], "user"), check_id(parts[1], "item")
        weight = _weight_from_text(parts[2]) if parts[2] else 1.0
        return Event(user, item, weight, default_ts, check_id(parts[3], "recommendation"))
    raise InvalidEvent(
        "malformed",
        f"expected user:item[:weight[:recommendation_id]], got {len(parts)} fields",
    )


def _json_id(obj: dict[str, Any], field: str) -> str:
    value = obj.get(field)
    if value is None:
        raise InvalidEvent("malformed", f"JSON event has no {field!r}")
    if isinstance(value, str):
        return check_id(value, field)
    if type(value) is int:  # not bool, which is an int subclass
        return str(value)
    raise InvalidEvent("bad_id", f"{field} id must be a string or an integer, got {_show(value)}")


def _json_number(obj: dict[str, Any], keys: tuple[str, str]) -> float | None:
    if keys[0] in obj and keys[1] in obj:  # one would win silently: say so instead
        raise InvalidEvent("ambiguous_field", f"both {keys[0]!r} and its alias {keys[1]!r} are "
                           "given; give one of them")
    value = obj.get(keys[0])
    if value is None:
        value = obj.get(keys[1])
    if value is None:
        return None
    reason = "bad_weight" if keys is _WEIGHT_KEYS else "bad_timestamp"
    if type(value) not in (int, float):  # strings and booleans are refused, not coerced
        raise InvalidEvent(reason, f"{keys[0]} must be a number, got {_show(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidEvent(reason, f"{keys[0]} {_show(value)} is out of range") from None
    if not math.isfinite(number):
        raise InvalidEvent(reason, f"{keys[0]} must be finite, got {_show(value)}")
    return number


def _check_ts(ts: float, arrival: float | None) -> float:
    """A message's own ts in the domain; one ahead of ``arrival`` within the tolerated skew
    becomes the arrival time, one further ahead is refused (see ``domains.py``)."""
    if not ts_ok(ts):
        hint = " (milliseconds? ts is in seconds)" if ts > MAX_TS else ""
        raise InvalidEvent("bad_timestamp",
                           f"ts {ts!r} is not in [0, {show(MAX_TS)}] seconds{hint}")
    if arrival is not None and ts > arrival:
        if ts > arrival + MAX_TS_AHEAD:
            raise InvalidEvent("future_timestamp", f"ts {ts!r} is {ts - arrival:.0f} s after the "
                               f"message arrived; at most {show(MAX_TS_AHEAD)} s is tolerated")
        return arrival
    return ts


def _typed_weight(obj: dict[str, Any], count: float | None, weights: Weights) -> float:
    """The signed weight of a JSON event: ``weights[type] * count`` with a type, else the
    weight as given (non-zero, possibly negative: negative feedback)."""
    kind = obj.get("type")
    if kind is None:
        if count is None:
            return 1.0
        if not signed_weight_ok(count):
            raise InvalidEvent("bad_weight", f"weight must be non-zero and in "
                               f"[-{show(MAX_WEIGHT)}, {show(MAX_WEIGHT)}], got {count!r}")
        return count
    if not isinstance(kind, str):
        raise InvalidEvent("bad_type", f"type must be a string, got {_show(kind)}")
    factor = weights.get(kind)
    if factor is None:
        known = ", ".join(sorted(weights)) or "none"
        raise InvalidEvent("unknown_type", f"feedback type {_show(kind)} is not configured "
                           f"(known: {_show(known, 200)})")
    if count is None:
        return factor
    if not weight_ok(count):
        raise InvalidEvent("bad_weight", f"with a type, weight counts the events and must be "
                           f"in (0, {show(MAX_WEIGHT)}], got {count!r}")
    signed = factor * count
    if not signed_weight_ok(signed):
        raise InvalidEvent("bad_weight", f"type {kind!r} weighs {factor!r}; times weight "
                           f"{count!r} that is {signed!r}, beyond {show(MAX_WEIGHT)}")
    return signed


def _from_json(text: str, default_ts: float | None, weights: Weights) -> Event | Erasure | None:
    try:
        obj = loads(text)
    except DuplicateKey as exc:
        raise InvalidEvent("duplicate_key", str(exc)) from None
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise InvalidEvent("bad_json", f"not valid JSON: {exc}") from None
    return _from_object(obj, default_ts, weights)


def _from_object(obj: Any, default_ts: float | None, weights: Weights) -> Event | Erasure | None:
    if not isinstance(obj, dict):
        raise InvalidEvent("malformed", f"expected a JSON object, got {type(obj).__name__}")
    if "erase" in obj or "redacted" in obj:
        try:
            erasure = parse_control(obj)
        except ValueError as exc:
            raise InvalidEvent("bad_control", str(exc)) from None
        if erasure is not None and erasure.id is not None:  # a record from before the hash
            check_id(erasure.id, erasure.kind)
        return erasure
    user, item = _json_id(obj, "user"), _json_id(obj, "item")
    weight = _typed_weight(obj, _json_number(obj, _WEIGHT_KEYS), weights)
    ts = _json_number(obj, _TS_KEYS)
    rid = None if obj.get("recommendation_id") is None else _json_id(obj, "recommendation_id")
    eid = obj.get("event_id")
    return Event(user, item, weight, default_ts if ts is None else _check_ts(ts, default_ts), rid,
                 None if eid is None else check_event_id(eid))


def parse_record(raw: bytes, fmt: str, default_ts: float | None,
                 weights: Weights | None = None) -> Record:
    """One message as an event, an erasure or None (a redacted record), without re-checking
    ``fmt`` (the batch path's entry). ``weights`` is the feedback table (default:
    ``feedback.DEFAULT_WEIGHTS``). Raises ``InvalidEvent`` as :func:`parse_event` does."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(
            "too_large", f"message is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidEvent("bad_encoding", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    text = text.strip(BLANKS)
    if not text:
        raise InvalidEvent("empty", "message is empty")
    if fmt == "json" or (fmt == "auto" and text[0] == "{"):
        return _from_json(text, default_ts, DEFAULT_WEIGHTS if weights is None else weights)
    return _from_text(text, default_ts)


def parse_bytes(raw: bytes, fmt: str, default_ts: float | None,
                weights: Weights | None = None) -> Event:
    """:func:`parse_record` for a message that must be an event."""
    record = parse_record(raw, fmt, default_ts, weights)
    if not isinstance(record, Event):
        raise InvalidEvent("control_record", "a control record (erasure or redaction) where an "
                           "event was expected; erase through DELETE /users or DELETE /items")
    return record


def parse_json_value(obj: Any, default_ts: float | None = None,
                     weights: Weights | None = None) -> tuple[Event, bytes]:
    """An event from a JSON value already decoded (an HTTP body's element), and its message
    value: the compact JSON text of ``obj``, UTF-8. The rules and errors are exactly those of
    ``parse_event(value, "json", default_ts, weights)``, without decoding the text again.

    Raises ``InvalidEvent`` as :func:`parse_event` does (``bad_encoding`` for a lone
    surrogate, ``too_large``, ``control_record`` for an erasure)."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        raw = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidEvent("bad_encoding", f"not encodable as UTF-8: {exc.reason}") from None
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(
            "too_large", f"message is {len(raw)} bytes; the limit is {MAX_EVENT_BYTES}"
        )
    record = _from_object(obj, default_ts, DEFAULT_WEIGHTS if weights is None else weights)
    if not isinstance(record, Event):
        raise InvalidEvent("control_record", "a control record (erasure or redaction) where an "
                           "event was expected; erase through DELETE /users or DELETE /items")
    return record, raw


def parse_event(
    raw: bytes | bytearray | memoryview | str | None,
    fmt: str = "auto",
    default_ts: float | None = None,
    weights: Weights | None = None,
) -> Event:
    """Parse one message.

    Parameters
    ----------
    raw : bytes or str
        The Kafka value (``None``, a tombstone, is rejected as ``empty``).
    fmt : {"auto", "text", "json"}
        ``auto`` picks JSON for a message starting with ``{`` and text otherwise.
    default_ts : float, optional
        The message's arrival time, seconds (normally the Kafka timestamp, see
        :func:`streamrec.core.domains.arrival_times`): the ts of a message without one, and
        the bound of one with one (more than ``MAX_TS_AHEAD`` s later: ``future_timestamp``;
        later within that: recorded as the arrival time).
    weights : mapping of str to float, optional
        The feedback table that turns ``type`` into a weight (``feedback.DEFAULT_WEIGHTS``).

    Raises
    ------
    InvalidEvent
        With a ``reason`` code from :data:`streamrec.core.events.event.REASONS`.
    """
    check_format(fmt)
    if raw is None:
        raise InvalidEvent("empty", "message has no value")
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidEvent("bad_encoding", f"not encodable as UTF-8: {exc.reason}") from None
    return parse_bytes(bytes(raw), fmt, default_ts, weights)


def validate_event(event: Event) -> Event:
    """Check an event built in code (not parsed) against the same rules; return it."""
    check_id(event.user, "user")
    check_id(event.item, "item")
    if not signed_weight_ok(event.weight):
        raise InvalidEvent("bad_weight", f"weight must be non-zero and in "
                           f"[-{show(MAX_WEIGHT)}, {show(MAX_WEIGHT)}], got {event.weight!r}")
    if event.ts is not None:
        _check_ts(event.ts, None)
    if event.recommendation_id is not None:
        check_id(event.recommendation_id, "recommendation")
    if event.event_id is not None:
        check_event_id(event.event_id)
    return event


def _text_safe(value: str, field: str) -> None:
    # Refuse what the text format cannot carry back unchanged.
    if ":" in value:
        raise InvalidEvent("malformed", f"{field} id {_show(value)} contains ':'; use JSON")
    if value != value.strip(BLANKS) or (field == "user" and value.startswith("{")):
        raise InvalidEvent("malformed", f"{field} id {_show(value)} is ambiguous as text; use JSON")


def serialize_event(event: Event, fmt: str = "json") -> bytes:
    """Encode an event as UTF-8 JSON (the default) or text; ``parse_event`` reads it back.

    The text format has no timestamp: ``ts`` is dropped (the transport's timestamp is expected
    to carry it), and ids that text cannot represent raise ``InvalidEvent("malformed")``, as
    do a negative weight (text weights are positive) and an ``event_id`` (text has none).
    JSON carries the event's resolved, signed weight and no ``type``, so it reads back the
    same whatever the feedback table.
    """
    if fmt not in ("json", "text"):
        raise ValueError(f"cannot serialize to {fmt!r}; expected 'json' or 'text'")
    validate_event(event)
    if fmt == "text":
        if event.weight < 0:
            raise InvalidEvent("malformed", "text cannot carry a negative weight; use JSON")
        if event.event_id is not None:
            raise InvalidEvent("malformed", "text cannot carry an event_id; use JSON")
        _text_safe(event.user, "user")
        _text_safe(event.item, "item")
        head = f"{event.user}:{event.item}"
        if event.recommendation_id is not None:
            _text_safe(event.recommendation_id, "recommendation")
            return f"{head}:{float(event.weight)!r}:{event.recommendation_id}".encode()
        return (head if event.weight == 1.0 else f"{head}:{float(event.weight)!r}").encode()
    body: dict[str, object] = {"user": event.user, "item": event.item, "weight": event.weight}
    if event.ts is not None:
        body["ts"] = event.ts
    if event.recommendation_id is not None:
        body["recommendation_id"] = event.recommendation_id
    if event.event_id is not None:
        body["event_id"] = event.event_id
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
