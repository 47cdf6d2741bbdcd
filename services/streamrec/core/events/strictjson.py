"""JSON with no silent ambiguity: a key given twice in one object is an error, not "last wins".

``json.loads`` keeps the last of duplicate keys, so ``{"user": "a", "user": "b"}`` would be
read as user b by us and possibly as user a by another reader of the same bytes (RFC 8259 §4
leaves the meaning undefined). Every JSON that enters streamrec from outside (request bodies,
event and item messages on the topics) is read with :func:`loads`, the query string's
``repeated_parameter`` rule applied to JSON.
"""

from __future__ import annotations

import json
from typing import Any


class DuplicateKey(ValueError):
    """A JSON object names ``key`` more than once (a ``ValueError``: callers that report bad
    JSON report this as well, with this message)."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"key {key!r} is given more than once in one JSON object; give it once")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(key)
        out[key] = value
    return out


def loads(text: str | bytes) -> Any:
    """``json.loads`` that refuses duplicate keys at any depth.

    Raises
    ------
    DuplicateKey
        An object names a key twice (the first such key, in document order of its repeat).
    ValueError
        The text is not JSON (``json.JSONDecodeError``) or bytes that are not UTF-8/16/32.
    RecursionError
        Absurdly deep nesting.
    """
    return json.loads(text, object_pairs_hook=_pairs)
