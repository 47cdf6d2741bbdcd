"""The query parameters of list routes, parsed into the live model's `ListQuery`."""

from __future__ import annotations

from typing import Any

from flask import request

from streamrec.core.catalog.filters import ItemFilter, parse_filter

from ..live.answers import ListQuery
from .context import live
from .errors import ApiError, parse_bool, parse_list, parse_n
from .fields import add_fields, parse_fields

__all__ = ["FIELDS_KEY", "FILTER_KEYS", "LIST_KEYS", "REC_KEYS", "item_filter", "list_query",
           "query_fields", "query_filter", "scored", "with_fields"]

#: The catalogue filter (``core/catalog/filters.py``), taken by every list-returning route.
FILTER_KEYS = ("category", "category_mode")
#: Catalogue fields added to each listed item (``fields.py``), taken by every list route.
FIELDS_KEY = "fields"
#: Similar and popular items: no user, so no seen items and no whitelist. Every list route
#: takes ``placement`` (``placements.py``).
LIST_KEYS = ("n", "exclude", *FILTER_KEYS, FIELDS_KEY, "placement")
REC_KEYS = ("n", "exclude_seen", "items", "exclude", *FILTER_KEYS, FIELDS_KEY, "placement")


def item_filter(categories: list[str] | None, mode: str | None) -> ItemFilter | None:
    """The request's catalogue filter; None when it asks for no category (a bad
    ``category_mode`` is a 400 all the same)."""
    try:
        flt = parse_filter(categories or [], mode)
    except ValueError as e:
        raise ApiError(400, "bad_parameter", str(e)) from None
    return flt if flt.categories else None


def query_filter() -> ItemFilter | None:
    return item_filter(parse_list(request.args.get("category"), "category"),
                       request.args.get("category_mode"))


def query_fields() -> tuple[str, ...]:
    """The request's ``fields`` query parameter, parsed (``fields.py``); () when absent."""
    raw = request.args.get(FIELDS_KEY)
    return parse_fields([raw] if raw is not None else [])


def with_fields(items: list[dict[str, Any]], fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """``items`` with the catalogue ``fields`` of each (unchanged without fields)."""
    return add_fields(items, fields, live().catalogue)


def list_query(personal: bool = True) -> ListQuery:
    """The query string's `ListQuery` (``personal``: with ``exclude_seen`` and ``items``),
    parsed in the order the parameters are documented: the first bad one is reported."""
    a = request.args
    n = parse_n(a.get("n"))
    if not personal:
        return ListQuery(n=n, exclude=parse_list(a.get("exclude"), "exclude"),
                         filter=query_filter())
    return ListQuery(n=n, exclude_seen=parse_bool(a.get("exclude_seen"), "exclude_seen", True),
                     items=parse_list(a.get("items"), "items"),
                     exclude=parse_list(a.get("exclude"), "exclude"), filter=query_filter())


def scored(items: list[str], scores: list[float],
           marks: list[str | None] | None = None) -> list[dict[str, Any]]:
    """A list as the API shows it: ``[{"item", "score"}]``, plus ``"mark"`` (``promoted``,
    ``exploration``) on the items a placement put in those slots."""
    out = [{"item": i, "score": s} for i, s in zip(items, scores, strict=True)]
    for entry, mark in zip(out, marks or (), strict=False):
        if mark is not None:
            entry["mark"] = mark
    return out
