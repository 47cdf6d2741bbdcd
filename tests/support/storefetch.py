"""What every snapshot store's window-less and group fetches must do, checked the same way
for each store (``tests/unit/test_stores_local.py``, ``tests/integration/test_stores_s3.py``).

Not a test module (no ``test_`` prefix).
"""

from __future__ import annotations

from pathlib import Path

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.adapters.storebase import WINDOW_OBJECTS
from streamrec.adapters.stores import SnapshotStore
from streamrec.core.events.partitioning import partition_for
from streamrec.core.scoring.model import Model
from streamrec.core.snapshot.usersides import UserShard, parse_part
from streamrec.core.window.sliding import SlidingWindow


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


def check_group_fetch(store: SnapshotStore, fitted: tuple[Model, SlidingWindow],
                      tmp: Path) -> None:
    """A snapshot split into 4 user partitions (format 9): a fetch for a group's shard takes
    the item side and that shard's partitions only, reads back with just its users, and is
    reused; a fetch for every user afterwards completes the same copy."""
    model, window = fitted
    version = "000000000009"
    write_snapshot(tmp / "build", model, window.contents(), {0: 1}, version, user_partitions=4)
    store.publish(tmp / "build", version)
    shard = UserShard(4, frozenset({1, 3}))
    path = store.fetch(version, tmp / "cache", window=False, shard=shard)
    fetched = {p.name for p in path.iterdir() if p.name.startswith("users.")}
    assert fetched and {parse_part(n.removesuffix(".npy"))[0] for n in fetched} == {1, 3}
    assert "als.item_factors.npy" in {p.name for p in path.iterdir()}
    mine = read_snapshot(path, window=False, shard=shard).model.user_ids
    assert mine.tolist() == [u for u in model.user_ids if partition_for(u, 4) in {1, 3}]
    stamp = (path / "als.item_factors.npy").stat().st_mtime_ns
    assert store.fetch(version, tmp / "cache", window=False, shard=shard) == path
    assert (path / "als.item_factors.npy").stat().st_mtime_ns == stamp  # reused
    whole = store.fetch(version, tmp / "cache", window=False)  # every user: the rest too
    assert sorted(read_snapshot(whole, window=False).model.user_ids) == sorted(model.user_ids)
