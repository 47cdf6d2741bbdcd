"""What every snapshot store's window-less fetch must do, checked the same way for each store
(``tests/unit/test_stores_local.py``, ``tests/integration/test_stores_s3.py``).

Not a test module (no ``test_`` prefix).
"""

from __future__ import annotations

from pathlib import Path

from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.storebase import WINDOW_OBJECTS
from streamrec.adapters.stores import SnapshotStore


def check_window_less_fetch(store: SnapshotStore, version: str, cache: Path) -> None:
    """``fetch(window=False)`` leaves the window's files out, reads back complete for serving
    and is reused; a full fetch afterwards completes the same copy with the window."""
    path = store.fetch(version, cache, window=False)
    assert not WINDOW_OBJECTS & {p.name for p in path.iterdir()}
    snap = read_snapshot(path, window=False)  # serving's read: complete for it, verified
    assert snap.version == version and len(snap.window) == 0
    assert store.fetch(version, cache, window=False) == path  # reused
    full = store.fetch(version, cache)  # a trainer's fetch: the window too
    assert {p.name for p in full.iterdir()} >= WINDOW_OBJECTS
    assert len(read_snapshot(full).window) > 0
