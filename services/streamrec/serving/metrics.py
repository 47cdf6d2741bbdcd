"""Prometheus metrics of a serving replica, safe under gunicorn's many worker processes.

When ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is imported (``streamrec serve``
sets one up), prometheus-client keeps each worker's values in files there and `/metrics`
aggregates all workers; gauges say how (``livesum``, ``livemax``, ``livemin``: only workers
still alive count, gunicorn's ``child_exit`` marks the dead). Otherwise the default registry of
this one process is exposed.

Import this module in workers only, never in the gunicorn master: metric objects made there
would add the master's (never updated) values to the aggregation.

The model's age is not stored: it is computed at scrape time from the oldest served snapshot's
``created_at`` (a stored age would be as old as the last write of each worker).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _mp
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

#: Latency buckets: fine below 10 ms, where a recommendation should land.
BUCKETS = (.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5)

REQUESTS = Counter("streamrec_http_requests_total", "HTTP requests answered",
                   ["route", "method", "status"])
LATENCY = Histogram("streamrec_http_request_seconds",
                    "HTTP request latency in the app (parse to response built)",
                    ["route", "method", "status"], buckets=BUCKETS)
RELOADS = Counter("streamrec_snapshot_reloads_total",
                  "Snapshot loads by result: loaded; refused (corrupt, partial, inconsistent: "
                  "never retried) and unavailable (store unreachable: retried) are failures",
                  ["result"])
INFO_NAME = "streamrec_model_info"
MODEL_INFO = Gauge(INFO_NAME,
                   "1 for each snapshot version a live worker serves now (replaced versions "
                   "disappear: at most one series per worker)", ["version"],
                   multiprocess_mode="livemax")
CREATED_NAME = "streamrec_snapshot_created_seconds"
SNAPSHOT_CREATED = Gauge(CREATED_NAME,
                         "created_at of the served snapshot (unix seconds; oldest worker)",
                         multiprocess_mode="livemin")
FOLDIN_EVENTS = Counter("streamrec_foldin_events_total",
                        "Interactions read by the fold-in consumer, by result "
                        "(kept, stale, duplicate, invalid, filtered, erased; foreign: a user "
                        "of another serving group)", ["result"])
ERASURES = Counter("streamrec_erasures_total",
                   "Erasure records applied by this worker (read from the topic or answered "
                   "by DELETE), by kind (user, item)", ["kind"])
ERASE_REQUESTS = Counter("streamrec_erase_requests_total",
                         "DELETE /users and DELETE /items answered, by kind and result "
                         "(accepted, invalid, unauthorized, unavailable)", ["kind", "result"])
FOLDIN_EVICTED = Counter("streamrec_foldin_evicted_total",
                         "Fresh events dropped from the fold-in history for the per-user or "
                         "total bound (their items stay seen)")
FOLDIN_SEEN_DROPPED = Counter("streamrec_foldin_seen_dropped_total",
                              "Fresh (user, item) pairs no longer excluded as seen: the "
                              "replica-wide bound of the seen sets was exceeded")
FRESH_EVENTS = Gauge("streamrec_foldin_fresh_events",
                     "Events held for fold-in since the snapshot", multiprocess_mode="livesum")
FOLDIN_LAG = Gauge("streamrec_foldin_lag_messages",
                   "Fold-in consumer lag behind the end of the topic, in messages (worst worker)",
                   multiprocess_mode="livemax")
FOLDIN_LAG_SECONDS = Gauge("streamrec_foldin_lag_seconds",
                           "Fold-in lag in seconds: 0 when caught up, else the time since the "
                           "last consumed event was produced (an upper bound; worst worker)",
                           multiprocess_mode="livemax")
FOLDIN_INVALID = Counter("streamrec_foldin_invalid_total",
                         "Invalid messages read by the fold-in consumer, by reason (the same "
                         "messages the trainer sends to the dead-letter topic)", ["reason"])
FOLDIN_VISIBLE = Histogram("streamrec_foldin_visible_seconds",
                           "Event to visible: message timestamp to the fold-in holding it "
                           "(the next request for the user sees it); one sample per poll, "
                           "for its oldest kept event",
                           buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
ITEM_RECORDS = Counter("streamrec_items_records_total",
                       "Item records read from the items topic by result (kept, stale: "
                       "older than the snapshot's catalogue, invalid, erased: a deleted "
                       "item)", ["result"])
CATALOG_ITEMS = Gauge("streamrec_catalog_items",
                      "Items in the catalogue (records held; worst worker)",
                      multiprocess_mode="livemax")
PLACEMENTS = Gauge("streamrec_placements", "Placements served (the watched set; worst worker)",
                   multiprocess_mode="livemax")
PLACEMENT_RELOADS = Counter("streamrec_placements_reloads_total",
                            "Changes of the watched placements file by result (taken, refused: "
                            "did not parse; the previous placements stay)", ["result"])
PLACEMENT_EVAL_ERRORS = Counter("streamrec_placement_expression_errors_total",
                                "Evaluations of a placement expression that failed for an item "
                                "(the item does not match: a filter excludes it)", ["placement"])
IMPRESSIONS = Counter("streamrec_impressions_total",
                      "Impressions (lists served under rotation or exploration) by result: "
                      "published, read (from other workers), invalid, published_failed",
                      ["result"])
ITEMS_PRODUCED = Counter("streamrec_items_ingest_total",
                         "Item records put through /items by result (produced, invalid)",
                         ["result"])
INGESTED = Counter("streamrec_ingest_events_total",
                   "Events posted to /interactions by result (produced, invalid, "
                   "unacknowledged: answered 503 log_unavailable)", ["result"])

AGE_NAME = "streamrec_snapshot_age_seconds"


def lag_seconds(lag_messages: int, last_event_ts: float | None, now: float) -> float | None:
    """Seconds the fold-in consumer is behind: 0 when caught up, else ``now`` minus the
    produce time of the last event it read (the next unread one is younger); None when it
    is behind but has read nothing yet."""
    if lag_messages <= 0:
        return 0.0
    if last_event_ts is None:
        return None
    return max(0.0, now - last_event_ts)


def snapshot_age(created: Iterable[float], now: float) -> float | None:
    """Age of the oldest served snapshot; None when no worker serves one (created <= 0)."""
    served = [c for c in created if c > 0]
    return max(0.0, now - min(served)) if served else None


def served(version: str, previous: str | None) -> None:
    """A worker swapped models: the info gauge names the new version only.

    The old series is removed here; under gunicorn its value also stays in this worker's
    metrics file at 0, which `exposition` leaves out, so the scrape has one series per version
    served now and never one per past version."""
    if previous is not None and previous != version:
        MODEL_INFO.labels(previous).set(0)
        with contextlib.suppress(KeyError):
            MODEL_INFO.remove(previous)
    MODEL_INFO.labels(version).set(1)


_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))
_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}


def observe(route: str, method: str, status: int, seconds: float | None) -> None:
    """Count one answered request (and its latency when known).

    The labelled children are cached: ``labels()`` validates and locks on every call, and this
    runs on every request. Routes, methods and statuses are few, so the cache stays small.
    """
    if method not in _METHODS:  # any token is a valid method: keep the series bounded
        method = "OTHER"
    key = (route, method, status)
    pair = _children.get(key)
    if pair is None:
        code = str(status)
        pair = _children[key] = (REQUESTS.labels(route, method, code),
                                 LATENCY.labels(route, method, code))
    pair[0].inc()
    if seconds is not None:
        pair[1].observe(seconds)


class _WithAge(Collector):
    """The collected families plus the model age derived from them."""

    def __init__(self, families: list[Metric], now: float, extra: Iterable[Metric] = ()) -> None:
        self.families, self.now, self.extra = families, now, extra

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            if family.name == INFO_NAME:  # replaced versions (0) are history, not state
                family.samples = [s for s in family.samples if s.value != 0]
            yield family
        yield from self.extra
        created = [s.value for f in self.families if f.name == CREATED_NAME
                   for s in f.samples]
        age = snapshot_age(created, self.now)
        if age is not None:
            family = GaugeMetricFamily(AGE_NAME, "Seconds since the oldest served snapshot "
                                                 "was created")
            family.add_metric([], age)
            yield family


def exposition(now: float | None = None, extra: Iterable[Metric] = ()) -> tuple[bytes, str]:
    """The text exposition of all workers (multiprocess) or of this process, plus ``extra``
    families (the online evaluation's, `online.stats.families`)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        families = list(registry.collect())
    else:
        families = list(REGISTRY.collect())
    collector = _WithAge(families, time.time() if now is None else now, extra)
    return generate_latest(collector), CONTENT_TYPE_LATEST
