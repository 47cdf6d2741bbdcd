"""Prometheus metrics of a serving replica, safe under gunicorn's many worker processes.

When ``PROMETHEUS_MULTIPROC_DIR`` is set before this module is imported (``streamrec serve``
sets one up), prometheus-client keeps each worker's values in files there and `/metrics`
aggregates all workers; gauges say how (``livesum``, ``max``). Otherwise the default registry
of this one process is exposed.
"""

from __future__ import annotations

import os

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

REQUESTS = Counter("streamrec_http_requests_total", "HTTP requests answered",
                   ["endpoint", "method", "status"])
LATENCY = Histogram("streamrec_http_request_seconds", "HTTP request latency", ["endpoint"],
                    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
RELOADS = Counter("streamrec_snapshot_reloads_total",
                  "Snapshot loads by result (loaded, refused, unavailable)", ["result"])
SNAPSHOT_CREATED = Gauge("streamrec_snapshot_created_seconds",
                         "created_at of the served snapshot (unix seconds)",
                         multiprocess_mode="min")
FOLDIN_EVENTS = Counter("streamrec_foldin_events_total",
                        "Interactions read by the fold-in consumer, by result "
                        "(kept, stale, invalid, filtered)", ["result"])
FOLDIN_EVICTED = Counter("streamrec_foldin_evicted_total",
                         "Fresh events evicted for the per-user or total bound")
FRESH_EVENTS = Gauge("streamrec_foldin_fresh_events",
                     "Events held for fold-in since the snapshot", multiprocess_mode="livesum")
FOLDIN_LAG = Gauge("streamrec_foldin_lag_messages",
                   "Fold-in consumer lag behind the end of the topic", multiprocess_mode="max")
INGESTED = Counter("streamrec_ingest_events_total",
                   "Events posted to /interactions by result (produced, invalid)", ["result"])


def exposition() -> tuple[bytes, str]:
    """The text exposition of all workers (multiprocess) or of this process."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _mp.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def mark_worker_dead(pid: int) -> None:
    """gunicorn's ``child_exit``: drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        _mp.mark_process_dead(pid)  # type: ignore[no-untyped-call]
