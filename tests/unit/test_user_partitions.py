"""Snapshot format 9: the user side split by the user's Kafka partition, and read back whole or
for a serving group's partitions only (core/snapshot/usersides.py, adapters/snapshotfiles.py)."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from streamrec.adapters.localstore import LocalStore
from streamrec.adapters.snapshotfiles import read_manifest, read_snapshot, write_snapshot
from streamrec.config import Config
from streamrec.core.events import Event
from streamrec.core.events.partitioning import (
    murmur2,
    murmur2_many,
    partition_for,
    partitions_of_ids,
)
from streamrec.core.ids import encode_ids
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.training import fit, with_scorer, with_scoring
from streamrec.core.scoring.types import ALSParams
from streamrec.core.snapshot.manifest import SnapshotCorrupt, SnapshotIncomplete
from streamrec.core.snapshot.usersides import UserShard, merge, parse_part, split_by_partition
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.feeds.reloader import Reloader
from streamrec.serving.live.holder import Holder

PARTITIONS = 4


def _window() -> SlidingWindow:
    window = SlidingWindow(800)
    rng = np.random.default_rng(3)
    for k in range(700):
        u = int(rng.integers(60))
        i = int(rng.integers(20)) + 20 * (u % 2)
        window.append(Event(f"user-{u}", f"i{i}", float(rng.integers(1, 4)),
                            1_700_000_000.0 + k))
    return window


@pytest.fixture(scope="module")
def world():
    window = _window()
    model = fit(window.build(), ALSParams(factors=8, iterations=4, num_threads=1))
    model = with_scoring(model, window.contents(), ScoringParams())
    return window, with_scorer(model, "item_item", ItemItemParams(l2=5.0), threads=1)


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory, world):
    window, model = world
    base = tmp_path_factory.mktemp("snapshots")
    write_snapshot(base / "whole", model, window.contents(), {0: 700}, "000000000001",
                   sync=False)
    write_snapshot(base / "split", model, window.contents(), {0: 700}, "000000000001",
                   sync=False, user_partitions=PARTITIONS)
    return base


def _recs(model, users):
    return {u: model.recommend(u, n=5).items for u in users}


# --- the hash, vectorised ---------------------------------------------------------------------


def test_murmur2_many_hashes_every_key_like_the_scalar_java_compatible_murmur2():
    rng = np.random.default_rng(9)
    alphabet = list("abcXYZ019-_é漢🙂")
    keys = ["", "a", "ab", "abc", "abcd", "abcde"] + [
        "".join(rng.choice(alphabet, int(rng.integers(0, 40)))) for _ in range(3000)]
    data, offsets = encode_ids(keys)
    assert murmur2_many(data, offsets).tolist() == [murmur2(k.encode()) for k in keys]
    assert partitions_of_ids(data, offsets, 7).tolist() == [partition_for(k, 7) for k in keys]


def test_partitions_of_ids_refuses_zero_partitions():
    data, offsets = encode_ids(["u"])
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        partitions_of_ids(data, offsets, 0)


# --- writing ----------------------------------------------------------------------------------


def test_a_split_snapshot_writes_each_partitions_users_and_nothing_of_the_user_side_whole(
        snapshots, world):
    _, model = world
    manifest = read_manifest(snapshots / "split")
    assert manifest.format_version == 9 and manifest.sizes["user_partitions"] == PARTITIONS
    files = set(manifest.files)
    assert not {"user_ids.data", "user_items.indptr", "als.user_factors",
                "history.items"} & files
    assert {"als.item_factors", "item_ids.table", "history.ts_base", "popularity"} <= files
    for p in range(PARTITIONS):
        ids = read_snapshot(snapshots / "split", window=False,
                            shard=UserShard(PARTITIONS, frozenset({p}))).model.user_ids
        assert ids.tolist() and all(partition_for(u, PARTITIONS) == p for u in ids)
    counts = [manifest.files[f"users.{p}.user_ids.offsets"].shape[0] - 1
              for p in range(PARTITIONS)]
    assert sum(counts) == len(model.user_ids)


def test_an_unsplit_snapshot_has_one_user_side(snapshots):
    manifest = read_manifest(snapshots / "whole")
    assert manifest.sizes["user_partitions"] == 1
    assert not any(parse_part(n) for n in manifest.files)


# --- reading ----------------------------------------------------------------------------------


def test_a_split_snapshot_read_whole_answers_every_user_as_the_unsplit_one(snapshots, world):
    _, model = world
    whole = read_snapshot(snapshots / "whole", window=False).model
    split = read_snapshot(snapshots / "split", window=False).model
    users = model.user_ids.tolist()
    assert sorted(split.user_ids) == sorted(users)
    assert _recs(split, users) == _recs(whole, users)
    for u in users[:10]:
        assert split.known_items(u) == whole.known_items(u)


def test_a_group_reads_only_its_partitions_and_answers_its_users_as_the_whole_model(
        snapshots, world):
    _, model = world
    whole = read_snapshot(snapshots / "whole", window=False).model
    for owned in ({0}, {1, 3}):
        shard = UserShard(PARTITIONS, frozenset(owned))
        group = read_snapshot(snapshots / "split", window=False, shard=shard).model
        mine = [u for u in model.user_ids if partition_for(u, PARTITIONS) in owned]
        assert sorted(group.user_ids) == sorted(mine)
        assert _recs(group, mine) == _recs(whole, mine)
        np.testing.assert_array_equal(group.history.ts_base, whole.history.ts_base)
        assert group.item_ids == whole.item_ids


def test_several_partitions_mapped_are_merged_once_into_a_checksummed_copy_workers_share(
        snapshots):
    shard = UserShard(PARTITIONS, frozenset({0, 2}))
    first = read_snapshot(snapshots / "split", window=False, shard=shard)
    parts = sorted(n for n in read_manifest(snapshots / "split").files
                   if n.startswith(("users.0.", "users.2.")))
    indexes = {v: json.loads((v / "files.json").read_text())
               for v in (snapshots / "split").glob(".users-*")}
    (view,) = [v for v, index in indexes.items() if sorted(index["sources"]) == parts]
    index = indexes[view]
    assert {"user_ids.table", "user_items.indptr", "als.user_factors"} <= set(index["files"])
    stamp = os.stat(view / "user_ids.data.npy").st_mtime_ns
    second = read_snapshot(snapshots / "split", window=False, shard=shard)
    assert os.stat(view / "user_ids.data.npy").st_mtime_ns == stamp  # mapped, not rewritten
    assert isinstance(second.model.als.user_factors.base, np.memmap)
    assert second.model.user_ids == first.model.user_ids


def test_a_damaged_merged_copy_is_made_again_from_its_verified_parts(tmp_path, world):
    window, model = world
    write_snapshot(tmp_path / "s", model, window.contents(), {0: 700}, "000000000001",
                   sync=False, user_partitions=PARTITIONS)
    shard = UserShard(PARTITIONS, frozenset({1, 2}))
    want = np.array(read_snapshot(tmp_path / "s", window=False, shard=shard)
                    .model.als.user_factors)
    (view,) = (tmp_path / "s").glob(".users-*")
    target = view / "als.user_factors.npy"
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    got = read_snapshot(tmp_path / "s", window=False, shard=shard).model.als.user_factors
    np.testing.assert_array_equal(got, want)
    # a damaged part of the snapshot itself is refused: the copy is derived, the parts are not
    shutil.rmtree(view)
    part = tmp_path / "s" / "users.1.als.user_factors.npy"
    raw = bytearray(part.read_bytes())
    raw[-1] ^= 0xFF
    part.write_bytes(bytes(raw))
    with pytest.raises(SnapshotCorrupt, match="users.1.als.user_factors"):
        read_snapshot(tmp_path / "s", window=False, shard=shard)


def test_a_merge_killed_half_way_leaves_nothing_the_next_reader_keeps(tmp_path, world):
    window, model = world
    write_snapshot(tmp_path / "s", model, window.contents(), {0: 700}, "000000000001",
                   sync=False, user_partitions=PARTITIONS)
    debris = tmp_path / "s" / ".tmp-users-0123"
    debris.mkdir()
    (debris / "als.user_factors.npy").write_bytes(b"half")
    read_snapshot(tmp_path / "s", window=False, shard=UserShard(PARTITIONS, frozenset({0, 3})))
    assert not debris.exists()


def test_a_merged_copy_has_a_short_name_whatever_the_partition_count(tmp_path, world):
    window, model = world
    write_snapshot(tmp_path / "s", model, window.contents(), {0: 700}, "000000000001",
                   sync=False, user_partitions=300)
    owned = frozenset(range(1, 300, 2))  # group 1 of 2: 150 partitions
    got = read_snapshot(tmp_path / "s", window=False, shard=UserShard(300, owned)).model
    assert sorted(got.user_ids) == sorted(u for u in model.user_ids
                                          if partition_for(u, 300) in owned)
    (view,) = (tmp_path / "s").glob(".users-*")
    assert len(view.name) < 40


def test_a_shard_of_another_partition_count_reads_every_user(snapshots, world):
    _, model = world
    got = read_snapshot(snapshots / "split", window=False,
                        shard=UserShard(8, frozenset({0}))).model
    assert sorted(got.user_ids) == sorted(model.user_ids)


def test_a_shard_of_an_unsplit_snapshot_reads_every_user(snapshots, world):
    _, model = world
    got = read_snapshot(snapshots / "whole", window=False,
                        shard=UserShard(PARTITIONS, frozenset({0}))).model
    assert len(got.user_ids) == len(model.user_ids)


def test_a_trainer_resumes_from_a_split_snapshot_with_its_window(snapshots, world):
    window, model = world
    snap = read_snapshot(snapshots / "split", mmap=False)
    assert len(snap.window) == len(window)
    assert sorted(snap.model.user_ids) == sorted(model.user_ids)


def test_a_split_snapshot_missing_a_partition_file_is_refused_naming_it(tmp_path, world):
    window, model = world
    write_snapshot(tmp_path / "s", model, window.contents(), {0: 700}, "000000000001",
                   sync=False, user_partitions=PARTITIONS)
    (tmp_path / "s" / "users.2.user_items.data.npy").unlink()
    with pytest.raises(SnapshotIncomplete, match="users.2.user_items.data"):
        read_snapshot(tmp_path / "s", window=False)
    # another group's reader never looks at partition 2
    read_snapshot(tmp_path / "s", window=False, shard=UserShard(PARTITIONS, frozenset({1})))


# --- the pure split and merge -----------------------------------------------------------------


def test_merge_refuses_parts_that_do_not_hold_the_same_files():
    a = {"user_ids.data": np.zeros(0, np.uint8), "user_ids.offsets": np.zeros(1, np.int64)}
    with pytest.raises(ValueError, match="same files"):
        merge([a, {**a, "als.user_factors": np.zeros((0, 2), np.float32)}])
    with pytest.raises(ValueError, match="no user partitions"):
        merge([])


def test_split_refuses_a_partition_out_of_range():
    data, offsets = encode_ids(["a", "b"])
    arrays = {"user_ids.data": data, "user_ids.offsets": offsets}
    with pytest.raises(ValueError, match="partition_of_row"):
        split_by_partition(arrays, np.array([0, 4]), 4, ())


def test_a_partition_without_users_gets_empty_parts_that_merge_back():
    data, offsets = encode_ids(["a", "b", "c"])
    arrays = {"user_ids.data": data, "user_ids.offsets": offsets,
              "user_items.indptr": np.array([0, 1, 3, 3], np.int32),
              "user_items.indices": np.array([5, 1, 2], np.int32),
              "user_items.data": np.array([1, 2, 3], np.float32),
              "als.user_factors": np.arange(6, dtype=np.float32).reshape(3, 2)}
    out = split_by_partition(arrays, np.array([2, 0, 2]), 3, ("als.user_factors",))
    assert out["users.1.user_ids.offsets"].tolist() == [0]
    parts = [{n.split(".", 2)[2]: a for n, a in out.items() if n.startswith(f"users.{p}.")}
             for p in (2, 1, 0)]
    back = merge(parts)
    assert bytes(back["user_ids.data"]) == b"acb"
    assert back["user_items.indptr"].tolist() == [0, 1, 1, 3]
    assert back["user_items.indices"].tolist() == [5, 1, 2]
    assert back["als.user_factors"].tolist() == [[0, 1], [4, 5], [2, 3]]


def test_format_9_refuses_a_partition_it_does_not_have(snapshots):
    from streamrec.core.snapshot.layout import files_for

    manifest = read_manifest(snapshots / "split")
    with pytest.raises(ValueError, match="not all among"):
        files_for(manifest, False, [PARTITIONS])


# --- serving: the reloader of a group ---------------------------------------------------------


def test_a_group_replica_reloads_its_own_users_and_only_their_files(tmp_path, world):
    window, model = world
    store = LocalStore(tmp_path / "store")
    write_snapshot(tmp_path / "build", model, window.contents(), {0: 700}, "000000000001",
                   sync=False, user_partitions=PARTITIONS)
    store.publish(tmp_path / "build", "000000000001")
    config = Config(serving_groups=2, serving_group=1, topic_partitions=PARTITIONS)
    holder = Holder()
    reloader = Reloader(store, holder, tmp_path / "cache", shard=config.user_shard)
    assert reloader.check_once()
    served = holder.current()
    assert served is not None
    mine = [u for u in model.user_ids if partition_for(u, PARTITIONS) % 2 == 1]
    assert sorted(served.snapshot.model.user_ids) == sorted(mine)
    files = {p.name for p in (tmp_path / "cache" / "000000000001").iterdir()}
    assert {parse_part(n.removesuffix(".npy"))[0] for n in files if n.startswith("users.")} \
        == {1, 3}
    assert any(n.startswith(".users-") for n in files)  # the copy its workers share


def test_the_trainer_splits_users_only_for_several_serving_groups():
    assert Config(topic_partitions=8).user_partitions == 1
    assert Config(serving_groups=2, topic_partitions=8).user_partitions == 8
    assert Config(topic_partitions=8).user_shard is None
    assert Config(serving_groups=2, serving_group=0, topic_partitions=8).user_shard == \
        UserShard(8, frozenset({0, 2, 4, 6}))


def test_a_groups_model_counts_users_per_item_over_every_user_not_only_its_own(
        snapshots, world):
    # placements' maxInteractions (exploration) must pick the same items in every group
    _, model = world
    want = np.bincount(model.user_items.indices, minlength=len(model.item_ids))
    for owned in ({0}, {1, 3}):
        group = read_snapshot(snapshots / "split", window=False,
                              shard=UserShard(PARTITIONS, frozenset(owned))).model
        assert group.users_per_item().tolist() == want.tolist()
        mine = np.bincount(group.user_items.indices, minlength=len(model.item_ids))
        assert mine.sum() < want.sum()  # its own matrix holds fewer
    assert read_snapshot(snapshots / "whole", window=False).model.users_per_item().tolist() \
        == want.tolist()
