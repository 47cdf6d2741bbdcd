"""What the live model answers with, and the errors it raises: plain values, no HTTP.

`NoModel` (no snapshot yet) is a 503 in HTTP, `ErasedItem` a 404 like the core's
`UnknownItem` it extends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from streamrec.core.catalog.filters import ItemFilter
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.model import Recommendations, UnknownItem
from streamrec.core.scoring.types import Pairs, Ranker

if TYPE_CHECKING:
    from .holder import Served

__all__ = ["NO_MODEL", "ErasedItem", "Explained", "Known", "ListQuery", "Listed", "NoModel",
           "Placing"]

#: Why there is no answer before the first snapshot (503 in HTTP).
NO_MODEL = "no snapshot loaded yet; retry shortly"


class NoModel(Exception):
    """No snapshot is served yet: the caller may retry shortly."""


class ErasedItem(UnknownItem):
    """The item was erased (``DELETE /items``): it is unknown for good."""

    def __str__(self) -> str:
        return f"item {self.item!r} was erased"


class Placing(Protocol):
    """A request's placement, as the live model asks it (``serving/placements/placer.py``):
    its scoring over the snapshot's, its ranking step for the served snapshot, and rotation's
    skipped items as extra (item, weight, ts) events of ``user``."""

    def scoring_for(self, base: ScoringParams) -> ScoringParams: ...

    def ranker(self, served: Served, user: str | None) -> Ranker: ...

    def skips(self, user: str, extra: Pairs) -> list[tuple[str, float, float | None]]: ...


@dataclass(frozen=True, slots=True)
class ListQuery:
    """What a list asks for: ``n`` items, the user's seen items out or not, a whitelist
    (``items``), a blacklist (``exclude``) and a catalogue filter (None: no category)."""

    n: int = 10
    exclude_seen: bool = True
    items: list[str] | None = None
    exclude: list[str] | None = None
    filter: ItemFilter | None = None


@dataclass(frozen=True, slots=True)
class Listed:
    """A ranked list, the snapshot version it came from and the fresh events folded in."""

    version: str
    recs: Recommendations
    fresh_events: int = 0


@dataclass(frozen=True, slots=True)
class Explained:
    """``because``: the user's items contributing most to an item's score, best first; the
    scorer whose blend term for the item is largest (None: not blended per request); the
    user's earlier items the item came after, as (item, position from the newest, weight)."""

    version: str
    items: list[tuple[str, float]]
    fresh_events: int
    driven_by: str | None = None
    transitions: list[tuple[str, int, float]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Known:
    """A user's known items: in the snapshot's window, and fresh since (item, net weight)."""

    version: str
    known: list[tuple[str, float]]
    fresh: list[tuple[str, float]]
