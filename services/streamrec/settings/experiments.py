"""The kind of the ``experiments`` setting: a list of A/B tests (``core/experiments/``).

As text (``--experiments``, ``STREAMREC_EXPERIMENTS``) it is either the list itself in JSON
or YAML (text that starts with ``[`` or ``-``, or spans lines), or the path of a YAML or JSON
file that holds it;
in a custom resource it is ``spec.experiments``, the same list. The rule is
`parse_experiments`'s, so every door reports the same field: ``[0].arms[1].scoring.historyCap``
(after ``spec.experiments`` in a CR, after the flag or variable on the command line).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from streamrec.core.experiments.spec import (
    MAX_ARMS,
    MAX_EXPERIMENTS,
    NAME_PATTERN,
    Experiment,
    ExperimentError,
    parse_experiments,
    to_json,
)

from .kinds import BadValue, Kind

__all__ = ["Experiments", "list_or_file"]

_NUMBER = {"type": "number"}
_SCORING = {"type": "object", "description": "Overrides of the snapshot's scoring (the keys of "
            "spec.scoring); none: the control, scored as the snapshot is.",
            "properties": {"weights": {"type": "object", "additionalProperties": _NUMBER},
                           "recencyDecay": _NUMBER, "recencyHalfLifeSeconds": _NUMBER,
                           "historyCap": {"type": "integer", "minimum": 1},
                           "itemItemWeight": _NUMBER, "sequentialWeight": _NUMBER}}
_ARM = {"type": "object", "required": ["name"],
        "properties": {"name": {"type": "string", "pattern": NAME_PATTERN},
                       "weight": {"type": "number", "minimum": 0,
                                  "description": "Share of the experiment's users, relative to "
                                                 "the other arms' (default 1)."},
                       "scoring": _SCORING,
                       "placement": {"type": "string", "pattern": NAME_PATTERN,
                                     "description": "A placement that serves this arm's "
                                                    "users (docs/placements.md)."}}}
_EXPERIMENT = {"type": "object", "required": ["name", "start", "end", "arms"],
               "properties": {
                   "name": {"type": "string", "pattern": NAME_PATTERN},
                   "start": {"type": "string", "format": "date-time"},
                   "end": {"type": "string", "format": "date-time"},
                   "traffic": {"type": "number", "minimum": 0, "maximum": 1,
                               "description": "Share of all users in the experiment, in (0, 1] "
                                              "(default 1)."},
                   "salt": {"type": "string", "maxLength": 64},
                   "placement": {"type": "string", "pattern": NAME_PATTERN,
                                 "description": "The placement this experiment tests: it "
                                                "applies to requests asking for it only."},
                   "arms": {"type": "array", "minItems": 2, "maxItems": MAX_ARMS,
                            "items": _ARM}}}


def list_or_file(raw: str) -> tuple[str, str | None]:
    """A list setting's text: ``raw`` itself when it is a list in JSON or YAML (it starts
    with ``[`` or ``-``, or spans lines), else the file it names, read; and that path (None for
    inline text). `BadValue` when the file cannot be read."""
    text = raw.strip()
    if text.startswith(("[", "-")) or "\n" in text:
        return text, None
    try:
        return Path(text).read_text(encoding="utf-8"), text
    except OSError as e:
        raise BadValue(f"neither a list nor a readable file: {e}") from None


class Experiments(Kind):
    """A list of experiments: JSON/YAML text or a file's path as text, a list in a CR."""

    says_why = True

    def parse(self, raw: str) -> tuple[Experiment, ...]:
        text, _ = list_or_file(raw)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise BadValue(f"not JSON or YAML: {str(e).splitlines()[0]}") from None
        return self._parsed(value)

    @staticmethod
    def _parsed(value: object) -> tuple[Experiment, ...]:
        try:
            return parse_experiments(value)
        except ExperimentError as e:
            raise BadValue(str(e) if e.path else e.message, e.path) from None

    def problem(self, value: Any) -> str | None:
        if not isinstance(value, tuple) or not all(isinstance(e, Experiment) for e in value):
            return "must be a list of experiments"
        return None

    def from_cr(self, value: object) -> tuple[Experiment, ...]:
        try:
            return parse_experiments(value)
        except ExperimentError as e:
            raise BadValue(e.message, e.path) from None

    def env(self, value: Any) -> str:
        return json.dumps(to_json(value), separators=(",", ":"))

    def show(self, value: Any) -> str:
        return "none" if not value else self.env(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "array", "maxItems": MAX_EXPERIMENTS, "items": _EXPERIMENT}
