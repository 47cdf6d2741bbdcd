"""An experiment: a name, a time range, a traffic share and two or more arms.

An **arm** is a scoring configuration over the served snapshot: overrides of the snapshot's
own scoring (``core/scoring/blend.py``'s `ScoringParams`: the blend table ``weights``,
``recencyDecay``, ``recencyHalfLifeSeconds``, ``historyCap``, ``itemItemWeight``). An arm
with no override is the control: it scores as the snapshot does. Its ``weight`` is its share
of the experiment's users, relative to the other arms' (default 1: an even split).

Written as a custom resource's ``spec.experiments`` (camelCase keys, RFC 3339 times)::

    - name: recency
      start: "2026-12-01T00:00:00Z"
      end: "2026-12-15T00:00:00Z"
      traffic: 0.5               # half the users are in the experiment, half are not
      arms:
        - name: control
        - name: no-recency
          scoring: {recencyDecay: 0}

A **placement arm** names a placement (``core/placements/``) instead of, or besides, scoring
overrides: ``placement: <name>``. An experiment with ``placement: P`` tests that placement: it
applies only to requests asking ``placement=P``, and each arm's placement serves them in P's
stead (an arm without one: P itself, the control). An experiment without ``placement``
applies to every list request of its users, and an arm's placement serves the requests that
name none. `parse_experiments` names
the offending field on error (`ExperimentError.path`, e.g. ``[0].arms[1].scoring.historyCap``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from ..scoring.blend import ScoringParams
from ..scoring.scorer import check_weights

__all__ = ["MAX_ARMS", "MAX_EXPERIMENTS", "NAME_PATTERN", "SCORING_KEYS", "Arm", "Experiment",
           "ExperimentError", "parse_experiments", "to_json"]

#: Experiment and arm names: they are Prometheus label values and part of recommendation ids
#: (``.``-separated, never ``:``, which the text event format splits on).
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$"
_NAME = re.compile(NAME_PATTERN)
#: Bounds that keep the exported label sets small.
MAX_EXPERIMENTS, MAX_ARMS = 16, 8
#: An arm's ``scoring`` keys (as the CR's ``spec.scoring`` writes them) -> `ScoringParams` field.
SCORING_KEYS = {"weights": "scorer_weights", "recencyDecay": "recency_decay",
                "recencyHalfLifeSeconds": "recency_half_life", "historyCap": "history_cap",
                "itemItemWeight": "item_item_weight", "sequentialWeight": "sequential_weight"}


class ExperimentError(ValueError):
    """An invalid experiment spec; ``path`` names the field (``[0].arms``), relative to the
    list of experiments."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


@dataclass(frozen=True)
class Arm:
    """One arm: its name, its relative share of the experiment's users and its scoring
    overrides ``((ScoringParams field, value), ...)``; none: the snapshot's own scoring."""

    name: str
    weight: float = 1.0
    scoring: tuple[tuple[str, Any], ...] = ()
    placement: str | None = None

    def scoring_for(self, base: ScoringParams) -> ScoringParams:
        """``base`` (the served snapshot's scoring) with this arm's overrides."""
        return replace(base, **dict(self.scoring)) if self.scoring else base


@dataclass(frozen=True)
class Experiment:
    """An A/B test: users in ``traffic`` (a share in (0, 1]) are split over ``arms`` by
    weight while ``start <= now < end`` (unix seconds). ``salt`` keys the assignment hash
    (default: the name), so two experiments split users independently."""

    name: str
    start: float
    end: float
    traffic: float
    arms: tuple[Arm, ...]
    salt: str = ""
    placement: str | None = None  # the placement it tests (None: every list request)

    def applies(self, placement: str | None) -> bool:
        """Whether a request asking ``placement`` (None: none) is in this experiment."""
        return self.placement is None or self.placement == placement

    @property
    def key(self) -> str:
        return self.salt or self.name

    def running(self, now: float) -> bool:
        return self.start <= now < self.end

    def state(self, now: float) -> str:
        """``scheduled``, ``running`` or ``ended`` at ``now`` (unix seconds)."""
        return "running" if self.running(now) else "scheduled" if now < self.start else "ended"

    def arm(self, name: str) -> Arm | None:
        return next((a for a in self.arms if a.name == name), None)


def _time(value: object, path: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if isinstance(value, datetime):  # YAML reads an unquoted timestamp as one
        if value.tzinfo is None:
            raise ExperimentError(path, f"needs a time zone (e.g. Z), got {value.isoformat()}")
        return value.timestamp()
    if not isinstance(value, str):
        raise ExperimentError(path, "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z")
    try:
        at = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ExperimentError(path, f"must be an RFC 3339 time, got {value!r}") from None
    if at.tzinfo is None:
        raise ExperimentError(path, f"needs a time zone (e.g. Z), got {value!r}")
    return at.timestamp()


def _name(value: object, path: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value):
        raise ExperimentError(path, "must be 1-32 lowercase letters, digits or '-', starting "
                                    f"and ending with a letter or digit, got {value!r}")
    return value


def _number(value: object, path: str, low: float, high: float, *, open_low: bool) -> float:
    bound = f"({low:g}, {high:g}]" if open_low else f"[{low:g}, {high:g}]"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExperimentError(path, f"must be a number in {bound}, got {value!r}")
    x = float(value)
    if not (math.isfinite(x) and (x > low if open_low else x >= low) and x <= high):
        raise ExperimentError(path, f"must be a number in {bound}, got {value!r}")
    return x


def _keys(raw: Mapping[str, Any], allowed: Sequence[str], path: str) -> None:
    for key in raw:
        if key not in allowed:
            raise ExperimentError(f"{path}.{key}", f"unknown field (known: {', '.join(allowed)})")


def _scoring(raw: object, path: str) -> tuple[tuple[str, Any], ...]:
    if not isinstance(raw, Mapping):
        raise ExperimentError(path, "must be an object of scoring overrides")
    _keys(raw, list(SCORING_KEYS), path)
    out: dict[str, Any] = {}
    for key, value in raw.items():
        at = f"{path}.{key}"
        if key == "weights":
            if not isinstance(value, Mapping) or any(
                    isinstance(w, bool) or not isinstance(w, (int, float)) for w in value.values()):
                raise ExperimentError(at, "must map scorer names to numbers")
            table = tuple((str(n), float(w)) for n, w in value.items())
            try:
                check_weights(dict(table))
            except ValueError as e:
                raise ExperimentError(at, str(e)) from None
            value = table
        elif key == "historyCap":
            if isinstance(value, bool) or not isinstance(value, int):
                raise ExperimentError(at, f"must be an integer, got {value!r}")
        elif value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ExperimentError(at, f"must be a number, got {value!r}")
            value = float(value)
        out[SCORING_KEYS[key]] = value
        try:
            ScoringParams(**{SCORING_KEYS[key]: value})
        except (TypeError, ValueError) as e:
            raise ExperimentError(at, str(e)) from None
    return tuple(out.items())


def _arm(raw: object, path: str) -> Arm:
    if not isinstance(raw, Mapping):
        raise ExperimentError(path, "must be an object with a name")
    _keys(raw, ("name", "weight", "scoring", "placement"), path)
    weight = raw.get("weight", 1.0)
    placement = raw.get("placement")
    return Arm(name=_name(raw.get("name"), f"{path}.name"),
               weight=_number(weight, f"{path}.weight", 0.0, 1e6, open_low=True),
               scoring=_scoring(raw.get("scoring", {}), f"{path}.scoring"),
               placement=None if placement is None else _name(placement, f"{path}.placement"))


def _experiment(raw: object, path: str) -> Experiment:
    if not isinstance(raw, Mapping):
        raise ExperimentError(path, "must be an object (name, start, end, traffic, arms)")
    _keys(raw, ("name", "start", "end", "traffic", "arms", "salt", "placement"), path)
    for key in ("name", "start", "end", "arms"):
        if raw.get(key) is None:
            raise ExperimentError(f"{path}.{key}", "is required")
    start, end = _time(raw["start"], f"{path}.start"), _time(raw["end"], f"{path}.end")
    if end <= start:
        raise ExperimentError(f"{path}.end", "must be after start")
    arms = raw["arms"]
    if not isinstance(arms, list) or not 2 <= len(arms) <= MAX_ARMS:
        raise ExperimentError(f"{path}.arms", f"must be a list of 2 to {MAX_ARMS} arms")
    parsed = tuple(_arm(a, f"{path}.arms[{k}]") for k, a in enumerate(arms))
    for k, arm in enumerate(parsed):
        if any(other.name == arm.name for other in parsed[:k]):
            raise ExperimentError(f"{path}.arms[{k}].name", f"repeats the arm {arm.name!r}")
    salt = raw.get("salt", "")
    if not isinstance(salt, str) or len(salt) > 64:
        raise ExperimentError(f"{path}.salt", "must be a string of at most 64 characters")
    placement = raw.get("placement")
    return Experiment(name=_name(raw["name"], f"{path}.name"), start=start, end=end,
                      traffic=_number(raw.get("traffic", 1.0), f"{path}.traffic", 0.0, 1.0,
                                      open_low=True),
                      arms=parsed, salt=salt,
                      placement=None if placement is None
                      else _name(placement, f"{path}.placement"))


def parse_experiments(raw: object) -> tuple[Experiment, ...]:
    """The experiments of a JSON-able list (a CR's ``spec.experiments``, a config file).

    Raises
    ------
    ExperimentError
        Naming the first bad field relative to the list (``[1].traffic``).
    """
    if not isinstance(raw, list):
        raise ExperimentError("", "must be a list of experiments")
    if len(raw) > MAX_EXPERIMENTS:
        raise ExperimentError("", f"must have at most {MAX_EXPERIMENTS} experiments")
    out = tuple(_experiment(e, f"[{k}]") for k, e in enumerate(raw))
    for k, exp in enumerate(out):
        if any(other.name == exp.name for other in out[:k]):
            raise ExperimentError(f"[{k}].name", f"repeats the experiment {exp.name!r}")
    return out


def _rfc3339(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z")


def to_json(experiments: Sequence[Experiment]) -> list[dict[str, Any]]:
    """The experiments as `parse_experiments` reads them back (env vars, results, docs)."""
    back = {v: k for k, v in SCORING_KEYS.items()}
    names = {f.name for f in fields(ScoringParams)}
    out = []
    for e in experiments:
        arms = []
        for a in e.arms:
            scoring = {back[f]: (dict(v) if f == "scorer_weights" else v)
                       for f, v in a.scoring if f in names}
            arm: dict[str, Any] = {"name": a.name, "weight": a.weight, "scoring": scoring}
            if a.placement is not None:
                arm["placement"] = a.placement
            arms.append(arm)
        item: dict[str, Any] = {"name": e.name, "start": _rfc3339(e.start),
                                "end": _rfc3339(e.end), "traffic": e.traffic, "arms": arms}
        if e.salt:
            item["salt"] = e.salt
        if e.placement is not None:
            item["placement"] = e.placement
        out.append(item)
    return out
