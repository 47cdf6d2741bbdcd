"""``spec.scoring`` of a RecommenderService: recency, the item-item model and the blend.

Parsed like the rest of the spec (every error names the field) and turned into the
``STREAMREC_RECENCY_*`` / ``STREAMREC_ITEM_ITEM_*`` variables of docs/configuration.md. The
defaults are the service's own (``core/scoring/blend.py``, ``core/scoring/itemitem.py``: tuned on a
validation
stream, see docs/evaluation.md), so a CR that says nothing scores as ``streamrec run`` does.
"""

from __future__ import annotations

from dataclasses import dataclass

from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams

from .fields import Fields

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
    """Each field in its config field's domain (``core.domains.CONFIG_RANGES``), as the CRD
    schema and the services check it."""
    out = ScoringSpec(
        recency_decay=f.in_domain("recencyDecay", "recency_decay", _S.recency_decay),
        recency_half_life_seconds=f.in_domain("recencyHalfLifeSeconds", "recency_half_life",
                                              None),
        history_cap=f.in_domain("historyCap", "history_cap", _S.history_cap),
        item_item_weight=f.in_domain("itemItemWeight", "item_item_weight", _S.item_item_weight),
        item_item_l2=f.in_domain("itemItemL2", "item_item_l2", _I.l2),
        item_item_max_dense_items=f.in_domain("itemItemMaxDenseItems", "item_item_max_dense",
                                              _I.max_dense_items),
        item_item_neighbours=f.in_domain("itemItemNeighbours", "item_item_neighbours",
                                         _I.neighbours),
    )
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
