"""Online metrics per placement, from a merged tracker state (``stats.replica_state``).

The tracker counts each placement's lists under the label ``@<placement>`` (``tracker.py``),
as it counts experiment arms, plus its slots (all, promoted, exploration) and a sketch of the
distinct items served (``core/placements/coverage.py``). Per placement:

- ``ctr``: lists with at least one attributed click / lists served, with a Wilson interval;
- ``hit_rate``: hits / eligible events judged against its lists, with a Wilson interval;
- ``coverage``: distinct items served (estimated) / items in the served model;
- ``promoted_share`` and ``exploration_share``: marked slots / all slots.

Only the configured placements are read, so the exported label sets stay bounded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from streamrec.core.experiments.intervals import wilson
from streamrec.core.experiments.results import ArmCounts
from streamrec.core.placements.coverage import Coverage
from streamrec.core.placements.spec import Placement

__all__ = ["families", "results"]


def _one(name: str, state: dict[str, Any], items: int | None) -> dict[str, Any]:
    c = ArmCounts.from_list(state.get("arms", {}).get(f"@{name}", [0] * 7))
    part = state.get("placements", {}).get(name)
    slots, promoted, explored = part["slots"] if part else (0, 0, 0)
    served = Coverage.from_text(part["coverage"]).estimate() if part else 0.0
    ctr, hit = wilson(c.clicked, c.lists), wilson(c.hits, c.events)
    return {"lists": c.lists, "clicked_lists": c.clicked, "attributed": c.attributed,
            "events": c.events, "hits": c.hits,
            "ctr": None if ctr is None else ctr.to_dict(),
            "hit_rate": None if hit is None else hit.to_dict(),
            "slots": slots, "promoted_share": promoted / slots if slots else None,
            "exploration_share": explored / slots if slots else None,
            "distinct_items": round(served),
            "coverage": min(1.0, served / items) if items else None}


def results(placements: Sequence[Placement], state: dict[str, Any],
            items: int | None) -> dict[str, dict[str, Any]]:
    """Each placement's online metrics (``items``: the served model's, for coverage)."""
    return {p.name: _one(p.name, state, items) for p in placements}


def families(placements: Sequence[Placement], state: dict[str, Any],
             items: int | None) -> list[Metric]:
    """``streamrec_placement_*``: counters of lists, clicks, events, hits and slots (by
    kind), and gauges of coverage, per placement."""
    counters = {k: CounterMetricFamily(f"streamrec_placement_{k}", text, labels=["placement"])
                for k, text in (("lists", "Lists served under the placement"),
                                ("clicked_lists", "Its lists with an attributed click"),
                                ("events", "Eligible events judged against its lists"),
                                ("hits", "Of those, events whose item was in the list"))}
    slots = CounterMetricFamily("streamrec_placement_slots", "Slots of its lists by kind "
                                "(organic, promoted, exploration)", labels=["placement", "kind"])
    coverage = GaugeMetricFamily("streamrec_placement_coverage", "Distinct items served / "
                                 "items in the model (linear counting)", labels=["placement"])
    for p in placements:
        r = _one(p.name, state, items)
        for k, family in counters.items():
            family.add_metric([p.name], r[k])
        promoted = round((r["promoted_share"] or 0) * r["slots"])
        explored = round((r["exploration_share"] or 0) * r["slots"])
        for kind, value in (("organic", r["slots"] - promoted - explored),
                            ("promoted", promoted), ("exploration", explored)):
            slots.add_metric([p.name, kind], value)
        if r["coverage"] is not None:
            coverage.add_metric([p.name], r["coverage"])
    return [*counters.values(), slots, coverage]
