"""Experiments in the online evaluation: per-arm counts out of the tracker states, as
results (``core/experiments/results.py``) and as Prometheus families.

The tracker counts each arm under its label ``experiment.arm`` (``tracker.py``); a merged state
(one replica's workers, ``stats.replica_state``) holds them under ``"arms"``. Only the arms of
the configured experiments are read, so the exported label sets are bounded by the
configuration (at most 16 experiments x 8 arms, ``core/experiments/spec.py``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from streamrec.core.experiments.results import ArmCounts, summary
from streamrec.core.experiments.spec import Experiment

__all__ = ["arm_counts", "families", "results"]

_COUNTERS = (("lists", "lists", "Lists served by the arm"),
             ("clicked_lists", "clicked", "Lists of the arm with at least one attributed click"),
             ("attributed", "attributed", "Attributed clicks on the arm's lists"),
             ("events", "events", "Eligible positive events judged against the arm's lists"),
             ("hits", "hits", "Eligible events whose item was in the arm's list"),
             ("hit_rank_sum", "rank_sum", "Sum of the 1-based hit ranks"),
             ("hit_rank_squares", "rank_sq", "Sum of the squared hit ranks"))


def arm_counts(experiment: Experiment, arms: Mapping[str, Sequence[int]]) -> dict[str, ArmCounts]:
    """The experiment's arms' counts from a state's ``arms`` (label -> counts list)."""
    out = {}
    for arm in experiment.arms:
        counts = arms.get(f"{experiment.name}.{arm.name}")
        out[arm.name] = ArmCounts() if counts is None else ArmCounts.from_list(counts)
    return out


def results(experiments: Sequence[Experiment], state: Mapping[str, Any],
            now: float) -> list[dict[str, Any]]:
    """`summary` of each configured experiment over a merged state."""
    arms = state.get("arms", {})
    return [summary(e, arm_counts(e, arms), now) for e in experiments]


def families(experiments: Sequence[Experiment], state: Mapping[str, Any],
             now: float) -> Iterator[Metric]:
    """Counters per (experiment, arm), and the 95% intervals of the rates and of each arm's
    difference to the control as gauges (``bound``: estimate, low, high)."""
    labels = ["experiment", "arm"]
    counters = {name: CounterMetricFamily(f"streamrec_experiment_{name}", text, labels=labels)
                for name, _, text in _COUNTERS}
    rates = GaugeMetricFamily("streamrec_experiment_rate", "An arm's CTR (clicked lists / "
                              "lists), hit rate or mean hit rank with its 95% interval",
                              labels=[*labels, "metric", "bound"])
    diffs = GaugeMetricFamily("streamrec_experiment_difference", "Arm minus control, with its "
                              "95% interval (Newcombe for rates, Welch for the mean rank)",
                              labels=[*labels, "metric", "bound"])
    for e, result in zip(experiments, results(experiments, state, now), strict=True):
        for arm, counts in arm_counts(e, state.get("arms", {})).items():
            for name, attr, _ in _COUNTERS:
                counters[name].add_metric([e.name, arm], getattr(counts, attr))
        for family, part in ((rates, result["arms"]), (diffs, result["vs_control"])):
            for arm, metrics in part.items():
                for metric in ("ctr", "hit_rate", "mean_rank"):
                    interval = metrics[metric]
                    for bound in ("estimate", "low", "high"):
                        if interval is not None:
                            family.add_metric([e.name, arm, metric, bound], interval[bound])
    yield from counters.values()
    yield rates
    yield diffs
