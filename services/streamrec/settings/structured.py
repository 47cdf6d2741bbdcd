"""Kinds of the settings table for values that are more than one scalar: the feedback
table, lists, structured CR objects, and strings checked by a rule of their own (see
``kinds.py`` for what a kind does)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streamrec.core.events.feedback import (
    MAX_TYPES,
    FeedbackError,
    check_table,
    format_table,
    merge_table,
    parse_table,
)
from streamrec.core.scoring.blend import MAX_SCORER_WEIGHT, ScoringParams
from streamrec.core.scoring.scorer import check_weights

from .kinds import BadValue, Kind

__all__ = ["Bind", "Checked", "Feedback", "Listed", "Opaque", "ScorerWeights", "StoreUrl"]


class Feedback(Kind):
    """The feedback table ``type -> weight`` (``core.feedback``): ``type=weight,...`` as text,
    merged over the defaults; a map in a CR (overrides, merged by the services)."""

    says_why = True

    def parse(self, raw: str) -> tuple[tuple[str, float], ...]:
        return tuple(merge_table(parse_table(raw)).items())

    def problem(self, value: Any) -> str | None:
        try:
            check_table(dict(value))
        except (FeedbackError, TypeError, ValueError) as e:
            return str(e)
        return None

    def from_cr(self, value: object) -> tuple[tuple[str, float], ...]:
        if not isinstance(value, Mapping):
            raise BadValue("must be a map of feedback type to weight")
        try:
            return tuple(check_table(value).items())
        except FeedbackError as e:
            raise BadValue(str(e)) from None

    def env(self, value: Any) -> str:
        return format_table(dict(value))

    def show(self, value: Any) -> str:
        return "none" if value is None else format_table(dict(value))

    def schema(self) -> dict[str, Any]:
        return {"type": "object", "maxProperties": MAX_TYPES,
                "additionalProperties": {"type": "number", "minimum": -1000000,
                                         "maximum": 1000000}}


class ScorerWeights(Kind):
    """The blend table ``scorer -> weight`` (``core/scoring/scorer.py``, ``blend.py``):
    ``als=0.7,item_item=0.3`` as text, a map in a CR. Each name a registered scorer, each
    weight in [0, ``MAX_SCORER_WEIGHT``], at least one > 0; a scorer left out weighs 0."""

    says_why = True

    def _checked(self, table: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
        try:
            out = tuple((str(k), float(v)) for k, v in table.items())
        except (TypeError, ValueError):
            raise BadValue("must map scorer names to numbers") from None
        try:
            check_weights(dict(out))
            ScoringParams(scorer_weights=out)
        except ValueError as e:
            raise BadValue(str(e)) from None
        return out

    def parse(self, raw: str) -> tuple[tuple[str, float], ...]:
        table: dict[str, str] = {}
        for entry in (e.strip() for e in raw.split(",")):
            name, eq, weight = entry.partition("=")
            if not eq or not name.strip():
                raise BadValue(f"expected scorer=weight, got {entry!r}")
            table[name.strip()] = weight.strip()
        return self._checked(table)

    def problem(self, value: Any) -> str | None:
        try:
            self._checked(dict(value))
        except (BadValue, TypeError, ValueError) as e:
            return str(e)
        return None

    def from_cr(self, value: object) -> tuple[tuple[str, float], ...]:
        if not isinstance(value, Mapping):
            raise BadValue("must be a map of scorer name to weight")
        if any(isinstance(v, bool) for v in value.values()):
            raise BadValue("must map scorer names to numbers")
        return self._checked(value)

    def env(self, value: Any) -> str:
        return ",".join(f"{k}={v:g}" for k, v in dict(value).items())

    def show(self, value: Any) -> str:
        return "none" if value is None else self.env(value)

    def schema(self) -> dict[str, Any]:
        # Names and "at least one > 0" are the parser's checks: a CRD has no propertyNames,
        # and a new scorer must not change the generated schemas.
        return {"type": "object",
                "additionalProperties": {"type": "number", "minimum": 0,
                                         "maximum": MAX_SCORER_WEIGHT}}


@dataclass(frozen=True)
class Listed(Kind):
    """A list of strings: comma-separated as text, an array in a CR. ``item`` normalises one
    entry (``ValueError`` naming the problem); the result keeps the order, without repeats.
    ``noun`` says what an entry is, for messages (``origins like https://host[:port]``)."""

    item: Callable[[str], str]
    item_schema: Mapping[str, Any]
    max_items: int
    noun: str
    says_why = True

    def _items(self, entries: list[str]) -> tuple[str, ...]:
        out: list[str] = []
        for entry in entries:
            value = self.item(entry)
            if value not in out:
                out.append(value)
        return tuple(out)

    def parse(self, raw: str) -> tuple[str, ...]:
        entries = raw.split(",")
        if any(not e.strip() for e in entries):
            raise ValueError(f"empty entry in {raw!r}; give comma-separated {self.noun}")
        return self._items(entries)

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, tuple) or len(value) > self.max_items:
            return f"must be at most {self.max_items} {self.noun}"
        try:
            if self._items(list(value)) != value:
                return f"must be normalised {self.noun} without repeats"
        except (TypeError, ValueError, AttributeError) as e:
            return str(e)
        return None

    def from_cr(self, value: object) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise BadValue(f"must be a list of {self.noun}")
        if len(value) > self.max_items:
            raise BadValue(f"must have at most {self.max_items} entries")
        for k, entry in enumerate(value):
            if not isinstance(entry, str):
                raise BadValue(f"must be a string: one of the {self.noun}", f"[{k}]")
            try:
                self.item(entry)
            except ValueError as e:
                raise BadValue(str(e), f"[{k}]") from None
        return self._items(value)

    def env(self, value: Any) -> str:
        return ",".join(value)

    def show(self, value: Any) -> str:
        return "none" if not value else ",".join(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "maxItems": self.max_items, "items": dict(self.item_schema)}


@dataclass(frozen=True)
class Checked(Kind):
    """A string checked by ``check`` (``ValueError`` naming the problem), e.g. a key's length."""

    check: Callable[[str], object]
    says_why = True

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return "must be a non-empty string"
        try:
            self.check(value)
        except ValueError as e:
            return str(e)
        return None


@dataclass(frozen=True)
class Opaque(Kind):
    """A structured CR value whose schema is given as is and whose consumer checks it
    (container resources: ``operator.spec``)."""

    fragment: Mapping[str, Any]

    def schema(self) -> dict[str, Any]:
        return dict(self.fragment)


class Bind(Kind):
    """``HOST:PORT`` to listen on."""

    def problem(self, value: Any) -> str | None:
        _host, sep, port = str(value).rpartition(":")
        if not sep or not (port.isascii() and port.isdigit() and int(port) <= 65535):
            return "must be HOST:PORT with a port in 0..65535"
        return None


class StoreUrl(Kind):
    """``s3://bucket[/prefix]`` or a directory."""

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, str) or not value:
            return "must be s3://bucket/prefix or a directory"
        if value.startswith("s3://") and not value[5:].split("/", 1)[0]:
            return "s3 URL needs a bucket"
        return None
