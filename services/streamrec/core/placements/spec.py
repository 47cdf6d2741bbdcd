"""A placement: a named serving configuration, "top-n for this user *on this page*".

Written as a custom resource's ``spec.placements`` (camelCase keys), in Helm values, or in the
YAML/JSON file ``streamrec run --placements`` watches::

    - name: home
      scoring: {sequentialWeight: 0}          # the blend table's overrides, as an experiment arm
      filter: "!('Horror' in categories)"     # CEL over the item record: items kept
      excludeSeen: true                       # the user's own items out (default: the request's)
      boosts:
        - when: "'new' in labels && labels.new == 'yes'"
          multiply: 1.5                       # positive scores x1.5, negative / 1.5
        - when: "attributes.price < 10.0"
          add: 0.2                            # + 0.2 (the blend's scale: standard deviations)
      promotions: {filter: "labels.sponsored == 'yes'", share: 0.2}
      rotation: {seconds: 3600, factor: 0.5, skipWeight: -0.1}
      diversity: {maxPerCategory: 3}          # or {mmrLambda: 0.7}
      exploration: {share: 0.1, filter: "now - attributes.published < duration('72h')",
                    maxInteractions: 5}

Every expression is CEL (``expressions.py``), compiled once when the placement is read; the
rest of the request is array work (``rerank.py``). `parse_placements` names the offending field
on error (`PlacementError.path`, e.g. ``[0].boosts[1].when``), relative to the list, as
`core/experiments/spec.py` does for experiments.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ..experiments.spec import SCORING_KEYS, ExperimentError, _keys, _name, _scoring
from ..scoring.blend import ScoringParams
from .expressions import Expression, ExpressionError, compile_expression

__all__ = ["MAX_BOOSTS", "MAX_PLACEMENTS", "MAX_ROTATION_SECONDS", "Boost", "Diversity",
           "Exploration", "Placement", "PlacementError", "Promotion", "Rotation",
           "parse_placements", "to_json"]

#: Bounds: placement names are Prometheus label values; a request walks every boost.
MAX_PLACEMENTS, MAX_BOOSTS = 32, 16
#: The longest rotation window: impressions are kept (and their topic retained) this long.
MAX_ROTATION_SECONDS = 86_400.0
#: A boost's multiplier and addend, and MMR's lambda, stay within these.
MAX_MULTIPLY, MAX_ADD = 100.0, 100.0


class PlacementError(ValueError):
    """An invalid placement; ``path`` names the field (``[0].boosts[1].when``), relative to
    the list of placements."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path, self.message = path, message


@dataclass(frozen=True)
class Boost:
    """Items for which ``when`` is true get ``score' = m·s`` (``s > 0``) or ``s / m``
    (``s <= 0``) with ``m = multiply``, then ``+ add``."""

    when: Expression
    multiply: float = 1.0
    add: float = 0.0


@dataclass(frozen=True)
class Promotion:
    """``share`` of the list's slots (rounded, at least 1) go to the best-scored items that
    pass ``filter`` (and the placement's filter), marked ``promoted``."""

    filter: Expression
    share: float


@dataclass(frozen=True)
class Rotation:
    """Items shown to the user within ``seconds`` are lowered by ``1 − factor`` of the score
    range (``rerank.demote``); ``skip_weight`` < 0 also folds each shown-but-not-clicked
    item in as that much negative feedback (0: off, the default)."""

    seconds: float
    factor: float = 0.5
    skip_weight: float = 0.0


@dataclass(frozen=True)
class Diversity:
    """At most ``max_per_category`` items of any one category, or maximal marginal relevance
    with ``mmr_lambda`` over the item factors (Carbonell & Goldstein 1998); exactly one."""

    max_per_category: int | None = None
    mmr_lambda: float | None = None


@dataclass(frozen=True)
class Exploration:
    """``share`` of the slots go to exploration items: those that pass ``filter`` (e.g. young
    items) or have fewer than ``max_interactions`` events in the window; among the best-scored
    of them, Thompson sampling on their online CTR (``rerank.explore``) picks, marked
    ``exploration``."""

    share: float
    filter: Expression | None = None
    max_interactions: int | None = None


@dataclass(frozen=True)
class Placement:
    """One named serving configuration (see the module docstring)."""

    name: str
    scoring: tuple[tuple[str, Any], ...] = ()
    filter: Expression | None = None
    exclude_seen: bool | None = None
    boosts: tuple[Boost, ...] = ()
    promotion: Promotion | None = None
    rotation: Rotation | None = None
    diversity: Diversity | None = None
    exploration: Exploration | None = None

    def scoring_for(self, base: ScoringParams) -> ScoringParams:
        """``base`` with this placement's scoring overrides (as `Arm.scoring_for`)."""
        return replace(base, **dict(self.scoring)) if self.scoring else base

    def expressions(self) -> list[Expression]:
        """Every expression of the placement, in spec order."""
        out = [] if self.filter is None else [self.filter]
        out += [b.when for b in self.boosts]
        if self.promotion is not None:
            out.append(self.promotion.filter)
        if self.exploration is not None and self.exploration.filter is not None:
            out.append(self.exploration.filter)
        return out


def _number(value: object, path: str, low: float, high: float, *, open_low: bool = False,
            open_high: bool = False) -> float:
    lo, hi = "(" if open_low else "[", ")" if open_high else "]"
    bound = f"{lo}{low:g}, {high:g}{hi}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not math.isfinite(float(value)):
        raise PlacementError(path, f"must be a number in {bound}, got {value!r:.60}")
    x = float(value)
    if (x <= low if open_low else x < low) or (x >= high if open_high else x > high):
        raise PlacementError(path, f"must be a number in {bound}, got {value!r:.60}")
    return x


def _integer(value: object, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise PlacementError(path, f"must be an integer in [{low}, {high}], got {value!r:.60}")
    return value


def _object(raw: object, path: str, allowed: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise PlacementError(path, f"must be an object ({', '.join(allowed)})")
    try:
        _keys(raw, allowed, path)
    except ExperimentError as e:
        raise PlacementError(e.path, e.message) from None
    return raw


def _expression(raw: object, path: str) -> Expression:
    try:
        return compile_expression(raw, path)
    except ExpressionError as e:
        raise PlacementError(path, str(e)) from None


def _boost(raw: object, path: str) -> Boost:
    r = _object(raw, path, ("when", "multiply", "add"))
    if r.get("when") is None:
        raise PlacementError(f"{path}.when", "is required")
    if "multiply" not in r and "add" not in r:
        raise PlacementError(path, "needs multiply, add or both")
    return Boost(when=_expression(r["when"], f"{path}.when"),
                 multiply=_number(r.get("multiply", 1.0), f"{path}.multiply", 0.0, MAX_MULTIPLY,
                                  open_low=True),
                 add=_number(r.get("add", 0.0), f"{path}.add", -MAX_ADD, MAX_ADD))


def _promotion(raw: object, path: str) -> Promotion:
    r = _object(raw, path, ("filter", "share"))
    for key in ("filter", "share"):
        if r.get(key) is None:
            raise PlacementError(f"{path}.{key}", "is required")
    return Promotion(_expression(r["filter"], f"{path}.filter"),
                     _number(r["share"], f"{path}.share", 0.0, 1.0, open_low=True))


def _rotation(raw: object, path: str) -> Rotation:
    r = _object(raw, path, ("seconds", "factor", "skipWeight"))
    if r.get("seconds") is None:
        raise PlacementError(f"{path}.seconds", "is required")
    return Rotation(_number(r["seconds"], f"{path}.seconds", 0.0, MAX_ROTATION_SECONDS,
                            open_low=True),
                    _number(r.get("factor", 0.5), f"{path}.factor", 0.0, 1.0, open_high=True),
                    _number(r.get("skipWeight", 0.0), f"{path}.skipWeight", -1.0, 0.0))


def _diversity(raw: object, path: str) -> Diversity:
    r = _object(raw, path, ("maxPerCategory", "mmrLambda"))
    if ("maxPerCategory" in r) == ("mmrLambda" in r):
        raise PlacementError(path, "needs exactly one of maxPerCategory and mmrLambda")
    if "maxPerCategory" in r:
        return Diversity(max_per_category=_integer(r["maxPerCategory"],
                                                   f"{path}.maxPerCategory", 1, 1000))
    return Diversity(mmr_lambda=_number(r["mmrLambda"], f"{path}.mmrLambda", 0.0, 1.0))


def _exploration(raw: object, path: str) -> Exploration:
    r = _object(raw, path, ("share", "filter", "maxInteractions"))
    if r.get("share") is None:
        raise PlacementError(f"{path}.share", "is required")
    if r.get("filter") is None and r.get("maxInteractions") is None:
        raise PlacementError(path, "needs filter, maxInteractions or both (which items are "
                                   "new enough to explore)")
    return Exploration(
        _number(r["share"], f"{path}.share", 0.0, 1.0, open_low=True),
        None if r.get("filter") is None else _expression(r["filter"], f"{path}.filter"),
        None if r.get("maxInteractions") is None
        else _integer(r["maxInteractions"], f"{path}.maxInteractions", 1, 10**9))


_FIELDS = ("name", "scoring", "filter", "excludeSeen", "boosts", "promotions", "rotation",
           "diversity", "exploration")


def _placement(raw: object, path: str) -> Placement:
    r = _object(raw, path, _FIELDS)
    if r.get("name") is None:
        raise PlacementError(f"{path}.name", "is required")
    try:
        name = _name(r["name"], f"{path}.name")
        scoring = _scoring(r.get("scoring") or {}, f"{path}.scoring")
    except ExperimentError as e:
        raise PlacementError(e.path, e.message) from None
    seen = r.get("excludeSeen")
    if seen is not None and not isinstance(seen, bool):
        raise PlacementError(f"{path}.excludeSeen", f"must be true or false, got {seen!r:.40}")
    boosts = r.get("boosts") or []
    if not isinstance(boosts, list) or len(boosts) > MAX_BOOSTS:
        raise PlacementError(f"{path}.boosts", f"must be a list of at most {MAX_BOOSTS} boosts")
    return Placement(
        name=name, scoring=scoring,
        filter=None if r.get("filter") is None else _expression(r["filter"], f"{path}.filter"),
        exclude_seen=seen,
        boosts=tuple(_boost(b, f"{path}.boosts[{k}]") for k, b in enumerate(boosts)),
        promotion=None if r.get("promotions") is None
        else _promotion(r["promotions"], f"{path}.promotions"),
        rotation=None if r.get("rotation") is None
        else _rotation(r["rotation"], f"{path}.rotation"),
        diversity=None if r.get("diversity") is None
        else _diversity(r["diversity"], f"{path}.diversity"),
        exploration=None if r.get("exploration") is None
        else _exploration(r["exploration"], f"{path}.exploration"))


def parse_placements(raw: object) -> tuple[Placement, ...]:
    """The placements of a JSON-able list (a CR's ``spec.placements``, a file).

    Raises
    ------
    PlacementError
        Naming the first bad field relative to the list (``[1].rotation.factor``): a wrong
        type or range, an unknown key, a repeated name, or a CEL expression that does not
        compile or names a variable or function placements do not have.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise PlacementError("", "must be a list of placements")
    if len(raw) > MAX_PLACEMENTS:
        raise PlacementError("", f"must have at most {MAX_PLACEMENTS} placements")
    out = tuple(_placement(p, f"[{k}]") for k, p in enumerate(raw))
    for k, p in enumerate(out):
        if any(other.name == p.name for other in out[:k]):
            raise PlacementError(f"[{k}].name", f"repeats the placement {p.name!r}")
    return out


def to_json(placements: tuple[Placement, ...]) -> list[dict[str, Any]]:
    """The placements as `parse_placements` reads them back (env vars, ``GET /placements``)."""
    back = {v: k for k, v in SCORING_KEYS.items()}
    out = []
    for p in placements:
        item: dict[str, Any] = {"name": p.name}
        if p.scoring:
            item["scoring"] = {back[f]: (dict(v) if f == "scorer_weights" else v)
                               for f, v in p.scoring}
        if p.filter is not None:
            item["filter"] = p.filter.source
        if p.exclude_seen is not None:
            item["excludeSeen"] = p.exclude_seen
        if p.boosts:
            item["boosts"] = [{"when": b.when.source, "multiply": b.multiply, "add": b.add}
                              for b in p.boosts]
        if p.promotion is not None:
            item["promotions"] = {"filter": p.promotion.filter.source, "share": p.promotion.share}
        if p.rotation is not None:
            item["rotation"] = {"seconds": p.rotation.seconds, "factor": p.rotation.factor,
                                "skipWeight": p.rotation.skip_weight}
        if p.diversity is not None:
            item["diversity"] = ({"maxPerCategory": p.diversity.max_per_category}
                                 if p.diversity.max_per_category is not None
                                 else {"mmrLambda": p.diversity.mmr_lambda})
        if p.exploration is not None:
            e = p.exploration
            item["exploration"] = {"share": e.share, **({"filter": e.filter.source}
                                                        if e.filter is not None else {}),
                                   **({"maxInteractions": e.max_interactions}
                                      if e.max_interactions is not None else {})}
        out.append(item)
    return out
