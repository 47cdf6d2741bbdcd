"""The trainer's Prometheus metrics and the tiny HTTP server for ``/metrics`` and ``/healthz``.

Each :class:`TrainerMetrics` owns its registry, so several trainers (tests, the embedded mode
next to a serving app) never collide on metric names in prometheus-client's global registry.
``/healthz`` answers 200 while the consume loop has stepped recently, 503 once it is stuck.
"""

from __future__ import annotations

import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["MetricsServer", "TrainerMetrics"]

log = logging.getLogger(__name__)

_FIT_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class TrainerMetrics:
    """Counters and gauges the trainer updates; ``registry`` is what ``/metrics`` serves."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.consumed = Counter("streamrec_trainer_events_consumed",
                                "Messages read from the interactions topic.", registry=r)
        self.accepted = Counter("streamrec_trainer_events_accepted",
                                "Valid events added to the window.", registry=r)
        self.invalid = Counter("streamrec_trainer_events_invalid",
                               "Messages sent to the dead-letter topic, by reason.",
                               ["reason"], registry=r)
        self.items = Counter("streamrec_trainer_item_records",
                             "Item records from the items topic kept in the catalogue.",
                             registry=r)
        self.catalog_size = Gauge("streamrec_trainer_catalog_items",
                                  "Items in the catalogue (records kept).", registry=r)
        self.misrouted = Counter(
            "streamrec_trainer_events_misrouted",
            "Events read from a partition their user does not hash to (murmur2, "
            "docs/trainer.md), by the partition they arrived on; kept in the window.",
            ["partition"], registry=r)
        self.filtered = Counter("streamrec_trainer_events_filtered",
                                "Valid events dropped by min_weight.", registry=r)
        self.lag = Gauge("streamrec_trainer_consumer_lag",
                         "Messages behind the end of the topic (-1: unknown).", registry=r)
        self.window_size = Gauge("streamrec_trainer_window_events",
                                 "Events in the sliding window.", registry=r)
        self.retrains = Counter("streamrec_trainer_retrains",
                                "Fits that were published as snapshots.", registry=r)
        self.retrain_failures = Counter("streamrec_trainer_retrain_failures",
                                        "Fits or snapshot writes that failed.", registry=r)
        self.fit_failures = Counter("streamrec_trainer_fit_failures",
                                    "Fit attempts that failed, by reason (empty_window, "
                                    "nonfinite_factors, solver_error, error).", ["reason"],
                                    registry=r)
        self.last_fit_error = Gauge("streamrec_trainer_last_fit_error",
                                    "1 for the reason of the last fit while fits are failing; "
                                    "0 for every reason once a fit publishes again.",
                                    ["reason"], registry=r)
        self.fit_recoveries = Counter("streamrec_trainer_fit_recoveries",
                                      "Fits published by the safe-confidence retry after a "
                                      "first attempt with non-finite factors.", registry=r)
        self.capped_cells = Gauge("streamrec_trainer_confidence_capped_cells",
                                  "Window cells whose confidence hit the cap in the last fit.",
                                  registry=r)
        self.last_success = Gauge("streamrec_trainer_last_success_timestamp_seconds",
                                  "Unix time of the last fit published as a snapshot.",
                                  registry=r)
        self.retrain_seconds = Histogram("streamrec_trainer_retrain_duration_seconds",
                                         "Time to fit the model.", buckets=_FIT_BUCKETS,
                                         registry=r)
        self.coalesced = Counter("streamrec_trainer_coalesced_retrains",
                                 "Retrains due during a fit, merged into the next one.",
                                 registry=r)
        self.snapshot_version = Gauge("streamrec_trainer_snapshot_version",
                                      "The last published snapshot version.", registry=r)
        self.upload_failures = Counter("streamrec_trainer_upload_failures",
                                       "Snapshot uploads that failed and were retried.",
                                       registry=r)
        # Forgetting (core/events/erasure.py, docs/feedback.md).
        self.erasures = Counter("streamrec_trainer_erasures",
                                "Erasure records applied, by kind (user or item).", ["kind"],
                                registry=r)
        self.erased_events = Counter("streamrec_trainer_erased_events",
                                     "Events dropped for an erasure: removed from the window, "
                                     "or read after it and refused.", registry=r)
        # Delivery (core/events/eventids.py, docs/reliability.md "Delivery").
        self.duplicates = Counter("streamrec_trainer_duplicate_events",
                                  "Events dropped because their event_id was already in the "
                                  "window: a client's retry, not an error.", registry=r)
        self.erasure_prunes = Counter("streamrec_trainer_erasure_pruned_snapshots",
                                      "Stored snapshot versions deleted because an erasure "
                                      "made them stale.", registry=r)
        self.last_step = time.monotonic()
        self._reasons: set[str] = set()  # reasons seen: a handful of codes, never free text

    def fit_failed(self, reason: str) -> None:
        self.fit_failures.labels(reason).inc()
        for known in list(self._reasons):
            self.last_fit_error.labels(known).set(0)
        self._reasons.add(reason)
        self.last_fit_error.labels(reason).set(1)

    def fit_succeeded(self, capped_cells: int, recovered: bool, now: float) -> None:
        for known in self._reasons:
            self.last_fit_error.labels(known).set(0)
        self.capped_cells.set(capped_cells)
        self.last_success.set(now)
        if recovered:
            self.fit_recoveries.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsServer:
    """Serves ``/metrics`` and ``/healthz`` on a daemon thread.

    ``port=0`` takes a free port (see :attr:`port`). ``stale_after`` seconds without a loop
    step make ``/healthz`` answer 503.
    """

    def __init__(self, metrics: TrainerMetrics, host: str = "0.0.0.0", port: int = 9100,
                 stale_after: float = 120.0) -> None:
        self.metrics = metrics
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.path.split("?")[0] == "/metrics":
                    self._answer(200, outer.metrics.render(), CONTENT_TYPE_LATEST)
                elif self.path.split("?")[0] == "/healthz":
                    age = time.monotonic() - outer.metrics.last_step
                    ok = age < stale_after
                    body = b'{"status": "ok"}' if ok else b'{"status": "stuck"}'
                    self._answer(200 if ok else 503, body, "application/json")
                else:
                    self._answer(404, b'{"error": "not_found", "message": "no such path"}',
                                 "application/json")

            def _answer(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                log.debug("metrics: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
