"""Publishers racing on one snapshot store while a reader follows LATEST (any backend)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.stores import SnapshotStore


def race(publishers: Sequence[SnapshotStore], reader: SnapshotStore,
         make: Callable[[str], Path], cache: Path,
         versions_per_publisher: Sequence[Sequence[str]]) -> list[str]:
    """One thread per publisher store publishes its versions while ``reader`` keeps following
    LATEST; every LATEST it sees must fetch and verify, with offsets ``{0: int(version)}``
    (``make`` writes them so). Returns the versions the reader saw.

    The stores are made by the caller in its own thread: boto3 clients built from the default
    session are not thread-safe to create.
    """
    for versions in versions_per_publisher:  # write the local snapshots up front
        for version in versions:
            make(version)
    errors: list[BaseException] = []
    seen: list[str] = []
    done = threading.Event()

    def publish(store: SnapshotStore, versions: Sequence[str]) -> None:
        try:
            for version in versions:
                store.publish(make(version), version)
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    def read() -> None:
        try:
            while not done.is_set():
                version = reader.latest()
                if version is not None:
                    snap = read_snapshot(reader.fetch(version, cache))
                    assert snap.version == version and snap.offsets == {0: int(version)}
                    seen.append(version)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish, args=(store, versions))
               for store, versions in zip(publishers, versions_per_publisher, strict=True)]
    reading = threading.Thread(target=read)
    reading.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    done.set()
    reading.join(timeout=60)
    assert not errors, errors
    assert not any(t.is_alive() for t in [*threads, reading])
    return seen
