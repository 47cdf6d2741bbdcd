"""``spec.scoring`` of a RecommenderService: recency, the item-item model and the blend.

Parsed like the rest of the spec (every error names the field) and turned into the
``STREAMREC_RECENCY_*`` / ``STREAMREC_ITEM_ITEM_*`` variables of docs/configuration.md. The
defaults are the service's own (``core/blend.py``, ``core/ease.py``: tuned on a validation
stream, see docs/evaluation.md), so a CR that says nothing scores as ``streamrec run`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamrec.core.blend import ScoringParams
from streamrec.core.ease import ItemItemParams

from .fields import Fields, InvalidSpec

__all__ = ["ScoringSpec", "parse_scoring", "scoring_env"]

_S = ScoringParams()
_I = ItemItemParams()


@dataclass(frozen=True)
class ScoringSpec:
    recency_decay: float = _S.recency_decay
    recency_half_life_seconds: float | None = _S.recency_half_life
    history_cap: int = _S.history_cap
    item_item_weight: float = _S.item_item_weight
    item_item_l2: float = _I.l2
    item_item_max_dense_items: int = _I.max_dense_items
    item_item_neighbours: int = _I.neighbours


def parse_scoring(f: Fields) -> ScoringSpec:
    out = ScoringSpec(
        recency_decay=f.number("recencyDecay", _S.recency_decay, minimum=0.0),
        recency_half_life_seconds=f.optional_number("recencyHalfLifeSeconds", minimum=1.0),
        history_cap=f.integer("historyCap", _S.history_cap, minimum=1),
        item_item_weight=f.number("itemItemWeight", _S.item_item_weight, minimum=0.0),
        item_item_l2=f.number("itemItemL2", _I.l2, minimum=0.0),
        item_item_max_dense_items=f.integer("itemItemMaxDenseItems", _I.max_dense_items,
                                            minimum=0),
        item_item_neighbours=f.integer("itemItemNeighbours", _I.neighbours, minimum=1),
    )
    if out.item_item_weight > 1.0:
        raise InvalidSpec(f.at("itemItemWeight"),
                          f"must be a number between 0 and 1 (got {out.item_item_weight})")
    if out.item_item_l2 <= 0.0:
        raise InvalidSpec(f.at("itemItemL2"), f"must be a number > 0 (got {out.item_item_l2})")
    f.done()
    return out


def scoring_env(s: ScoringSpec) -> dict[str, str]:
    """The ConfigMap entries for ``s`` (the half-life only when set)."""
    env = {
        "STREAMREC_RECENCY_DECAY": repr(s.recency_decay),
        "STREAMREC_HISTORY_CAP": str(s.history_cap),
        "STREAMREC_ITEM_ITEM_WEIGHT": repr(s.item_item_weight),
        "STREAMREC_ITEM_ITEM_L2": repr(s.item_item_l2),
        "STREAMREC_ITEM_ITEM_MAX_DENSE": str(s.item_item_max_dense_items),
        "STREAMREC_ITEM_ITEM_NEIGHBOURS": str(s.item_item_neighbours),
    }
    if s.recency_half_life_seconds is not None:
        env["STREAMREC_RECENCY_HALF_LIFE"] = repr(s.recency_half_life_seconds)
    return env
