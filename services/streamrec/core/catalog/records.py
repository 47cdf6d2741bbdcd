"""The item catalogue: what streamrec knows about an item besides the events that name it.

An item record says which ``categories`` an item is in, free ``labels`` (string -> string),
typed ``attributes`` (name -> a number, or an RFC 3339 date-time; placement rules compare them,
``core/placements/``),
whether it is ``hidden`` (withdrawn, out of stock), when it ``expires_at`` (seconds since the
epoch; news) and an optional ``title``. Records arrive as JSON objects on the items topic or
through ``PUT /items/{item}``; a record *replaces* the item's previous one (it is not a patch),
so replaying the topic from any point gives the same catalogue (last write per item wins, and
the items topic is keyed by item id so one item's records keep their order).

Parsing is strict and bounded, as for events (``domains.py``): a record that breaks a rule is
refused with an :class:`InvalidItem` whose ``reason`` is one of :data:`ITEM_REASONS`; the trainer
sends it to the dead-letter topic, HTTP answers 400. Request-time filtering is in
``itemfilter.py``; this module does no I/O.
"""

from __future__ import annotations

import json
import math
import sys
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..domains import MAX_TS, show
from ..events import strictjson
from ..events.codec import check_id
from ..events.event import MAX_EVENT_BYTES, MAX_ID_BYTES, InvalidEvent

__all__ = [
    "ITEM_REASONS",
    "MAX_ATTRIBUTES",
    "MAX_CATEGORIES",
    "MAX_LABELS",
    "MAX_TEXT_BYTES",
    "Catalogue",
    "InvalidItem",
    "ItemRecord",
    "encode_record",
    "parse_record",
    "parse_record_bytes",
]

#: At most this many categories per item, and labels per item.
MAX_CATEGORIES = 64
MAX_LABELS = 64
MAX_ATTRIBUTES = 64
#: A category, a label key or value and a title are at most this many bytes of UTF-8.
MAX_TEXT_BYTES = 512
#: Changes remembered for `Catalogue.changed_since` (a reader further behind reads it all).
_CHANGES_KEPT = 10_000
_FIELDS = ("item", "categories", "labels", "attributes", "hidden", "expires_at", "title")

#: Every ``InvalidItem.reason`` (the id reasons of ``event.REASONS`` apply to the item id too).
ITEM_REASONS: dict[str, str] = {
    "too_large": f"the record is larger than {MAX_EVENT_BYTES} bytes",
    "bad_encoding": "the record is not valid UTF-8",
    "bad_json": "the record does not parse as JSON",
    "duplicate_key": "a JSON object of the record gives one key twice",
    "malformed": "not a JSON object, an unknown field, or a field of the wrong type",
    "bad_id": "the item id is missing, empty, or differs from the one in the URL",
    "id_too_long": f"the item id is longer than {MAX_ID_BYTES} bytes of UTF-8",
    "control_char": "the item id contains a control character",
    "bad_category": f"a category is empty, longer than {MAX_TEXT_BYTES} bytes, contains a comma "
                    "or a control character, starts or ends with whitespace, or there are more "
                    f"than {MAX_CATEGORIES}",
    "bad_label": f"a label key or value is not a string of at most {MAX_TEXT_BYTES} bytes, or "
                 f"there are more than {MAX_LABELS}",
    "bad_attribute": f"an attribute is not a finite number or an RFC 3339 date-time with a time "
                     f"zone, its name is not a string of at most {MAX_TEXT_BYTES} bytes, or "
                     f"there are more than {MAX_ATTRIBUTES}",
    "bad_title": f"the title is not a string of at most {MAX_TEXT_BYTES} bytes",
    "bad_timestamp": f"expires_at is not a number of seconds in [0, {show(MAX_TS)}]",
}


class InvalidItem(InvalidEvent):
    """A record that cannot become an :class:`ItemRecord`; ``reason`` is in :data:`ITEM_REASONS`.

    A subclass of ``InvalidEvent``, so the dead-letter machinery (headers, counters) takes it
    as it is."""

    def __str__(self) -> str:
        return f"invalid item record ({self.reason}): {self.detail}"


@dataclass(frozen=True, slots=True)
class ItemRecord:
    """One item's record. ``expires_at`` is seconds since the epoch (None: never);
    ``attributes`` maps a name to a float or a timezone-aware ``datetime``."""

    item: str
    categories: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    hidden: bool = False
    expires_at: float | None = None
    title: str | None = None
    attributes: Mapping[str, float | datetime] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        """True once ``now`` (seconds since the epoch) has reached ``expires_at``."""
        return self.expires_at is not None and now >= self.expires_at

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON: the shape :func:`parse_record` reads and ``GET /items`` sends."""
        out: dict[str, Any] = {"item": self.item, "categories": list(self.categories),
                               "labels": dict(self.labels)}
        if self.attributes:  # absent when empty: records and snapshots of before stay alike
            out["attributes"] = {k: _rfc3339(v) if isinstance(v, datetime) else v
                                 for k, v in self.attributes.items()}
        return {**out, "hidden": self.hidden,
                "expires_at": self.expires_at, "title": self.title}


def _text(value: object, reason: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidItem(reason, f"{what} must be a non-empty string, got {value!r:.80}")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidItem(reason, f"{what} is not valid Unicode") from None
    if size > MAX_TEXT_BYTES:
        raise InvalidItem(reason, f"{what} is {size} bytes; the limit is {MAX_TEXT_BYTES}")
    return value


def _categories(raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise InvalidItem("malformed", f"categories must be a list of strings, got {raw!r:.80}")
    if len(raw) > MAX_CATEGORIES:
        raise InvalidItem("bad_category", f"{len(raw)} categories; the limit is {MAX_CATEGORIES}")
    out = []
    for c in raw:
        text = _text(c, "bad_category", "a category")
        if "," in text or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
            raise InvalidItem("bad_category",
                              f"category {text!r:.80} contains a comma or a control character")
        if text != text.strip():  # category= strips its names: " Drama" could never match
            raise InvalidItem("bad_category", f"category {text!r:.80} starts or ends with "
                                              "whitespace (or is only whitespace)")
        out.append(text)
    # Interned: a catalogue repeats a few category names over every item (one str each, not
    # one per record: ~5 MB per worker at 50k items, bench/serving.py).
    return tuple(dict.fromkeys(sys.intern(c) for c in out))  # repeats collapse, order kept


def _labels(raw: object) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise InvalidItem("malformed", f"labels must be an object of strings, got {raw!r:.80}")
    if len(raw) > MAX_LABELS:
        raise InvalidItem("bad_label", f"{len(raw)} labels; the limit is {MAX_LABELS}")
    # Interned keys and values: they repeat across items (a few keys; values such as a year
    # or a studio), and each worker holds every record.
    return {sys.intern(_text(k, "bad_label", "a label key")):
            sys.intern(_text(v, "bad_label", f"label {k!r:.40}")) for k, v in raw.items()}


def _rfc3339(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _attribute(key: str, value: object) -> float | datetime:
    if isinstance(value, bool):
        raise InvalidItem("bad_attribute", f"attribute {key!r:.40} is a boolean; use a label")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise InvalidItem("bad_attribute", f"attribute {key!r:.40} is not finite")
        return float(value)
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            at = None
        if at is not None and at.tzinfo is not None:
            return at
    raise InvalidItem("bad_attribute", f"attribute {key!r:.40} must be a number or an RFC 3339 "
                                       f"date-time with a time zone, got {value!r:.60}; text "
                                       "goes in labels")


def _attributes(raw: object) -> dict[str, float | datetime]:
    if not isinstance(raw, dict):
        raise InvalidItem("malformed", f"attributes must be an object, got {raw!r:.80}")
    if len(raw) > MAX_ATTRIBUTES:
        raise InvalidItem("bad_attribute", f"{len(raw)} attributes; the limit is "
                                           f"{MAX_ATTRIBUTES}")
    return {sys.intern(_text(k, "bad_attribute", "an attribute name")): _attribute(k, v)
            for k, v in raw.items()}


def _expires(raw: object) -> float | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) \
            or not (isinstance(raw, int) or math.isfinite(raw)) or not 0 <= raw <= MAX_TS:
        raise InvalidItem("bad_timestamp", f"expires_at must be seconds in [0, {show(MAX_TS)}], "
                                           f"got {raw!r:.40}")
    return float(raw)


def parse_record(obj: object, item: str | None = None) -> ItemRecord:
    """An :class:`ItemRecord` from a decoded JSON value.

    ``item``, when given (the URL's id), is the record's id; a body naming another id is
    refused. Otherwise the body's ``item`` is required. Unknown fields are refused (a typo such
    as ``hiden`` must not pass silently). Raises :class:`InvalidItem`.
    """
    if not isinstance(obj, dict):
        raise InvalidItem("malformed", f"an item record is a JSON object, got {type(obj).__name__}")
    unknown = sorted(set(obj) - set(_FIELDS))
    if unknown:
        raise InvalidItem("malformed", f"unknown field(s) {unknown!r:.120}; fields are "
                                       f"{', '.join(_FIELDS)}")
    given = obj.get("item")
    if given is not None and not isinstance(given, str):
        raise InvalidItem("bad_id", f"item must be a string, got {given!r:.80}")
    if item is not None and given is not None and given != item:
        raise InvalidItem("bad_id", f"the body names item {given!r:.80}, the URL {item!r:.80}")
    ident = item if item is not None else given
    if ident is None:
        raise InvalidItem("bad_id", "the record has no item id")
    try:
        ident = check_id(ident, "item")
    except InvalidItem:
        raise
    except InvalidEvent as e:
        raise InvalidItem(e.reason, e.detail) from None
    hidden = obj.get("hidden", False)
    if not isinstance(hidden, bool):
        raise InvalidItem("malformed", f"hidden must be true or false, got {hidden!r:.40}")
    title = obj.get("title")
    return ItemRecord(
        item=ident,
        categories=_categories(obj.get("categories", [])),
        labels=_labels(obj.get("labels", {})),
        attributes=_attributes(obj.get("attributes", {})),
        hidden=hidden,
        expires_at=_expires(obj.get("expires_at")),
        title=None if title is None else _text(title, "bad_title", "title"),
    )


def encode_record(record: ItemRecord) -> bytes:
    """``record`` as the items topic's message value: compact UTF-8 JSON that
    :func:`parse_record_bytes` reads back. Raises :class:`InvalidItem` ``too_large`` when it
    is over ``MAX_EVENT_BYTES`` (64 KiB), which every reader of the topic would refuse: 64
    categories and 64 labels of 512 bytes each fit the other rules but not this one."""
    value = json.dumps(record.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidItem("too_large", f"the record is {len(value)} bytes as JSON; the limit is "
                                       f"{MAX_EVENT_BYTES}")
    return value


def parse_record_bytes(value: bytes | None) -> ItemRecord:
    """:func:`parse_record` of a message value (UTF-8 JSON, at most ``MAX_EVENT_BYTES``)."""
    if not value:
        raise InvalidItem("malformed", "the record is empty")
    if len(value) > MAX_EVENT_BYTES:
        raise InvalidItem("too_large", f"{len(value)} bytes; the limit is {MAX_EVENT_BYTES}")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidItem("bad_encoding", f"not UTF-8 at byte {e.start}") from None
    try:
        obj = strictjson.loads(text)
    except strictjson.DuplicateKey as e:
        raise InvalidItem("duplicate_key", str(e)) from None
    except (ValueError, RecursionError) as e:
        raise InvalidItem("bad_json", str(e)) from None
    return parse_record(obj)


class Catalogue:
    """Item id -> :class:`ItemRecord`, with each category's members; thread-safe.

    ``version`` counts changes, so readers can cache what they derive from it (``itemfilter``).
    """

    def __init__(self, records: Iterable[ItemRecord] = ()) -> None:
        self._records: dict[str, ItemRecord] = {}
        self._members: dict[str, set[str]] = {}
        # Kept apart so a filter resolves them without a pass over every record.
        self._hidden: set[str] = set()
        self._expiring: dict[str, float] = {}
        # The version that last changed each category's members (all of them: _reset).
        self._touched: dict[str, int] = {}
        self._reset = 0
        # (version, item) of the latest changes, so a reader can catch up by the difference.
        self._changes: deque[tuple[int, str]] = deque(maxlen=_CHANGES_KEPT)
        self._lock = threading.Lock()
        self.version = 0
        for r in records:
            self.upsert(r)

    def __len__(self) -> int:
        return len(self._records)

    def upsert(self, record: ItemRecord) -> None:
        """Replace (or add) ``record.item``'s record."""
        with self._lock:
            self.version += 1
            self._changes.append((self.version, record.item))
            self._drop(record.item)
            self._add(record)

    def remove(self, item: str) -> bool:
        """Forget ``item``'s record (a deleted item); False when there was none."""
        with self._lock:
            if item not in self._records:
                return False
            self.version += 1
            self._changes.append((self.version, item))
            return self._drop(item)

    def _add(self, record: ItemRecord) -> None:
        self._records[record.item] = record
        for c in record.categories:
            self._members.setdefault(c, set()).add(record.item)
            self._touched[c] = self.version
        if record.hidden:
            self._hidden.add(record.item)
        if record.expires_at is not None:
            self._expiring[record.item] = record.expires_at

    def _drop(self, item: str) -> bool:
        old = self._records.pop(item, None)
        if old is None:
            return False
        self._hidden.discard(item)
        self._expiring.pop(item, None)
        for c in old.categories:
            self._touched[c] = self.version
            members = self._members[c]
            members.discard(item)
            if not members:
                del self._members[c]
        return True

    def get(self, item: str) -> ItemRecord | None:
        return self._records.get(item)

    def changed_since(self, version: int) -> list[str] | None:
        """The items changed after ``version`` (repeats possible); None when the record of
        changes does not reach back that far (or a `replace` came since): read it all."""
        with self._lock:
            if version < self._reset or (version < self.version and (
                    not self._changes or self._changes[0][0] > version + 1)):
                return None
            return [item for v, item in self._changes if v > version]

    def category_version(self, category: str) -> int:
        """The catalogue version that last changed ``category``'s members: a list of them
        derived at a version at or after it is still right."""
        with self._lock:
            return max(self._reset, self._touched.get(category, 0))

    def members(self, category: str) -> frozenset[str]:
        """The ids of the items in ``category`` (empty for a category nobody has)."""
        with self._lock:
            return frozenset(self._members.get(category, ()))

    def hidden(self) -> frozenset[str]:
        """The ids of the hidden items."""
        with self._lock:
            return frozenset(self._hidden)

    def expiring(self) -> dict[str, float]:
        """Item id -> ``expires_at`` (seconds) of every item that has one."""
        with self._lock:
            return dict(self._expiring)

    def records(self) -> list[ItemRecord]:
        """Every record, in id order."""
        with self._lock:
            return [self._records[k] for k in sorted(self._records)]

    def replace(self, other: Catalogue) -> None:
        """Take ``other``'s records (a newer snapshot's catalogue), dropping ours."""
        records = other.records()
        with self._lock:
            self.version += 1
            self._records, self._members, self._hidden, self._expiring = {}, {}, set(), {}
            self._touched, self._reset = {}, self.version
            self._changes.clear()
            for r in records:
                self._add(r)

    def to_bytes(self, offsets: Mapping[int, int]) -> bytes:
        """The catalogue and the items-topic ``offsets`` it holds (next offset to read per
        partition) as UTF-8 JSON: what a snapshot stores."""
        body = {"offsets": {str(p): int(o) for p, o in sorted(offsets.items())},
                "items": [r.to_dict() for r in self.records()]}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple[Catalogue, dict[int, int]]:
        """Read :meth:`to_bytes`' output; ``ValueError`` (an ``InvalidItem`` for a bad record)
        when it is not one."""
        body = json.loads(data.decode("utf-8"))
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ValueError("a catalogue is an object with an 'items' list")
        offsets = {int(p): int(o) for p, o in dict(body.get("offsets") or {}).items()}
        return cls(parse_record(r) for r in body["items"]), offsets
