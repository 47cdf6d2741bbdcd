"""Running sums of the ranking metrics of held-out items, per strategy.

In a prequential replay every scored event has exactly one relevant item (the one the user is
about to interact with); its recall@k, nDCG@k and reciprocal rank are ``core/scoring/hits.py``,
shared
with the serving replicas' online hit rate. Sums are kept
separately for warm users (main metrics) and cold users (no history yet), and per stretch of
the stream, so the report can draw recall over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from streamrec.core.scoring.hits import Hit

__all__ = ["MetricSums", "StrategyStats"]


@dataclass
class MetricSums:
    """Running sums of :class:`Hit` values; ``mean()`` divides by the count."""

    count: int = 0
    recall: float = 0.0
    ndcg: float = 0.0
    rr: float = 0.0

    def add(self, hit: Hit) -> None:
        self.count += 1
        self.recall += hit.recall
        self.ndcg += hit.ndcg
        self.rr += hit.rr

    def mean(self) -> dict[str, float | int | None]:
        if not self.count:
            return {"events": 0, "recall": None, "ndcg": None, "mrr": None}
        return {
            "events": self.count,
            "recall": self.recall / self.count,
            "ndcg": self.ndcg / self.count,
            "mrr": self.rr / self.count,
        }


@dataclass
class StrategyStats:
    """Everything measured for one strategy over one replay."""

    bins: int
    warm: MetricSums = field(default_factory=MetricSums)
    cold: MetricSums = field(default_factory=MetricSums)
    recommended: set[str] = field(default_factory=set)
    recommend_seconds: float = 0.0
    recommend_calls: int = 0
    over_time: list[MetricSums] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.over_time = [MetricSums() for _ in range(self.bins)]

    def add(self, hit: Hit, items: Sequence[str], cold: bool, position: float) -> None:
        """Record one scored event; ``position`` in [0, 1) is where it sits in the test part."""
        self.recommended.update(items)
        if cold:
            self.cold.add(hit)
            return
        self.warm.add(hit)
        self.over_time[min(self.bins - 1, int(position * self.bins))].add(hit)

    def coverage(self, catalog: int) -> float:
        """Share of the catalogue that appeared in at least one list (warm or cold)."""
        return len(self.recommended) / catalog if catalog else 0.0
