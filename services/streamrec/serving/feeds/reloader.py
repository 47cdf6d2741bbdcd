"""Hot reload: follow the store's LATEST, load and verify, then swap one reference.

`Holder.current()` is read once per request; the request keeps that `Served` object (and the
memory-mapped arrays behind it) until it returns, so a swap never changes a model under a
running request. A new version is fetched into the local cache directory (one fetch at a time
across the workers of a replica, under a file lock, so they all map the *same* files and share
their pages), read with ``verify=True, mmap=True``, and only then published by a single
assignment. A version that fails to load is refused, logged, counted, and not retried until
LATEST names another one; the old model keeps serving.
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.source import EventSource
from streamrec.adapters.stores import SnapshotStore, StoreError, StoreUnavailable
from streamrec.core.snapshot.layout import partitions_to_read, user_partitions
from streamrec.core.snapshot.manifest import Manifest, SnapshotError
from streamrec.core.snapshot.usersides import UserShard

from .. import metrics
from ..live.holder import Holder, Served

log = logging.getLogger(__name__)



@contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class Reloader:
    """Polls ``store.latest()``; `check_once` is one tick (tests drive it directly)."""

    def __init__(self, store: SnapshotStore, holder: Holder, cache_dir: Path,
                 interval: float = 5.0,
                 notify_factory: Callable[[], EventSource] | None = None,
                 shard: UserShard | None = None) -> None:
        self.store, self.holder, self.cache = store, holder, Path(cache_dir)
        #: A serving group's user partitions: of a snapshot whose user side is split by
        #: partition (format 9) only these are fetched and mapped; None: every user.
        self.shard = shard
        self.interval = interval
        self.notify_factory = notify_factory
        self.refused: set[str] = set()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def check_once(self) -> bool:
        """Load LATEST if it is new; True when a new snapshot is now served."""
        try:
            version = self.store.latest()
        except StoreError as e:
            metrics.RELOADS.labels("unavailable").inc()
            log.warning("snapshot store unavailable: %s", e)
            return False
        current = self.holder.current()
        if version is None or version in self.refused:
            return False
        if current is not None and current.version == version:
            return False
        try:
            with _cache_lock(self.cache):
                # No window, fetched or read: only a trainer resumes from it (its ids alone
                # were ~10 MB private per worker at 100k users; its files ~4.7 GB at 10M).
                path = self.store.fetch(version, self.cache, window=False, shard=self.shard)
                snapshot = read_snapshot(path, verify=True, mmap=True, window=False,
                                         shard=self.shard)
                self._prune_cache(keep={version})
        except (StoreUnavailable, OSError) as e:
            metrics.RELOADS.labels("unavailable").inc()
            log.warning("cannot fetch snapshot %s (will retry): %s", version, e)
            return False
        except (SnapshotError, StoreError) as e:
            self.refused.add(version)
            metrics.RELOADS.labels("refused").inc()
            log.error("refusing snapshot %s, still serving %s: %s", version,
                      current.version if current else "nothing", e)
            shutil.rmtree(self.cache / version, ignore_errors=True)
            return False
        served = Served(snapshot)
        snapshot.model.als.gram  # noqa: B018  (warm the fold-in cache before the first request)
        self.holder.swap(served)
        metrics.RELOADS.labels("loaded").inc()
        metrics.SNAPSHOT_CREATED.set(snapshot.manifest.created_at_unix)
        metrics.served(version, current.version if current else None)
        log.info("serving snapshot %s (%r)", version, snapshot.model)
        self._check_split(snapshot.manifest)
        return True

    def _check_split(self, manifest: Manifest) -> None:
        if self.shard is not None and partitions_to_read(manifest, self.shard) is None:
            log.warning("snapshot %s splits its users into %d partition(s), this group "
                        "expects %d (topic_partitions): it maps every user, not only its own",
                        manifest.version, user_partitions(manifest), self.shard.partitions)

    def _prune_cache(self, keep: set[str]) -> None:
        """Remove every cached version but ``keep`` (the one just loaded), and the debris of
        interrupted fetches; the caller holds the cache lock, so no fetch is running.

        An older version may hold ids erased since (docs/feedback.md, "Forgetting"), so none
        is kept once a newer one serves; a worker still serving one keeps its mapped pages
        (unlinked files stay readable until unmapped).
        """
        doomed = [p.name for p in self.cache.iterdir()
                  if p.is_dir() and p.name not in keep]
        for name in doomed:
            shutil.rmtree(self.cache / name, ignore_errors=True)

    # --- background ---------------------------------------------------------------------

    def start(self) -> None:
        self._threads.append(self._spawn(self._poll_loop, "snapshot-poll"))
        if self.notify_factory is not None:
            self._threads.append(self._spawn(self._notify_loop, "snapshot-notify"))

    def _spawn(self, target: Callable[[], None], name: str) -> threading.Thread:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def _poll_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception:  # a bug here must not end reloading for the worker's lifetime
                log.exception("snapshot reload failed unexpectedly")
            self._wake.wait(self.interval)
            self._wake.clear()

    def _notify_loop(self) -> None:
        """Any message on the notify topic wakes the poller at once (LATEST stays the truth)."""
        assert self.notify_factory is not None
        source = self.notify_factory()
        try:
            source.seek({})
            while not self._stop.is_set():
                if source.poll(100, 1.0):
                    self._wake.set()
        except Exception:  # the poll loop still reloads; notify only makes it faster
            log.exception("notify listener stopped; polling continues")
        finally:
            source.close()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout)
