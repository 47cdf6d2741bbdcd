"""The online-evaluation tallies of every worker: shared through files, exported twice.

A replica's gunicorn workers each own an `OnlineTracker`. Each worker writes its
`OnlineTracker.state` to ``$PROMETHEUS_MULTIPROC_DIR/online_<token>.json`` about once a second
(`Publisher`, atomic rename), and whichever worker answers ``/metrics`` or ``/stats`` adds them
all up with `online.merge` (its own state read fresh). Files of dead workers keep counting, as
prometheus-client's counters do, so the totals never go down; only their ``tracked_users`` is
left out once a file is older than `LIVE_SECONDS`. Without a multiprocess directory (tests,
``streamrec run``) the worker's own state is the replica's.

Own files and not prometheus-client's: a label set in its multiprocess files can never be
removed, so series per model version would grow with every retrain; here only the newest
``max_versions`` versions are exported (bounded cardinality) and older ones leave the scrape.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from .periodic import Periodic
from .tracker import RANK_BOUNDS, OnlineTracker, Tally, merge

log = logging.getLogger(__name__)

PUBLISH_EVERY = 1.0
LIVE_SECONDS = 10.0


def state_dir() -> Path | None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(path) if path else None


def publish(tracker: OnlineTracker, directory: Path, now: float) -> None:
    """Write the tracker's state where sibling workers read it (write, then rename)."""
    target = directory / f"online_{tracker.token}.json"
    tmp = directory / f".online_{tracker.token}.tmp"
    tmp.write_text(json.dumps(tracker.state(now)))
    os.replace(tmp, target)


def replica_state(tracker: OnlineTracker, now: float) -> dict[str, Any]:
    """This replica's merged state: every worker's file, this worker's own state fresh."""
    states = [tracker.state(now)]
    directory = state_dir()
    if directory is not None:
        for path in directory.glob("online_*.json"):
            if path.name == f"online_{tracker.token}.json":
                continue
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):  # a file being replaced: the next scrape has it
                continue
            if now - float(state.get("at", 0.0)) > LIVE_SECONDS:
                state["tracked_users"] = state["max_users"] = 0
            states.append(state)
    return merge(states, tracker.max_versions)


class Publisher(Periodic):
    """A daemon thread writing the worker's state every `PUBLISH_EVERY` seconds, and once
    more when stopped (the last counts survive the exit)."""

    def __init__(self, tracker: OnlineTracker, directory: Path) -> None:
        self.tracker, self.directory = tracker, directory
        super().__init__("online-publish", PUBLISH_EVERY, self._publish)

    def _publish(self) -> None:
        try:
            publish(self.tracker, self.directory, time.time())
        except OSError as e:
            log.warning("online stats not published: %s", e)


def families(state: dict[str, Any]) -> Iterator[Metric]:
    """Prometheus families of a merged state, labelled ``model_version`` (bounded)."""
    counters = (("lists", "Recommendation lists served (each has a recommendation_id)"),
                ("events", "Positive events of users with a live served list (hit-rate base)"),
                ("hits", "Eligible events whose item was in the user's last served list"),
                ("attributed", "Positive events echoing a recommendation_id of this replica"))
    tallies = {v: Tally.from_list(t) for v, t in state["versions"].items()}
    for name, text in counters:
        family = CounterMetricFamily(f"streamrec_online_{name}", text, labels=["model_version"])
        for version, tally in tallies.items():
            family.add_metric([version], getattr(tally, name))
        yield family
    ranks = HistogramMetricFamily("streamrec_online_hit_rank",
                                  "1-based rank of the hit item in the served list",
                                  labels=["model_version"])
    for version, tally in tallies.items():
        cumulative, buckets = 0, []
        # le as prometheus-client writes its own histograms' bounds ("2.0").
        for bound, count in zip([*(str(float(b)) for b in RANK_BOUNDS), "+Inf"], tally.ranks or [],
                                strict=True):
            cumulative += count
            buckets.append((bound, float(cumulative)))
        ranks.add_metric([version], buckets, float(tally.rank_sum))
    yield ranks
    users = GaugeMetricFamily("streamrec_online_tracked_users",
                              "Users whose last served list is held (live workers)")
    users.add_metric([], state["tracked_users"])
    yield users
    limit = GaugeMetricFamily("streamrec_online_tracked_users_max",
                              "LRU bound on tracked users (live workers)")
    limit.add_metric([], state["max_users"])
    yield limit
    evicted = CounterMetricFamily("streamrec_online_evicted",
                                  "Last lists evicted from the LRU before their horizon ended")
    evicted.add_metric([], state["evicted"])
    yield evicted


def stats(state: dict[str, Any], horizon: float, positive: float | None) -> dict[str, Any]:
    """``GET /stats``: per-version totals and rates, and the per-bucket time series."""
    versions = {v: Tally.from_list(t).rates() for v, t in state["versions"].items()}
    series = [{"start": start, "versions": {v: Tally.from_list(t).rates()
                                            for v, t in per.items()}}
              for start, per in state["series"]]
    return {"definitions": {"horizon_seconds": horizon, "positive_weight": positive,
                            "ctr": "attributed / lists", "hit_rate": "hits / events",
                            "bucket_seconds": state["bucket_seconds"]},
            "workers": state["workers"], "tracked_users": state["tracked_users"],
            "max_tracked_users": state["max_users"], "evicted": state["evicted"],
            "versions": versions, "series": series}
