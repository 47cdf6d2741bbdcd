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
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from ..domains import MAX_TS, show
from ..events import strictjson
from ..events.codec import check_id
from ..events.event import MAX_EVENT_BYTES, MAX_ID_BYTES, InvalidEvent
from ..ids import IdIndex
from .table import CatalogueTable, TableRow

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
_NO_ROWS: npt.NDArray[np.int32] = np.empty(0, dtype=np.int32)
#: The labels and attributes of a `Catalogue.summary` (shared, read-only).
_NONE: Mapping[str, Any] = MappingProxyType({})
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


def _stored(base: CatalogueTable, row: int) -> ItemRecord:
    """Row ``row`` of ``base`` as a record. The table was written from parsed records and its
    file checked against the manifest's sha256, so the rules are not checked again (a decode
    costs ~5 µs instead of ~22); categories, hidden and expiry come from the arrays."""
    d = base.record_json(row)
    at = float(base.expires_at[row])
    attributes = d.get("attributes")
    return ItemRecord(
        item=base.ids[row], categories=base.categories_of(row),
        labels={sys.intern(k): sys.intern(v) for k, v in (d.get("labels") or {}).items()},
        hidden=bool(base.hidden[row]), expires_at=None if math.isnan(at) else at,
        title=d.get("title"),
        attributes={sys.intern(k): _attribute(k, v) for k, v in attributes.items()}
        if attributes else {})


class Catalogue:
    """Item id -> :class:`ItemRecord`, with each category's members; thread-safe.

    A catalogue read from a snapshot of format 8 or later rests on that snapshot's
    :class:`~.table.CatalogueTable` (``base``): memory-mapped arrays every worker shares, its
    records decoded only when asked for (the last ``DECODED_KEPT`` kept). Changes since
    (``upsert``, ``remove``) are Python records over it; a base row they replace or remove is
    marked dropped. ``version`` counts changes, so readers can cache what they derive from it
    (``filters.py``); the ``*_parts`` methods give what they need as base rows plus overlay
    ids, without a Python object per base record.
    """

    #: Decoded base records kept per catalogue (``fields=``, ``GET /items`` repeat items).
    DECODED_KEPT = 2048

    def __init__(self, records: Iterable[ItemRecord] = (),
                 base: CatalogueTable | None = None) -> None:
        self._base = base
        # Base rows replaced or removed since (a bool per base row, and how many are set).
        self._dropped = np.zeros(0 if base is None else len(base), dtype=np.bool_)
        self._dropped_count = 0
        self._decoded: OrderedDict[int, ItemRecord] = OrderedDict()
        self._briefs: OrderedDict[int, ItemRecord] = OrderedDict()  # `summary`'s, as many
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

    @property
    def base(self) -> CatalogueTable | None:
        """The snapshot table this catalogue rests on (None: records only)."""
        return self._base

    def __len__(self) -> int:
        base = 0 if self._base is None else len(self._base) - self._dropped_count
        return base + len(self._records)

    def _base_row(self, item: str) -> int | None:
        """``item``'s row in the base, unless it was replaced or removed since."""
        if self._base is None:
            return None
        row = self._base.row(item)
        return None if row is None or self._dropped[row] else row

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
            if item not in self._records and self._base_row(item) is None:
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
        row = self._base_row(item)
        if row is not None:
            self._dropped[row] = True
            self._dropped_count += 1
            self._decoded.pop(row, None)
            self._briefs.pop(row, None)
            for c in self._base.categories_of(row):  # type: ignore[union-attr]
                self._touched[c] = self.version
            return True
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

    def get(self, item: str, keep: bool = True) -> ItemRecord | None:
        """``item``'s record, or None. A base record is decoded from the table; ``keep=False``
        does not keep it among the recently decoded (a pass over every item)."""
        found = self._records.get(item)
        if found is not None or self._base is None:
            return found
        with self._lock:
            row = self._base_row(item)
            if row is None:
                return None
            cached = self._decoded.get(row)
            if cached is not None:
                self._decoded.move_to_end(row)
                return cached
            base = self._base
        record = _stored(base, row)
        if keep:
            self._remember(self._decoded, base, row, record)
        return record

    def _remember(self, cache: OrderedDict[int, ItemRecord], base: CatalogueTable, row: int,
                  record: ItemRecord) -> None:
        """Keep ``record`` of ``base``'s ``row`` in ``cache`` (newest last, at most
        ``DECODED_KEPT``), unless a replace or a drop came in while it was read unlocked."""
        with self._lock:
            if base is self._base and not self._dropped[row]:
                cache[row] = record
                if len(cache) > self.DECODED_KEPT:
                    cache.popitem(last=False)

    def summary(self, item: str) -> ItemRecord | None:
        """``item``'s record, or None, right in every field but ``labels`` and ``attributes``:
        a base record is read from the arrays alone with those two empty, no JSON decoded
        (~2 µs; what a list's ``fields`` other than ``labels`` read)."""
        found = self._records.get(item)
        if found is not None or self._base is None:
            return found
        with self._lock:
            row = self._base_row(item)
            base = self._base
            if row is None or base is None:
                return None
            kept = self._decoded.get(row) or self._briefs.get(row)
            if kept is not None:
                return kept
        at = float(base.expires_at[row])
        brief = ItemRecord(item, base.categories_of(row), _NONE, bool(base.hidden[row]),
                           None if math.isnan(at) else at, base.title_of(row), _NONE)
        self._remember(self._briefs, base, row, brief)
        return brief

    def categories_of(self, item: str) -> tuple[str, ...]:
        """``item``'s categories (none without a record), without decoding a base record."""
        found = self._records.get(item)
        if found is not None or self._base is None:
            return () if found is None else found.categories
        with self._lock:
            row = self._base_row(item)
            return () if row is None else self._base.categories_of(row)

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

    def _live(self, rows: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        return rows[~self._dropped[rows]] if self._dropped_count else rows

    def member_parts(self, category: str
                     ) -> tuple[CatalogueTable | None, npt.NDArray[np.int32], frozenset[str]]:
        """``category``'s members as (the base, its live rows ascending, the other ids)."""
        with self._lock:
            rows = (_NO_ROWS if self._base is None
                    else self._live(self._base.category_rows(category)))
            return self._base, rows, frozenset(self._members.get(category, ()))

    def members(self, category: str) -> frozenset[str]:
        """The ids of the items in ``category`` (empty for a category nobody has)."""
        base, rows, others = self.member_parts(category)
        if base is None or not len(rows):
            return others
        return others | frozenset(base.ids[int(r)] for r in rows)

    def hidden_parts(self) -> tuple[CatalogueTable | None, npt.NDArray[np.int32], frozenset[str]]:
        """The hidden items as (the base, its live hidden rows, the other ids)."""
        with self._lock:
            rows = _NO_ROWS if self._base is None else self._live(
                np.flatnonzero(self._base.hidden).astype(np.int32))
            return self._base, rows, frozenset(self._hidden)

    def hidden(self) -> frozenset[str]:
        """The ids of the hidden items."""
        base, rows, others = self.hidden_parts()
        return others if base is None else others | frozenset(base.ids[int(r)] for r in rows)

    def expiring_parts(self) -> tuple[CatalogueTable | None, npt.NDArray[np.int32],
                                      dict[str, float]]:
        """The items with an ``expires_at`` as (the base, its live rows with one, the other
        ids -> ``expires_at``); the base's times are ``base.expires_at[rows]``."""
        with self._lock:
            rows = _NO_ROWS if self._base is None else self._live(
                np.flatnonzero(~np.isnan(self._base.expires_at)).astype(np.int32))
            return self._base, rows, dict(self._expiring)

    def expiring(self) -> dict[str, float]:
        """Item id -> ``expires_at`` (seconds) of every item that has one."""
        base, rows, others = self.expiring_parts()
        if base is None:
            return others
        return {**{base.ids[int(r)]: float(base.expires_at[r]) for r in rows}, **others}

    def items(self) -> list[str]:
        """Every item id with a record, in id order (no record decoded)."""
        with self._lock:
            ids = list(self._records)
            if self._base is not None:
                live = np.flatnonzero(~self._dropped) if self._dropped_count else None
                every = self._base.ids.tolist()
                ids += every if live is None else [every[r] for r in live]
        return sorted(ids)  # code point order: UTF-8 byte order, the table's

    def records(self) -> list[ItemRecord]:
        """Every record, in id order (each base record decoded: for writers and tests)."""
        out = []
        for item in self.items():
            record = self.get(item, keep=False)
            if record is not None:
                out.append(record)
        return out

    def replace(self, other: Catalogue) -> None:
        """Take ``other``'s records (a newer snapshot's catalogue), dropping ours: its base is
        shared, not copied."""
        with other._lock:
            base, dropped, count = other._base, other._dropped.copy(), other._dropped_count
            records = list(other._records.values())
        with self._lock:
            self.version += 1
            self._base, self._dropped, self._dropped_count = base, dropped, count
            self._decoded, self._briefs = OrderedDict(), OrderedDict()
            self._records, self._members, self._hidden, self._expiring = {}, {}, set(), {}
            self._touched, self._reset = {}, self.version
            self._changes.clear()
            for r in records:
                self._add(r)

    def copy(self) -> Catalogue:
        """A catalogue holding the same records, sharing the base table and the (frozen)
        records: O(changes since the base), so a trainer can take it under its lock and
        write its arrays outside it."""
        out = Catalogue()
        out.replace(self)
        return out

    def to_arrays(self, offsets: Mapping[int, int],
                  model_ids: IdIndex | None = None) -> dict[str, npt.NDArray[Any]]:
        """The catalogue and the items-topic ``offsets`` it holds (next offset to read per
        partition) as a table's arrays (``table.py``): what a snapshot of format 8 stores,
        with each record's row in ``model_ids`` (the snapshot's model) when given. Base rows
        are copied as stored, not decoded."""
        with self._lock:
            rows = [] if self._base is None else [
                self._base.table_row(int(r)) for r in np.flatnonzero(~self._dropped)]
            rows += [TableRow(r.item, encode_record(r), r.hidden, r.expires_at, r.categories,
                              r.title) for r in self._records.values()]
        return CatalogueTable.build(rows, offsets, model_ids)

    @classmethod
    def from_arrays(cls, a: Mapping[str, npt.NDArray[Any]]) -> tuple[Catalogue, dict[int, int]]:
        """A catalogue resting on the table in ``a`` (:meth:`to_arrays`' arrays, mapped or
        not) and the offsets it holds; ``ValueError`` when they do not fit together."""
        table = CatalogueTable(a)
        return cls(base=table), dict(table.item_offsets)

    def to_bytes(self, offsets: Mapping[int, int]) -> bytes:
        """The catalogue and its ``offsets`` as UTF-8 JSON: what snapshots of formats 4 to 7
        stored (kept to write such snapshots in tests of reading them)."""
        body = {"offsets": {str(p): int(o) for p, o in sorted(offsets.items())},
                "items": [r.to_dict() for r in self.records()]}
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    @classmethod
    def from_bytes(cls, data: bytes) -> tuple[Catalogue, dict[int, int]]:
        """Read :meth:`to_bytes`' output (a snapshot of format 4 to 7); ``ValueError`` (an
        ``InvalidItem`` for a bad record) when it is not one."""
        body = json.loads(data.decode("utf-8"))
        if not isinstance(body, dict) or not isinstance(body.get("items"), list):
            raise ValueError("a catalogue is an object with an 'items' list")
        offsets = {int(p): int(o) for p, o in dict(body.get("offsets") or {}).items()}
        return cls(parse_record(r) for r in body["items"]), offsets
