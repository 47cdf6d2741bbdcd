"""Which records of the embedded log an erasure redacts (``adapters/locallog.py`` rewrites them).

``DELETE /users/{u}`` and ``DELETE /items/{i}`` redact, in every topic of the embedded log that
streamrec writes (docs/feedback.md, "Forgetting"):

- on the interactions topic, every event the erasure erases (``Tombstones.erased``), every
  record written before the hash that erased the same id (``{"erase", "id"}``), and every
  record that does not parse but holds the id (it was dead-lettered, and it is still in the
  log);
- on the items topic, the erased item's records, and records that do not parse but hold the id;
- on the dead-letter topic, every record whose value, key or headers hold the id.

"Holds the id" is a byte search for the id's usual encodings (:func:`needles`): UTF-8, and
JSON's escapes (``\\u00fc``, either case, and ``\\/``). A redacted record keeps its offset and
timestamp only: its value becomes ``erasure.REDACTED`` and its key and headers go.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from streamrec.adapters.source import SourceMessage
from streamrec.core.catalog.records import InvalidItem, parse_record_bytes
from streamrec.core.events import Event, InvalidEvent
from streamrec.core.events.codec import parse_record
from streamrec.core.events.erasure import Erasure, Tombstones
from streamrec.core.events.erasurekey import ErasureHasher

__all__ = ["Predicate", "dead_letters", "events", "impressions", "item_records", "needles"]

Predicate = Callable[[SourceMessage], bool]


def needles(ident: str) -> tuple[bytes, ...]:
    """The byte strings an id may appear as in a record: UTF-8 and JSON-escaped forms."""
    escaped = json.dumps(ident)[1:-1]  # ensure_ascii: \\u00fc, \\" and \\\\
    forms = {ident.encode("utf-8"), escaped.encode("ascii"),
             json.dumps(ident, ensure_ascii=False)[1:-1].encode("utf-8"),
             escaped.replace("/", "\\/").encode("ascii"),  # "\\/", as some encoders write "/"
             _upper_hex(escaped).encode("ascii")}  # \\u00FC
    return tuple(sorted(forms))


def _upper_hex(escaped: str) -> str:
    out, k = [], 0
    while k < len(escaped):
        if escaped.startswith("\\u", k):
            out.append("\\u" + escaped[k + 2:k + 6].upper())
            k += 6
        elif escaped.startswith("\\", k):
            out.append(escaped[k:k + 2])
            k += 2
        else:
            out.append(escaped[k])
            k += 1
    return "".join(out)


def _holds(message: SourceMessage, forms: tuple[bytes, ...], headers: bool = False) -> bool:
    fields = [message.value or b"", message.key or b""]
    if headers:
        fields += [value for _, value in message.headers]
    return any(form in bytes(f) for f in fields for form in forms)


def events(erasure: Erasure, fmt: str, hasher: ErasureHasher) -> Predicate:
    """The interactions topic's records ``erasure`` (with its id) redacts."""
    assert erasure.id is not None, "the answering worker knows the id"
    ident, tombstones = erasure.id, Tombstones.of([erasure], hasher)
    forms = needles(ident)

    def erased(message: SourceMessage) -> bool:
        if message.value is None or not _holds(message, forms):
            return False  # a record that does not hold the id in any form cannot name it
        try:
            record = parse_record(bytes(message.value), fmt, message.timestamp)
        except InvalidEvent:
            return True  # dead-lettered garbage that holds the id
        if isinstance(record, Event):
            return tombstones.erased(record.user, record.item, record.ts)
        # An erasure record from before the hash, naming this id in clear.
        return record is not None and record.kind == erasure.kind and record.id == ident

    return erased


def item_records(erasure: Erasure) -> Predicate:
    """The items topic's records ``erasure`` redacts."""
    assert erasure.id is not None, "the answering worker knows the id"
    ident, forms = erasure.id, needles(erasure.id)

    def erased(message: SourceMessage) -> bool:
        if not _holds(message, forms):
            return False
        if message.value is None:
            return True
        try:
            record = parse_record_bytes(message.value)
        except InvalidItem:
            return True
        return erasure.kind == "item" and record.item == ident

    return erased


def dead_letters(erasure: Erasure) -> Predicate:
    """The dead-letter topic's records ``erasure`` redacts: any that holds the id."""
    assert erasure.id is not None, "the answering worker knows the id"
    forms = needles(erasure.id)
    return lambda message: _holds(message, forms, headers=True)


def impressions(erasure: Erasure) -> Predicate:
    """The impressions topic's records ``erasure`` redacts: any that holds the id (the user
    shown a list, or an item in one)."""
    assert erasure.id is not None, "the answering worker knows the id"
    forms = needles(erasure.id)
    return lambda message: _holds(message, forms)
