"""Item fields in list answers: ``fields=title,categories`` adds catalogue fields to each item.

Every route that answers a list of items (recommendations in all their forms, similar,
popular, because, a user's known items) takes ``fields``: a comma list of catalogue fields
(:data:`FIELDS`) copied from each item's record (``core/catalog/records.py``) into the item's
object,
beside ``item`` and ``score`` (or ``weight``). Without ``fields`` an item is exactly what it
was, ids and scores; so a client asks for what it shows and pays for nothing else (as
Recombee's ``returnProperties``). An item with no record gets the empty record's values:
``title`` and ``expires_at`` null, ``categories`` ``[]``, ``labels`` ``{}``, ``hidden``
false.

The values come from the worker's live catalogue, the one the filters use, so a title changed
through ``PUT /items`` shows in lists as soon as the worker's items follower has read it. The
catalogue is a dict of frozen records; one dict lookup per item is the whole cost (an array
view would need the same id lookup first, and a rebuild at every record change). Parsing is
strict, like ``category``: names are stripped, an empty name or an unknown one is a 400
naming it. No Flask here: the routes pass the raw values in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from streamrec.core.catalog.records import Catalogue, ItemRecord

from .errors import ApiError

__all__ = ["FIELDS", "add_fields", "parse_fields", "parse_fields_body"]

Getter = Callable[[ItemRecord], Any]

#: The fields a list can carry, in the order of an item record (``GET /items/{item}``).
#: Copies of the mutable ones, so an answer never shares state with the catalogue.
_GETTERS: dict[str, Getter] = {
    "categories": lambda r: list(r.categories),
    "labels": lambda r: dict(r.labels),
    "hidden": lambda r: r.hidden,
    "expires_at": lambda r: r.expires_at,
    "title": lambda r: r.title,
}
FIELDS: tuple[str, ...] = tuple(_GETTERS)
#: What an item without a record shows (no categories, no labels, no title, visible).
_NO_RECORD = ItemRecord(item="")


def parse_fields(values: Sequence[str]) -> tuple[str, ...]:
    """The requested field names from request values, each of which may be a comma list.

    Names are stripped of surrounding whitespace and repeats collapse (first order kept).
    Raises `ApiError` 400 ``bad_parameter`` for an empty name (``title,,labels``) and 400
    ``unknown_field`` naming every unknown name and listing :data:`FIELDS`. An empty
    ``values`` is no fields: the answer is ids and scores only.
    """
    names = [n.strip() for raw in values for n in raw.split(",")]
    if "" in names:
        raise ApiError(400, "bad_parameter", f"fields has an empty name (entry "
                                             f"{names.index('') + 1} of {len(names)}); give "
                                             f"comma-separated names of {', '.join(FIELDS)}")
    unknown = sorted({n for n in names if n not in _GETTERS})
    if unknown:
        shown = ", ".join(repr(n[:64]) for n in unknown[:10])
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise ApiError(400, "unknown_field", f"unknown field(s) in fields: {shown}{more}; "
                                             f"the fields are {', '.join(FIELDS)}")
    return tuple(dict.fromkeys(names))


def parse_fields_body(value: object) -> tuple[str, ...]:
    """``fields`` of a JSON body: a list of names or one comma-separated string (as
    ``category``); absent (None) is no fields. Raises `ApiError` 400 ``bad_body`` for another
    type or an empty list, and what `parse_fields` raises."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, "bad_body", "fields must be a list of field names (or one "
                                        "comma-separated string)")
    if not value:
        raise ApiError(400, "bad_body", "fields is an empty list; leave it out for ids and "
                                        "scores only")
    return parse_fields(value)


def add_fields(items: list[dict[str, Any]], fields: Sequence[str],
               catalogue: Catalogue) -> list[dict[str, Any]]:
    """Add ``fields`` (names from :func:`parse_fields`) to each ``{"item": id, ...}`` of
    ``items``, in place, from ``catalogue``; returns ``items``. No fields: unchanged.

    Cost (``bench/fields.py``): a dict lookup per item, or for a record of the snapshot's table
    a read of its arrays; ``labels`` decodes the record's JSON (~6 µs, the last 2048 kept).
    """
    if not fields:
        return items
    getters = [(name, _GETTERS[name]) for name in fields]
    record = catalogue.get if "labels" in fields else catalogue.summary
    for it in items:
        r = record(it["item"]) or _NO_RECORD
        for name, getter in getters:
            it[name] = getter(r)
    return items
