"""The trainer's loop: consume, parse, window, and hand retrains to a worker thread.

`Trainer` knows only the `EventSource`/`EventSink`/`SnapshotStore` interfaces, so the cluster
(Kafka + S3, wired in `cli.py`) and the embedded mode (local log + local store) run this same
code. One ``step()`` polls a batch, sends invalid messages to the dead-letter topic, appends the
valid events to the window, records the positions, and starts a fit when the policy says so.
The window and positions change together under one lock, and a fit copies both under that
lock, so every snapshot's offsets are exactly the messages its window has seen.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from streamrec.adapters.erasurekeys import erasure_hasher
from streamrec.adapters.source import EventSink, EventSource, SourceMessage, SourceUnavailable
from streamrec.adapters.storebase import SnapshotStore, StoreError, TrainingReports
from streamrec.config import Config
from streamrec.core.catalog.records import Catalogue
from streamrec.core.events import InvalidEvent
from streamrec.core.events.erasure import Tombstones
from streamrec.core.events.erasurekey import KeyUnavailable
from streamrec.core.events.partitioning import UserPartitions, partition_for
from streamrec.core.snapshot.manifest import next_version
from streamrec.core.snapshot.trainingstatus import TrainingStatus
from streamrec.core.window.sliding import SlidingWindow

from .engines import Engine, engine_for
from .ingest import dead_letter_headers, ingest, ingest_items
from .job import FitJob, JobOutcome
from .metrics import TrainerMetrics
from .policy import RetrainPolicy
from .resume import GroupOffsets, ResumePoint, resume, retry

__all__ = ["Trainer"]

log = logging.getLogger(__name__)

_PARTITIONS_EVERY_S = 30.0  # the partition count, for the misrouted check (a metadata call)
_LAG_EVERY_S = 5.0  # lag costs a round trip per partition; refresh it this often
_FIT_RETRY_S = 30.0  # after a failed fit, wait this long before the next one


class Trainer:
    """Consume ``source`` into a sliding window; retrain and publish snapshots to ``store``.

    Parameters
    ----------
    config : Config
        Topic names, format, window and retrain settings, ALS parameters, ``keep``.
    source : EventSource
        The interactions log. If it also offers `GroupOffsets` (Kafka), the no-snapshot
        start can use committed or end offsets, and published offsets are committed.
    sink : EventSink or None
        For dead letters and the notify message; None drops both (logged).
    store : SnapshotStore
        Where snapshots go.
    metrics : TrainerMetrics, optional
    items : EventSource, optional
        The items topic (``core.catalog``): records kept in a catalogue that goes into every
        snapshot; malformed ones go to the dead-letter topic. None: no catalogue is kept.
    clock : callable, optional
        Monotonic seconds, for the retrain interval.
    workdir : Path, optional
        Scratch space for snapshots before upload; a temp dir if not given.
    engine : Engine, optional
        What fits the window; None: the one ``config.training_engine`` names, owned (and
        closed at `shutdown`) by this trainer. One given here stays its caller's to close.
    """

    def __init__(self, config: Config, source: EventSource, sink: EventSink | None,
                 store: SnapshotStore, metrics: TrainerMetrics | None = None,
                 clock: Callable[[], float] = time.monotonic, workdir: Path | None = None,
                 max_batch: int = 10_000, items: EventSource | None = None,
                 engine: Engine | None = None) -> None:
        self.config, self.source, self.sink, self.store = config, source, sink, store
        self.items = items
        self.catalog = Catalogue()
        self.item_positions: dict[int, int] = {}
        self.metrics = metrics or TrainerMetrics()
        self.policy = RetrainPolicy(config.retrain_every, config.retrain_interval, clock)
        self.window = SlidingWindow(config.window_size, config.decay_half_life)
        #: implicit in this process, or a Spark driver (``training_engine``, engines.py).
        self.engine = engine_for(config) if engine is None else engine
        self._owns_engine = engine is None
        #: Erased users and items (core/events/erasure.py): applied to every batch and the window,
        #: written into every snapshot, restored on resume. Keyed hashes, never ids.
        self.hasher = erasure_hasher(config.erasure_key, store)
        self.tombstones = Tombstones(self.hasher)
        #: An erasure no published snapshot reflects yet: the next publish prunes every
        #: older version (docs/feedback.md, "Forgetting").
        self._erased_unpublished = False
        self.positions: dict[int, int] = {}
        self.version: str | None = None  # last snapshot resumed from or published
        self.published: list[str] = []  # versions published by this trainer, in order
        self.training = TrainingStatus()  # the fit report, see core/snapshot/trainingstatus.py
        self.max_batch = max_batch
        self._last_version: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._outcome: JobOutcome | None = None
        self._resumed: ResumePoint | None = None
        self._lag_at = float("-inf")
        self._partitions, self._partitions_at = UserPartitions(1), float("-inf")
        self._tmp = None if workdir is not None else tempfile.TemporaryDirectory(
            prefix="streamrec-trainer-")
        self.workdir = workdir if workdir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.workdir.mkdir(parents=True, exist_ok=True)

    # --- start ------------------------------------------------------------------------------

    def resume(self, stop: threading.Event | None = None) -> ResumePoint | None:
        """Restore from the newest snapshot (see `resume`); None if stopped while waiting."""
        # The erasure key first: every erasure, and every event once one exists, needs it.
        if retry("reading the erasure key", self.hasher.key, stop or self._stop,
                 (KeyUnavailable,)) is None:
            return None
        point = resume(self.config, self.source, self.store, self.workdir, stop or self._stop)
        if point is None:
            return None
        with self._lock:
            self.window = point.window
            self.positions = dict(point.offsets)
            self.catalog = point.catalog
            self.item_positions = dict(point.item_offsets)
            tombstones = point.tombstones.copy()
            if tombstones.legacy:
                # A format-5 snapshot held erased ids in clear: the next publish prunes every
                # version that still does.
                self._erased_unpublished = True
            self.tombstones = tombstones.bind(self.hasher)
        if self.items is not None:
            items = self.items

            def seek() -> bool:
                items.seek(point.item_offsets)
                return True

            if retry("seeking the items topic", seek, stop or self._stop,
                     (SourceUnavailable,)) is None:
                return None
        self.version, self._last_version, self._resumed = (point.version, point.last_version,
                                                           point)
        self.metrics.window_size.set(len(self.window))
        self.training = self._last_report()
        if point.version is not None:
            self.metrics.snapshot_version.set(int(point.version))
        return point

    def _last_report(self) -> TrainingStatus:
        """The fit report a previous run left in the store, so that a restart continues its
        counts and keeps its last error visible; a fresh one if there is none or it is bad."""
        if not isinstance(self.store, TrainingReports):
            return TrainingStatus()
        try:
            raw = self.store.training_status()
            return TrainingStatus() if raw is None else TrainingStatus.from_bytes(raw)
        except (StoreError, ValueError) as e:
            log.warning("ignoring the stored training status: %s", e)
            return TrainingStatus()

    # --- the loop ---------------------------------------------------------------------------

    def run(self, stop: threading.Event, grace: float = 30.0) -> None:
        """Resume, then step until ``stop`` is set; then `shutdown` with ``grace`` seconds."""
        if self._resumed is None and self.resume(stop) is None:
            self.shutdown(grace)
            return
        try:
            while not stop.is_set():
                self.step()
        finally:
            self.shutdown(grace)

    def step(self, timeout: float = 0.5) -> int:
        """Poll once, take in the batch, reap a finished fit, start one if due.

        Returns the number of messages handled.
        """
        wait = None if self.fitting else self.policy.seconds_until_due()
        if wait is not None:
            timeout = min(timeout, wait)
        try:
            messages = self.source.poll(self.max_batch, timeout)
        except SourceUnavailable as e:  # the log is away: keep the loop (and fits) alive
            log.warning("poll failed: %s", e)
            self._stop.wait(min(max(timeout, 0.1), 1.0))
            messages = []
        if messages:
            self._take(messages)
        if self.items is not None:
            self._take_items(self.items)
        self._reap()
        if self.policy.should_start():
            self._start_fit()
        now = time.monotonic()
        if now - self._lag_at >= _LAG_EVERY_S:
            self._lag_at = now
            lag = self.source.lag()
            self.metrics.lag.set(-1 if lag is None else lag)
        self.metrics.last_step = now
        return len(messages)

    def _partitioning(self) -> UserPartitions:
        """The topic's partitioning, its count looked up at most every `_PARTITIONS_EVERY_S`."""
        now = time.monotonic()
        if now - self._partitions_at >= _PARTITIONS_EVERY_S:
            self._partitions_at = now
            try:
                count = len(self.source.partitions())
            except SourceUnavailable as e:
                log.warning("partition count unknown (%s); keeping %d", e,
                            self._partitions.partitions)
            else:
                if count != self._partitions.partitions:
                    self._partitions = UserPartitions(count)
                wanted = self.config.topic_partitions
                if wanted is not None and wanted != count:
                    # At every look, not only when the count changes: a topic of one partition
                    # matches the starting count. Serving groups own users by the configured
                    # count (core/groups.py).
                    log.warning("topic %s has %d partitions, topic_partitions says %d: "
                                "serving groups would look for users on the wrong "
                                "partitions", self.config.topic, count, wanted)
        return self._partitions

    def _take(self, messages: list[SourceMessage]) -> None:
        batch = ingest(messages, self.config.format, self.config.min_weight,
                       weights=self.config.feedback, partitions=self._partitioning())
        self._dead_letter(batch.dead, None)
        self._misrouted(batch.misrouted)
        positions = self.source.positions()
        with self._lock:
            fresh = Tombstones.of((e for e in batch.erasures if self.tombstones.add(e)),
                                  self.hasher)
            # Erasures first: an erased user's event later in this batch but dated before the
            # erasure is erased too (core/events/erasure.py has the rule).
            kept = [e for e in batch.events
                    if not self.tombstones.erased(e.user, e.item, e.ts)] \
                if len(self.tombstones) else batch.events
            before = self.window.duplicates
            self.window.extend(kept)
            duplicates = self.window.duplicates - before  # retries (core/events/eventids.py)
            removed = self.window.erase(fresh) if len(fresh) else 0
            if fresh.items:  # an erased item's catalogue record goes too
                for item in self.catalog.items():
                    if fresh.has_item(item):
                        self.catalog.remove(item)
            self.positions = positions
            size = len(self.window)
            if len(fresh):
                self._erased_unpublished = True
        if len(fresh):
            self.policy.hurry()
            for erasure in batch.erasures:
                self.metrics.erasures.labels(erasure.kind).inc()
            log.info("erased %d users and %d items: %d events left the window",
                     len(fresh.users), len(fresh.items), removed)
        self.metrics.erased_events.inc(removed + len(batch.events) - len(kept))
        self.policy.on_events(len(kept) - duplicates)
        self.metrics.consumed.inc(len(messages))
        self.metrics.accepted.inc(len(kept) - duplicates)
        self.metrics.duplicates.inc(duplicates)
        self.metrics.filtered.inc(batch.filtered)
        self.metrics.window_size.set(size)

    def _misrouted(self, wrong: Sequence[tuple[SourceMessage, str]]) -> None:
        """Count and log events on a partition their user does not hash to. They are kept:
        every consumer reads every partition today, so nothing is lost; a producer without
        ``partitioner=murmur2_random`` (or keying by something else) is the usual cause."""
        if not wrong:
            return
        for msg, _ in wrong:
            self.metrics.misrouted.labels(str(msg.partition)).inc()
        msg, user = wrong[0]
        # The offset, not the user id: an erased user's id must not linger in logs.
        log.warning("%d events on a partition their user does not hash to, e.g. the one at "
                    "%d:%d (its user hashes to partition %d of %d): a producer without "
                    "partitioner=murmur2_random, or keyed by something else than the user? "
                    "(docs/trainer.md, \"Partitions\"); kept", len(wrong), msg.partition,
                    msg.offset, partition_for(user, self._partitions.partitions),
                    self._partitions.partitions)

    def _dead_letter(self, dead: Sequence[tuple[SourceMessage, InvalidEvent]],
                     topic: str | None) -> None:
        for msg, err in dead:
            self.metrics.invalid.labels(err.reason).inc()
            if self.sink is None:
                log.warning("invalid message at %d:%d dropped: %s", msg.partition, msg.offset, err)
                continue
            try:
                self.sink.produce(self.config.dlq, msg.value or b"", key=msg.key,
                                  headers=dead_letter_headers(msg, err, topic))
            except SourceUnavailable as e:
                log.error("dead letter for %d:%d lost: %s", msg.partition, msg.offset, e)

    def _take_items(self, items: EventSource) -> None:
        """Apply what the items topic has now (no wait): the catalogue of the next snapshot."""
        try:
            messages = items.poll(self.max_batch, 0.0)
        except SourceUnavailable as e:
            log.warning("items poll failed: %s", e)
            return
        if not messages:
            return
        records, dead = ingest_items(messages)
        self._dead_letter(dead, self.config.items)
        positions = items.positions()
        with self._lock:
            for r in records:
                if not self.tombstones.has_item(r.item):  # erased for good: never back
                    self.catalog.upsert(r)
            self.item_positions = positions
            size = len(self.catalog)
        self.metrics.items.inc(len(records))
        self.metrics.catalog_size.set(size)

    # --- retrains ---------------------------------------------------------------------------

    def _start_fit(self) -> None:
        before = self.policy.coalesced
        new_events = self.policy.start()
        self.metrics.coalesced.inc(self.policy.coalesced - before)
        with self._lock:
            matrix = self.window.build()
            contents = self.window.contents()
            offsets = dict(self.positions)
            tombstones = self.tombstones.copy()
            prune_all, self._erased_unpublished = self._erased_unpublished, False
            # A copy (O(changes since the base)); its arrays are built by the job, off the lock.
            catalog = (self.catalog.copy(), dict(self.item_positions))
        job = FitJob(self.config, self.store, self.sink, self.metrics, self._stop, self.workdir,
                     matrix, contents, offsets, next_version(self._last_version), new_events,
                     self.training, catalog, tombstones, prune_all, self.engine)
        self._outcome = None

        def work() -> None:
            self._outcome = job.run()

        self._thread = threading.Thread(target=work, name=f"fit-{job.version}", daemon=True)
        self._thread.start()

    @property
    def fitting(self) -> bool:
        return self._thread is not None

    def _reap(self) -> None:
        if self._thread is None or self._thread.is_alive():
            return
        self._thread = None
        outcome, self._outcome = self._outcome, None
        if outcome is not None and outcome.training is not None:
            self.training = outcome.training
        if outcome is None or not outcome.published:
            if outcome is None or outcome.prune_all:
                with self._lock:  # the next publish must still prune the older versions
                    self._erased_unpublished = True
            self.policy.finish(ok=False, retry_after=_FIT_RETRY_S)
            if outcome is not None and outcome.reason == "empty_window":
                # An erasure that emptied the window: nothing to fit until events come (then
                # that publish prunes); no retry every 30 s meanwhile.
                self.policy.urgent = False
            return
        self.policy.finish(ok=True)
        self.version = self._last_version = outcome.version
        self.published.append(outcome.version)
        self.metrics.retrains.inc()
        self.metrics.snapshot_version.set(int(outcome.version))
        if isinstance(self.source, GroupOffsets):
            self.source.commit(outcome.offsets)  # courtesy: lag dashboards, no-snapshot start

    def wait_idle(self, timeout: float) -> bool:
        """Join a running fit for up to ``timeout`` seconds and reap it; True if none is left."""
        if self._thread is not None:
            self._thread.join(timeout)
        self._reap()
        return self._thread is None

    def shutdown(self, grace: float = 30.0) -> None:
        """Let a running fit finish for up to ``grace`` seconds (its upload retries stop at
        once), then close the source and flush the sink. A fit still running is abandoned:
        its thread is a daemon and nothing it half-wrote is ever LATEST."""
        self._stop.set()
        if not self.wait_idle(grace):
            log.warning("stopping with a fit still running; it is abandoned")
        if self._owns_engine:
            self.engine.close()  # a Spark fit still running is cancelled, its JVM stopped
        self.source.close()
        if self.sink is not None:
            self.sink.flush(10.0)
        if self._tmp is not None and self._thread is None:
            self._tmp.cleanup()
