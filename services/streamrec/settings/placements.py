"""The kind of the ``placements`` setting: named serving configurations (``core/placements/``).

As text (``--placements``, ``STREAMREC_PLACEMENTS``) it is either the list itself in JSON or
YAML (text that starts with ``[`` or ``-``, or spans lines), or the path of a YAML or JSON file
holding it. **A file is watched**: serving reads it again when it changes (every
``WATCH_INTERVAL_S``), so a rule change is live on every worker without a restart; a change
that does not parse is refused (logged and counted), and the placements before it stay. In a
custom resource it is ``spec.placements``, the same list; the operator writes it to a ConfigMap
mounted in the serving pods, so a change reaches them without a rollout.

`parse_placements`'s errors name the field: ``[0].boosts[1].when`` (after ``spec.placements``
in a CR, after the flag or variable on the command line).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import yaml

from streamrec.core.experiments.spec import NAME_PATTERN
from streamrec.core.placements.spec import (
    MAX_BOOSTS,
    MAX_PLACEMENTS,
    MAX_ROTATION_SECONDS,
    Placement,
    PlacementError,
    parse_placements,
    to_json,
)

from .experiments import _SCORING, list_or_file
from .kinds import BadValue, Kind

__all__ = ["PlacementSource", "Placements", "read_placements"]

_NUMBER = {"type": "number"}
_EXPR = {"type": "string", "minLength": 1, "maxLength": 2000,
         "description": "A CEL expression over the item record (docs/placements.md)."}
# Open bounds (a share of 0) are the parser's to refuse, naming the field: the CRD's schema
# (OpenAPI v3.0: a boolean exclusiveMinimum) and Helm's (JSON Schema: a number) disagree.
_SHARE = {"type": "number", "minimum": 0, "maximum": 1}
_PLACEMENT = {
    "type": "object", "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": NAME_PATTERN},
        "scoring": _SCORING,
        "filter": _EXPR,
        "excludeSeen": {"type": "boolean"},
        "boosts": {"type": "array", "maxItems": MAX_BOOSTS, "items": {
            "type": "object", "required": ["when"],
            "properties": {"when": _EXPR, "multiply": {"type": "number", "minimum": 0},
                           "add": _NUMBER}}},
        "promotions": {"type": "object", "required": ["filter", "share"],
                       "properties": {"filter": _EXPR, "share": _SHARE}},
        "rotation": {"type": "object", "required": ["seconds"], "properties": {
            "seconds": {"type": "number", "minimum": 0, "maximum": MAX_ROTATION_SECONDS},
            "factor": {"type": "number", "minimum": 0, "maximum": 1},
            "skipWeight": {"type": "number", "minimum": -1, "maximum": 0}}},
        "diversity": {"type": "object", "properties": {
            "maxPerCategory": {"type": "integer", "minimum": 1, "maximum": 1000},
            "mmrLambda": {"type": "number", "minimum": 0, "maximum": 1}}},
        "exploration": {"type": "object", "required": ["share"], "properties": {
            "share": _SHARE, "filter": _EXPR,
            "maxInteractions": {"type": "integer", "minimum": 1}}},
    }}


@dataclass(frozen=True)
class PlacementSource:
    """The placements and, when they came from a file, its ``path`` (watched by serving)."""

    placements: tuple[Placement, ...] = ()
    path: str | None = None

    def named(self, name: str) -> Placement | None:
        return next((p for p in self.placements if p.name == name), None)


def read_placements(text: str) -> tuple[Placement, ...]:
    """The placements of YAML or JSON ``text``; `BadValue` naming the field."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise BadValue(f"not JSON or YAML: {str(e).splitlines()[0]}") from None
    try:
        return parse_placements(value)
    except PlacementError as e:
        raise BadValue(str(e) if e.path else e.message, e.path) from None


class Placements(Kind):
    """A list of placements: JSON/YAML text or a (watched) file's path as text, a CR list."""

    says_why = True

    def parse(self, raw: str) -> PlacementSource:
        text, path = list_or_file(raw)
        return PlacementSource(read_placements(text), path)

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, PlacementSource):
            return "must be a list of placements"
        return None

    def from_cr(self, value: object) -> PlacementSource:
        try:
            return PlacementSource(parse_placements(value))
        except PlacementError as e:
            raise BadValue(e.message, e.path) from None

    def env(self, value: Any) -> str:
        if value.path is not None:
            return str(value.path)
        return json.dumps(to_json(value.placements), separators=(",", ":"))

    def show(self, value: Any) -> str:
        if value.path is not None:
            return f"{value.path} (watched)"
        return "none" if not value.placements else self.env(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "maxItems": MAX_PLACEMENTS, "items": _PLACEMENT}
