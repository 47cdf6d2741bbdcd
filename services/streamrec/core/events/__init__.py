"""Events: the public face of event parsing, for the trainer, the replicas and the ingest route.

Import from here. The pieces live in small modules: ``event`` (the type and its error),
``codec`` (one message, the reference rules) and ``batch`` (many messages, fast).
"""

from __future__ import annotations

from .batch import ParsedBatch, parse_batch
from .codec import FORMATS, parse_event, parse_json_value, serialize_event, validate_event
from .event import MAX_EVENT_BYTES, MAX_ID_BYTES, REASONS, Event, InvalidEvent

__all__ = [
    "FORMATS",
    "MAX_EVENT_BYTES",
    "MAX_ID_BYTES",
    "REASONS",
    "Event",
    "InvalidEvent",
    "ParsedBatch",
    "parse_batch",
    "parse_event",
    "parse_json_value",
    "serialize_event",
    "validate_event",
]
