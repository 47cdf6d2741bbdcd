"""LocalStore: publish order, LATEST, atomic fetch, pruning, and failures as StoreUnavailable."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tests.support.storefetch import check_group_fetch, check_window_less_fetch
from tests.support.storerace import race

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.adapters.stores import (
    LocalStore,
    S3Store,
    SnapshotStore,
    StoreError,
    StoreUnavailable,
    VersionNotFound,
    open_store,
)
from streamrec.core.events import Event
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.training import fit
from streamrec.core.snapshot.manifest import MANIFEST_NAME, next_version
from streamrec.core.window.sliding import SlidingWindow
from streamrec.settings.sections import S3Settings


@pytest.fixture(scope="module")
def fitted() -> tuple[Model, SlidingWindow]:
    window = SlidingWindow(40)
    window.extend(Event(f"u{k % 5}", f"i{k % 7}") for k in range(40))
    return fit(window.build(), ALSParams(factors=3, iterations=2, num_threads=1)), window


@pytest.fixture
def make_snapshot(tmp_path, fitted):
    model, window = fitted

    def make(version: str, offset: int = 0) -> Path:
        path = tmp_path / "local" / version
        if not path.exists():
            write_snapshot(path, model, window.contents(), {0: offset}, version)
        return path

    return make


@pytest.fixture
def store(tmp_path) -> LocalStore:
    return LocalStore(tmp_path / "store")


def publish_many(store: LocalStore, make_snapshot, count: int) -> list[str]:
    versions, version = [], None
    for k in range(count):
        version = next_version(version)
        store.publish(make_snapshot(version, k), version)
        versions.append(version)
    return versions


def test_a_local_store_is_a_snapshot_store(store):
    assert isinstance(store, SnapshotStore)


def test_empty_store_has_no_latest_and_no_versions(store):
    assert store.latest() is None and store.versions() == []


def test_publish_moves_latest_and_lists_the_version(store, make_snapshot):
    versions = publish_many(store, make_snapshot, 3)
    assert store.latest() == versions[-1]
    assert store.versions() == versions
    assert (store.root / "LATEST").read_text().strip() == versions[-1]
    assert sorted(p.name for p in (store.root / "snapshots" / versions[0]).iterdir()) == sorted(
        p.name for p in make_snapshot("000000000099").iterdir()
    )


def test_fetch_gives_a_loadable_local_copy(store, make_snapshot, tmp_path):
    [version] = publish_many(store, make_snapshot, 1)
    path = store.fetch(version, tmp_path / "cache")
    assert path == tmp_path / "cache" / version
    snap = read_snapshot(path)
    assert snap.version == version and snap.offsets == {0: 0}


def test_fetching_again_reuses_the_complete_copy(store, make_snapshot, tmp_path):
    [version] = publish_many(store, make_snapshot, 1)
    first = store.fetch(version, tmp_path / "cache")
    marker = first / "marker"
    marker.write_text("still here")
    assert store.fetch(version, tmp_path / "cache") == first and marker.exists()


def test_fetch_replaces_an_incomplete_leftover(store, make_snapshot, tmp_path):
    [version] = publish_many(store, make_snapshot, 1)
    leftover = tmp_path / "cache" / version
    leftover.mkdir(parents=True)
    (leftover / "als.user_factors.npy").write_bytes(b"half")
    read_snapshot(store.fetch(version, tmp_path / "cache"))


def test_a_fetch_without_the_window_leaves_its_files_out_and_a_full_fetch_completes_it(
        store, make_snapshot, tmp_path):
    [version] = publish_many(store, make_snapshot, 1)
    check_window_less_fetch(store, version, tmp_path / "cache")


def test_a_group_fetches_the_item_side_and_its_own_user_partitions_only(store, fitted, tmp_path):
    check_group_fetch(store, fitted, tmp_path)


def test_fetching_an_unknown_version_raises_version_not_found(store, tmp_path):
    with pytest.raises(VersionNotFound):
        store.fetch("000000000042", tmp_path / "cache")
    assert not (tmp_path / "cache" / "000000000042").exists()


def test_a_directory_without_manifest_cannot_be_published(store, make_snapshot):
    path = make_snapshot("000000000001")
    (path / MANIFEST_NAME).unlink()
    with pytest.raises(StoreError, match="manifest"):
        store.publish(path, "000000000001")
    assert store.versions() == [] and store.latest() is None


def test_republishing_the_same_snapshot_only_moves_latest(store, make_snapshot):
    first, second = publish_many(store, make_snapshot, 2)
    store.publish(make_snapshot(first), first)
    assert store.latest() == first and store.versions() == [first, second]


def test_publishing_other_content_under_a_used_version_is_refused(store, make_snapshot, tmp_path):
    [version] = publish_many(store, make_snapshot, 1)
    different = tmp_path / "different"
    different.mkdir()
    (different / MANIFEST_NAME).write_text("{}")
    with pytest.raises(StoreError, match="already published"):
        store.publish(different, version)
    assert read_snapshot(store.fetch(version, tmp_path / "cache")).version == version


def test_prune_keeps_the_newest_and_never_the_latest(store, make_snapshot):
    versions = publish_many(store, make_snapshot, 5)
    store.publish(store.root / "snapshots" / versions[1], versions[1])  # LATEST back to #2
    removed = store.prune(keep=2)
    assert removed == [versions[0], versions[2]]
    assert store.versions() == [versions[1], versions[3], versions[4]]
    assert store.latest() == versions[1]
    with pytest.raises(ValueError):
        store.prune(keep=0)


def test_a_fetched_copy_survives_pruning(store, make_snapshot, tmp_path):
    versions = publish_many(store, make_snapshot, 3)
    path = store.fetch(versions[0], tmp_path / "cache")
    store.prune(keep=1)
    assert read_snapshot(path).version == versions[0]


def test_versions_ignore_unfinished_and_temporary_directories(store, make_snapshot):
    [version] = publish_many(store, make_snapshot, 1)
    (store.root / "snapshots" / "000000000009").mkdir()  # no manifest: never completed
    (store.root / "snapshots" / ".tmp-000000000010-x").mkdir()
    assert store.versions() == [version]


def test_prune_clears_stale_temporary_directories(store, make_snapshot):
    publish_many(store, make_snapshot, 1)
    stale = store.root / "snapshots" / ".tmp-000000000002-dead"
    fresh = store.root / "snapshots" / ".tmp-000000000003-busy"
    for path in (stale, fresh):
        path.mkdir()
    old = time.time() - 7200
    os.utime(stale, (old, old))
    store.prune(keep=1)
    assert not stale.exists() and fresh.exists()


def test_io_failures_are_store_unavailable(tmp_path, make_snapshot):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    store = LocalStore(blocker / "store")
    with pytest.raises(StoreUnavailable):
        store.publish(make_snapshot("000000000001"), "000000000001")
    with pytest.raises(StoreUnavailable):
        LocalStore(blocker).latest()


def test_unsafe_version_names_are_refused(store, make_snapshot, tmp_path):
    for bad in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            store.publish(make_snapshot("000000000001"), bad)
        with pytest.raises(ValueError):
            store.fetch(bad, tmp_path / "cache")


def test_open_store_picks_the_backend_from_the_url(tmp_path):
    assert isinstance(open_store(str(tmp_path / "snaps")), LocalStore)
    local = open_store(f"file://{tmp_path}/snaps")
    assert isinstance(local, LocalStore) and local.root == tmp_path / "snaps"
    s3 = open_store("s3://bucket/some/prefix/", S3Settings("http://127.0.0.1:1", "x"))
    assert isinstance(s3, S3Store) and (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    for bad in ("s3://", "gs://bucket", ""):
        with pytest.raises(ValueError):
            open_store(bad)


def test_racing_publishers_never_leave_latest_naming_an_incomplete_version(
    tmp_path, make_snapshot
):
    root = tmp_path / "store"
    a = [f"{k:012d}" for k in range(1, 16, 2)]
    b = [f"{k:012d}" for k in range(2, 17, 2)]
    race([LocalStore(root), LocalStore(root)], LocalStore(root),
         lambda v: make_snapshot(v, int(v)), tmp_path / "cache", [a, b])
    store = LocalStore(root)
    assert store.latest() in {a[-1], b[-1]}
    assert store.versions() == sorted(a + b)
    assert read_snapshot(store.fetch(store.latest(), tmp_path / "final")).version == store.latest()
    assert not [p for p in root.iterdir() if p.name.startswith(".")]  # no stray LATEST temps


def test_publishers_racing_on_the_same_versions_both_succeed(tmp_path, make_snapshot):
    root = tmp_path / "store"
    versions = [f"{k:012d}" for k in range(1, 9)]
    race([LocalStore(root), LocalStore(root)], LocalStore(root),
         lambda v: make_snapshot(v, int(v)), tmp_path / "cache", [versions, versions])
    store = LocalStore(root)
    assert store.latest() == versions[-1] and store.versions() == versions
    read_snapshot(store.fetch(versions[-1], tmp_path / "final"))


def test_check_writable_creates_the_store_directory(tmp_path):
    root = tmp_path / "new" / "store"
    LocalStore(root).check_writable()
    assert list(root.iterdir()) == [root / "snapshots"]  # the probe file is gone again


def test_check_writable_names_the_directory_and_the_reason(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(StoreError, match=r"cannot write to .*a-file/store: Not a directory"):
        LocalStore(tmp_path / "a-file" / "store").check_writable()


def test_experiment_results_are_kept_beside_the_snapshots_and_read_back(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "store")
    assert store.experiment_parts("recency") == {} and store.experiment_names() == []
    store.put_experiment_part("recency", "w1", b"1")
    store.put_experiment_part("recency", "w2", b"2")
    store.put_experiment_part("recency", "w1", b"3")  # replaced, atomically
    assert store.experiment_parts("recency") == {"w1": b"3", "w2": b"2"}
    assert store.experiment_names() == ["recency"]
    assert sorted(p.name for p in (tmp_path / "store" / "experiments" / "recency").iterdir()) \
        == ["w1.json", "w2.json"]
    with pytest.raises(ValueError):
        store.put_experiment_part("recency", "../w3", b"4")
