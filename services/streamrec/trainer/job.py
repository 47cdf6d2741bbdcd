"""One retrain, on the worker thread: fit the copy, write the snapshot, publish, prune, notify.

The job gets copies (the window matrix and contents, the offsets at the moment of the copy), so
the consume loop keeps running while it fits. A store outage does not fail the job: the upload
is retried with exponential backoff until it succeeds or the trainer stops, while new retrains
pile up in the policy and run right after. Only a failed fit or snapshot write fails the job.

Every attempt ends with a report: the ``TrainingStatus`` (written to the store next to LATEST,
best effort), the fit-failure metrics by reason, and a log line at ERROR level on failure.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.adapters.source import EventSink, SourceUnavailable
from streamrec.adapters.storebase import (
    SnapshotStore,
    StoreError,
    StoreUnavailable,
    TrainingReports,
)
from streamrec.config import Config
from streamrec.core.catalog.records import Catalogue
from streamrec.core.events.erasure import Tombstones
from streamrec.core.scoring.scorer import fitted_by_window
from streamrec.core.scoring.training import with_ann, with_scorer, with_scoring
from streamrec.core.scoring.types import FitFailed
from streamrec.core.snapshot.trainingstatus import TrainingStatus
from streamrec.core.window.contents import WindowContents, WindowMatrix

from .engines import Engine, ImplicitEngine
from .metrics import TrainerMetrics
from .policy import backoff

__all__ = ["FitJob", "JobOutcome"]

log = logging.getLogger(__name__)


@dataclass
class JobOutcome:
    """``published``: the store's LATEST now names ``version``; ``abandoned``: stopped first."""

    version: str
    offsets: dict[int, int]
    published: bool = False
    abandoned: bool = False
    error: str | None = None
    reason: str | None = None
    capped_cells: int = 0
    recovered_from: str | None = None
    training: TrainingStatus | None = None
    record: dict[str, object] = field(default_factory=dict)
    prune_all: bool = False


@dataclass
class FitJob:
    config: Config
    store: SnapshotStore
    sink: EventSink | None
    metrics: TrainerMetrics
    stop: threading.Event
    workdir: Path
    matrix: WindowMatrix
    contents: WindowContents
    offsets: dict[int, int]
    version: str
    new_events: int
    training: TrainingStatus = field(default_factory=TrainingStatus)
    # The item catalogue and the items-topic offsets it holds (stored as Catalogue.to_arrays).
    catalog: tuple[Catalogue, dict[int, int]] | None = None
    #: Erased ids, written into the snapshot (core/events/erasure.py).
    tombstones: Tombstones = field(default_factory=Tombstones)
    #: This snapshot is the first to reflect an erasure: once it is published, every older
    #: version (which may still hold the erased data) is deleted, not just those beyond keep.
    prune_all: bool = False
    #: What fits the window (``engines.py``: implicit in-process, or Spark).
    engine: Engine = field(default_factory=ImplicitEngine)

    def run(self) -> JobOutcome:
        out = JobOutcome(self.version, self.offsets, prune_all=self.prune_all)
        tmp: Path | None = None
        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"fit-{self.version}-", dir=self.workdir))
            self._run(tmp, out)
        except Exception as e:  # noqa: BLE001 (a thread must report, never die silently)
            log.exception("retrain %s failed", self.version)
            self.metrics.retrain_failures.inc()
            out.error = f"{type(e).__name__}: {e}"
            out.reason = e.reason if isinstance(e, FitFailed) else out.reason or "error"
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        self._report(out)
        return out

    def _report(self, out: JobOutcome) -> None:
        """Metrics and the store's TRAINING report for this attempt (abandoned: neither)."""
        now = time.time()
        if out.error is not None:
            reason = out.reason or "error"
            self.metrics.fit_failed(reason)
            out.training = self.training.failed(reason, out.error, now)
        elif out.published:
            self.metrics.fit_succeeded(out.capped_cells, out.recovered_from is not None, now)
            out.training = self.training.succeeded(self.version, now, out.recovered_from)
        else:
            return
        if isinstance(self.store, TrainingReports):
            try:
                self.store.put_training_status(out.training.to_bytes())
            except StoreError as e:  # a report must never fail the trainer
                log.warning("could not write the training status: %s", e)

    def _run(self, tmp: Path, out: JobOutcome) -> None:
        started = time.monotonic()
        model = self.engine.fit(self.matrix, self.config.als)
        info = model.fit_info
        if info is not None:
            out.capped_cells, out.recovered_from = info.capped_cells, info.recovered_from
            if info.recovered_from is not None:
                log.error("%s", json.dumps({"event": "fit_recovered", "version": self.version,
                                            "first_attempt": info.recovered_from}))
        # Recency history, then every registered scorer the blend table weighs > 0, from the
        # same window (core/scoring/training.py). A failed fit publishes without that scorer
        # rather than no model.
        c = self.config
        try:
            model = with_scoring(model, self.contents, c.scoring)
        except (ValueError, ArithmeticError, MemoryError, np.linalg.LinAlgError) as e:
            self._fit_failed("scoring", e)
        for name in fitted_by_window(c.scoring.weights):
            try:
                model = with_scorer(model, name, c.scorer_params.get(name), c.fit_threads)
            except (ValueError, ArithmeticError, MemoryError, np.linalg.LinAlgError) as e:
                self._fit_failed(name, e)
        try:  # the HNSW graph of a big catalogue; without it serving ranks exactly
            model = with_ann(model, c.ann, c.fit_threads)
        except (RuntimeError, MemoryError, ValueError) as e:
            self._fit_failed("ann", e)
        out.reason = "snapshot_write"  # should the rest fail, it is not the fit's fault
        fit_seconds = time.monotonic() - started
        self.metrics.retrain_seconds.observe(fit_seconds)
        snapshot_dir = tmp / self.version
        # A scratch copy: the store makes it durable (LocalStore fsyncs its own copy, S3 has
        # the upload), so fsyncing it here would only add to every retrain.
        write_snapshot(snapshot_dir, model, self.contents, self.offsets, self.version,
                       extra_meta={"new_events": self.new_events}, sync=False,
                       catalog=None if self.catalog is None
                       else self.catalog[0].to_arrays(self.catalog[1], model.item_ids),
                       tombstones=self.tombstones, user_partitions=c.user_partitions)
        if self.sink is not None:
            # Dead letters for messages this snapshot covers must be durable before it is.
            self.sink.flush(30.0)
        if not self._publish(snapshot_dir):
            out.abandoned = True
            return
        out.published, out.reason = True, None
        pruned = self._prune()
        self._notify()
        out.record = {
            "event": "retrain",
            "version": self.version,
            "events": len(self.contents),
            "new_events": self.new_events,
            "users": len(model.user_ids),
            "items": len(model.item_ids),
            "nnz": int(model.user_items.nnz),
            "fit_seconds": round(fit_seconds, 4),
            "total_seconds": round(time.monotonic() - started, 4),
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            "pruned": pruned,
        }
        log.info("%s", json.dumps(out.record))

    def _fit_failed(self, what: str, e: BaseException) -> None:
        log.error("%s", json.dumps({"event": f"{what}_fit_failed", "version": self.version,
                                    "error": f"{type(e).__name__}: {e}"}))

    def _prune(self) -> list[str]:
        """Keep ``config.keep`` versions; after an erasure keep only this one, retrying until
        done (the erasure's bound on stored snapshots, docs/feedback.md)."""
        attempt = 0
        while True:
            try:
                pruned = self.store.prune(1 if self.prune_all else self.config.keep)
                if self.prune_all:
                    self.metrics.erasure_prunes.inc(len(pruned))
                return pruned
            except StoreError as e:
                if not self.prune_all:
                    log.warning("pruning old snapshots failed (%s); will prune next time", e)
                    return []
                delay = backoff(attempt)
                attempt += 1
                log.warning("pruning snapshots older than erasure failed (%s); retry in %.1f s",
                            e, delay)
                if self.stop.wait(delay):
                    return []

    def _publish(self, snapshot_dir: Path) -> bool:
        attempt = 0
        while True:
            try:
                self.store.publish(snapshot_dir, self.version)
                return True
            except StoreUnavailable as e:
                self.metrics.upload_failures.inc()
                delay = backoff(attempt)
                attempt += 1
                log.warning("%s", json.dumps({
                    "event": "upload_failed", "version": self.version, "attempt": attempt,
                    "retry_in": delay, "error": str(e)}))
                if self.stop.wait(delay):
                    log.warning("stopping: snapshot %s abandoned before upload", self.version)
                    return False

    def _notify(self) -> None:
        topic = self.config.notify
        if topic is None or self.sink is None:
            return
        try:
            self.sink.produce(topic, self.version.encode())
            self.sink.flush(10.0)
        except SourceUnavailable as e:  # serving also polls LATEST; a lost notify only delays
            log.warning("notify on %s failed: %s", topic, e)
