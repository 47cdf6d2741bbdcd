"""Where the trainer starts: the newest readable snapshot, or a documented place in the log.

A snapshot holds the window *and* the offsets of the next message after that window, written
together, so seeking to those offsets and re-reading from there rebuilds exactly the state a
killed trainer had: nothing is lost and nothing is counted twice.

With no snapshot the start is, in order:

1. ``from_beginning``: the beginning of every partition;
2. else the group's committed offsets, if the source has any (the trainer commits each
   published snapshot's offsets, and the start point it chose before its first snapshot);
3. else the end of the log (only new events), like the original service without ``-b``.

A snapshot that cannot be read (corrupt, incomplete) is logged and the next older one is tried.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.source import EventSource, SourceUnavailable
from streamrec.adapters.storebase import SnapshotStore, StoreUnavailable, VersionNotFound
from streamrec.config import Config
from streamrec.core.catalog.records import Catalogue
from streamrec.core.events.erasure import Tombstones
from streamrec.core.snapshot.arrays import Snapshot
from streamrec.core.snapshot.manifest import SnapshotError
from streamrec.core.window.sliding import SlidingWindow

from .policy import backoff

__all__ = ["GroupOffsets", "ResumePoint", "resume", "retry"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@runtime_checkable
class GroupOffsets(Protocol):
    """What a source may offer beyond `EventSource` (Kafka does; the local log need not)."""

    def committed(self) -> dict[int, int]: ...

    def end_offsets(self) -> dict[int, int]: ...

    def commit(self, offsets: Mapping[int, int]) -> bool: ...


@dataclass
class ResumePoint:
    """The restored state. ``last_version``: the highest version in the store (new ones follow)."""

    window: SlidingWindow
    offsets: dict[int, int]
    version: str | None  # the snapshot resumed from
    last_version: str | None
    how: str  # "snapshot", "beginning", "committed" or "end"
    #: The snapshot's item catalogue and the items-topic offsets it holds (empty: from the
    #: beginning of the items topic).
    catalog: Catalogue = field(default_factory=Catalogue)
    item_offsets: dict[int, int] = field(default_factory=dict)
    # erased ids (core/events/erasure.py)
    tombstones: Tombstones = field(default_factory=Tombstones)


def retry(what: str, call: Callable[[], T], stop: threading.Event,
             errors: tuple[type[Exception], ...]) -> T | None:
    """Call ``call()`` until it succeeds, with backoff; None if ``stop`` is set first."""
    attempt = 0
    while not stop.is_set():
        try:
            return call()
        except errors as e:
            delay = backoff(attempt)
            log.warning("%s failed (%s); retrying in %.1f s", what, e, delay)
            attempt += 1
            stop.wait(delay)
    return None


def _load_newest(store: SnapshotStore, versions: list[str], workdir: Path,
                 config: Config) -> tuple[str, SlidingWindow, dict[int, int], Snapshot] | None:
    for version in reversed(versions):
        dest = workdir / "resume"
        try:
            path = store.fetch(version, dest)
            snap = read_snapshot(path, verify=True, mmap=False)
            window = SlidingWindow.from_contents(snap.window, capacity=config.window_size,
                                                 decay_half_life=config.decay_half_life)
            return version, window, dict(snap.offsets), snap
        except (SnapshotError, VersionNotFound, ValueError) as e:
            log.error("snapshot %s cannot be resumed from (%s); trying an older one", version, e)
        finally:
            shutil.rmtree(dest, ignore_errors=True)
    return None


def resume(config: Config, source: EventSource, store: SnapshotStore, workdir: Path,
           stop: threading.Event) -> ResumePoint | None:
    """Restore the window and seek ``source``; None if ``stop`` was set while waiting.

    Store and broker outages are waited out (with backoff): starting without a snapshot that
    exists would throw the window away.
    """
    def listing() -> tuple[str | None, list[str]]:
        latest = store.latest()
        versions = store.versions()
        if latest is not None and latest not in versions:
            versions = sorted({*versions, latest})
        return latest, versions

    listed = retry("listing snapshots", listing, stop, (StoreUnavailable,))
    if listed is None:
        return None
    latest, versions = listed
    last_version = versions[-1] if versions else None
    usable = [v for v in versions if latest is None or v <= latest]
    loaded = retry("loading a snapshot", lambda: _load_newest(store, usable, workdir, config),
                   stop, (StoreUnavailable,))
    if loaded is None and usable and stop.is_set():
        return None
    if loaded is not None:
        version, window, offsets, snap = loaded
        point = ResumePoint(window, offsets, version, last_version, "snapshot", snap.catalog,
                            snap.item_offsets, snap.tombstones)
    else:
        offsets, how = _start_without_snapshot(config, source, stop)
        point = ResumePoint(SlidingWindow(config.window_size, config.decay_half_life),
                            offsets, None, last_version, how)
    def seek() -> bool:
        source.seek(point.offsets)
        return True

    if retry("seeking", seek, stop, (SourceUnavailable,)) is None:
        return None
    log.info("resumed from %s%s at offsets %s (%d events in the window)", point.how,
             f" {point.version}" if point.version else "", point.offsets, len(point.window))
    return point


def _start_without_snapshot(config: Config, source: EventSource,
                            stop: threading.Event) -> tuple[dict[int, int], str]:
    if config.from_beginning or not isinstance(source, GroupOffsets):
        return {}, "beginning"
    committed = retry("reading committed offsets", source.committed, stop,
                      (SourceUnavailable,)) or {}
    if committed:
        return committed, "committed"
    end = retry("reading end offsets", source.end_offsets, stop, (SourceUnavailable,)) or {}
    # Remember the chosen start, so a crash before the first snapshot resumes from it.
    source.commit(end)
    return end, "end"
