"""``spec.scoring`` of a RecommenderService: recency, the item-item model and the blend.

Its fields are rows of the settings table (``streamrec.settings``), so their defaults are the
service's own (``core/blend.py``, ``core/ease.py``: tuned on a validation stream, see
docs/evaluation.md) and a CR that says nothing scores as ``streamrec run`` does. The env
builder (``operator.env``) passes them on like every other row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamrec.settings import BY_NAME

from .fields import Fields

__all__ = ["ScoringSpec", "parse_scoring"]


def _d(name: str) -> Any:
    return BY_NAME[name].cr_default_value


@dataclass(frozen=True)
class ScoringSpec:
    recency_decay: float = _d("recency_decay")
    recency_half_life: float | None = _d("recency_half_life")
    history_cap: int = _d("history_cap")
    item_item_weight: float = _d("item_item_weight")
    item_item_l2: float = _d("item_item_l2")
    item_item_max_dense: int = _d("item_item_max_dense")
    item_item_neighbours: int = _d("item_item_neighbours")


def parse_scoring(f: Fields) -> ScoringSpec:
    """Each field by its row's rule, the one the CRD schema and the services apply."""
    out = ScoringSpec(**f.section("scoring"))
    f.done()
    return out
