"""S3Store against a real S3 (MinIO on 127.0.0.1, from the ``s3`` fixture in tests/conftest.py).

The fixture gives a fresh, empty bucket per test plus its endpoint and credentials; nothing
here is mocked. The last test needs no server: it checks that an unreachable endpoint is
reported as ``StoreUnavailable``.
"""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from tests.support.storefetch import check_group_fetch, check_window_less_fetch
from tests.support.storerace import race

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.adapters.stores import (
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

PREFIX = "apps/streamrec"


@pytest.fixture(scope="module")
def fitted() -> tuple[Model, SlidingWindow]:
    window = SlidingWindow(40)
    window.extend(Event(f"u{k % 5}", f"i{k % 7}", 1.0, float(k)) for k in range(40))
    return fit(window.build(), ALSParams(factors=3, iterations=2, num_threads=1)), window


@pytest.fixture
def make_snapshot(tmp_path, fitted):
    model, window = fitted

    def make(version: str) -> Path:
        path = tmp_path / "local" / version
        if not path.exists():
            write_snapshot(path, model, window.contents(), {0: int(version)}, version)
        return path

    return make


@pytest.fixture
def store(s3) -> S3Store:
    return S3Store(s3.bucket, PREFIX, client=s3.client())


def keys(s3, prefix: str = "") -> list[str]:
    listing = s3.client().list_objects_v2(Bucket=s3.bucket, Prefix=prefix)
    return sorted(obj["Key"] for obj in listing.get("Contents", ()))


def publish_many(store: S3Store, make_snapshot, count: int) -> list[str]:
    versions, version = [], None
    for _ in range(count):
        version = next_version(version)
        store.publish(make_snapshot(version), version)
        versions.append(version)
    return versions


def test_an_s3_store_is_a_snapshot_store(store):
    assert isinstance(store, SnapshotStore)


def test_empty_bucket_has_no_latest_and_no_versions(store):
    assert store.latest() is None and store.versions() == []


def test_publish_uploads_every_file_under_the_version_then_latest(store, make_snapshot, s3):
    [version] = publish_many(store, make_snapshot, 1)
    local = sorted(p.name for p in make_snapshot(version).iterdir())
    assert keys(s3, f"{PREFIX}/snapshots/") == [
        f"{PREFIX}/snapshots/{version}/{name}" for name in local
    ]
    body = s3.client().get_object(Bucket=s3.bucket, Key=f"{PREFIX}/LATEST")["Body"].read()
    assert body.decode().strip() == version == store.latest()


def test_fetch_downloads_a_snapshot_that_verifies(store, make_snapshot, tmp_path):
    versions = publish_many(store, make_snapshot, 2)
    path = store.fetch(versions[0], tmp_path / "cache")
    assert path == tmp_path / "cache" / versions[0]
    snap = read_snapshot(path)
    assert snap.version == versions[0] and snap.offsets == {0: 1}
    assert store.fetch(versions[0], tmp_path / "cache") == path  # reused, not downloaded again
    assert not [p for p in (tmp_path / "cache").iterdir() if p.name.startswith(".")]

def test_a_fetch_without_the_window_leaves_its_files_out_and_a_full_fetch_completes_it(
        store, make_snapshot, tmp_path):
    [version] = publish_many(store, make_snapshot, 1)
    check_window_less_fetch(store, version, tmp_path / "cache")


def test_a_group_fetches_the_item_side_and_its_own_user_partitions_only(store, fitted, tmp_path):
    check_group_fetch(store, fitted, tmp_path)


def test_a_version_without_manifest_is_invisible(store, make_snapshot, s3, tmp_path):
    [version] = publish_many(store, make_snapshot, 1)
    partial = f"{PREFIX}/snapshots/000000000002/als.user_factors.npy"
    s3.client().put_object(Bucket=s3.bucket, Key=partial, Body=b"half an upload")
    assert store.versions() == [version]
    with pytest.raises(VersionNotFound):
        store.fetch("000000000002", tmp_path / "cache")
    assert not (tmp_path / "cache" / "000000000002").exists()


def test_republishing_the_same_snapshot_only_moves_latest(store, make_snapshot):
    first, second = publish_many(store, make_snapshot, 2)
    store.publish(make_snapshot(first), first)
    assert store.latest() == first and store.versions() == [first, second]


def test_other_content_under_a_used_version_is_refused(store, make_snapshot, tmp_path):
    [version] = publish_many(store, make_snapshot, 1)
    other = tmp_path / "other"
    other.mkdir()
    (other / MANIFEST_NAME).write_text("{}")
    with pytest.raises(StoreError, match="already published"):
        store.publish(other, version)


def test_prune_deletes_old_versions_but_never_latest(store, make_snapshot, s3):
    versions = publish_many(store, make_snapshot, 4)
    store.publish(make_snapshot(versions[0]), versions[0])  # LATEST back to the first
    assert store.prune(keep=1) == versions[1:3]
    assert store.versions() == [versions[0], versions[3]]
    remaining = {k.split("/")[3] for k in keys(s3, f"{PREFIX}/snapshots/")}
    assert remaining == {versions[0], versions[3]}


def test_open_store_uses_the_endpoint_and_environment_credentials(
    s3, make_snapshot, monkeypatch, tmp_path
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_key)
    monkeypatch.setenv("AWS_REGION", s3.region)
    store = open_store(f"s3://{s3.bucket}/{PREFIX}", S3Settings(s3.endpoint_url))
    assert isinstance(store, S3Store)
    store.publish(make_snapshot("000000000001"), "000000000001")
    assert store.latest() == "000000000001"
    assert read_snapshot(store.fetch("000000000001", tmp_path / "cache")).version == "000000000001"


def test_a_missing_bucket_is_store_unavailable(s3):
    store = S3Store(s3.bucket + "-missing", PREFIX, client=s3.client())
    with pytest.raises(StoreUnavailable):
        store.latest()


def test_an_unreachable_endpoint_is_store_unavailable(tmp_path):
    client = boto3.session.Session(
        aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1"
    ).client(
        "s3",
        endpoint_url="http://127.0.0.1:9",  # discard port: nothing listens
        config=Config(retries={"max_attempts": 1}, connect_timeout=1, read_timeout=1),
    )
    store = S3Store("bucket", PREFIX, client=client)
    with pytest.raises(StoreUnavailable):
        store.latest()
    with pytest.raises(StoreUnavailable):
        store.versions()


def test_racing_publishers_never_leave_latest_naming_an_incomplete_version(
    s3, make_snapshot, tmp_path
):
    a = [f"{k:012d}" for k in range(1, 12, 2)]
    b = [f"{k:012d}" for k in range(2, 13, 2)]
    stores = [S3Store(s3.bucket, PREFIX, client=s3.client()) for _ in range(3)]
    seen = race(stores[:2], stores[2], make_snapshot, tmp_path / "cache", [a, b])
    assert seen, "the reader never saw a LATEST"
    store = S3Store(s3.bucket, PREFIX, client=s3.client())
    assert store.latest() in {a[-1], b[-1]}
    assert store.versions() == sorted(a + b)
    assert read_snapshot(store.fetch(store.latest(), tmp_path / "final")).version == store.latest()


def test_publishers_racing_on_the_same_versions_both_succeed(s3, make_snapshot, tmp_path):
    versions = [f"{k:012d}" for k in range(1, 7)]
    stores = [S3Store(s3.bucket, PREFIX, client=s3.client()) for _ in range(3)]
    race(stores[:2], stores[2], make_snapshot, tmp_path / "cache", [versions, versions])
    store = S3Store(s3.bucket, PREFIX, client=s3.client())
    assert store.latest() == versions[-1] and store.versions() == versions
    assert read_snapshot(store.fetch(versions[-1], tmp_path / "final")).version == versions[-1]


def test_the_generated_erasure_key_is_created_once_whoever_races_for_it(s3) -> None:
    """Trainer and replicas race for the store's ERASURE_KEY (If-None-Match: *): one wins and
    everyone reads the winner's, next to LATEST and outside every snapshot (never pruned)."""
    from concurrent.futures import ThreadPoolExecutor

    from streamrec.adapters.erasurekeys import ERASURE_KEY_NAME, erasure_hasher

    stores = [S3Store(s3.bucket, PREFIX, client=s3.client()) for _ in range(6)]
    with ThreadPoolExecutor(6) as pool:
        got = set(pool.map(lambda store: erasure_hasher(None, store).key(), stores))
    assert len(got) == 1
    assert keys(s3) == [f"{PREFIX}/{ERASURE_KEY_NAME}"]
    stored = s3.client().get_object(Bucket=s3.bucket, Key=f"{PREFIX}/{ERASURE_KEY_NAME}")
    assert stored["Body"].read().strip() == next(iter(got))
    stores[0].prune(1)
    assert keys(s3) == [f"{PREFIX}/{ERASURE_KEY_NAME}"]


def test_experiment_results_are_kept_beside_the_snapshots_and_survive_pruning(
        store, make_snapshot, s3):
    assert store.experiment_parts("recency") == {} and store.experiment_names() == []
    store.put_experiment_part("recency", "w1", b'{"arms": {}}')
    store.put_experiment_part("recency", "w2", b'{"arms": {"a": [1]}}')
    store.put_experiment_part("recency", "w1", b'{"arms": {"a": [2]}}')  # replaced
    store.put_experiment_part("other", "w1", b"{}")
    assert store.experiment_parts("recency") == {"w1": b'{"arms": {"a": [2]}}',
                                                 "w2": b'{"arms": {"a": [1]}}'}
    assert store.experiment_names() == ["other", "recency"]
    publish_many(store, make_snapshot, 3)
    store.prune(1)
    assert store.experiment_names() == ["other", "recency"]
    assert f"{PREFIX}/experiments/recency/w2.json" in keys(s3)
    with pytest.raises(ValueError):
        store.put_experiment_part("../escape", "w1", b"{}")
