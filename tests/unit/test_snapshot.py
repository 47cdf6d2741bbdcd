"""Snapshots: exact round trip, memory-mapping, and clear refusals of damaged ones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tests.support.snapshots import downgrade

from streamrec.adapters.snapshotfiles import read_manifest, read_snapshot, write_snapshot
from streamrec.core.events import Event
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.training import fit
from streamrec.core.snapshot.manifest import (
    MANIFEST_NAME,
    ONE_USER_SIDE_FORMAT,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotFormatError,
    SnapshotIncomplete,
    is_version,
    next_version,
)
from streamrec.core.window.sliding import SlidingWindow

OFFSETS = {0: 120, 3: 7}


def small_window() -> SlidingWindow:
    window = SlidingWindow(50, decay_half_life=3600.0)
    window.extend(
        Event(f"user-{k % 7}", f"item-{(k * 3) % 11}", 1.0 + k % 3, 1_700_000_000.0 + k)
        for k in range(60)
    )
    window.append("ünïcode", "itém", 2.0)  # non-ASCII ids and a missing timestamp
    return window


@pytest.fixture(scope="module")
def window() -> SlidingWindow:
    return small_window()


@pytest.fixture(scope="module")
def model(window) -> Model:
    return fit(window.build(), ALSParams(factors=4, iterations=3, num_threads=1))


@pytest.fixture
def snapshot_dir(tmp_path, model, window) -> Path:
    path = tmp_path / "snap"
    write_snapshot(path, model, window.contents(), OFFSETS, "000000000007", {"source": "test"})
    return path


def test_round_trip_preserves_model_window_and_offsets(snapshot_dir, model, window):
    snap = read_snapshot(snapshot_dir)
    assert snap.version == "000000000007" and snap.offsets == OFFSETS
    loaded = snap.model
    assert loaded.user_ids == model.user_ids and loaded.item_ids == model.item_ids
    np.testing.assert_array_equal(loaded.als.user_factors, model.als.user_factors)
    np.testing.assert_array_equal(loaded.als.item_factors, model.als.item_factors)
    assert (loaded.user_items != model.user_items).nnz == 0
    np.testing.assert_array_equal(loaded.popularity, model.popularity)
    assert loaded.params == model.params and loaded.fit_info == model.fit_info
    for user in model.user_ids:
        assert loaded.recommend(user, n=5) == model.recommend(user, n=5)
    assert list(snap.window.events()) == list(window.contents().events())


def test_training_resumes_from_a_snapshot_exactly(snapshot_dir, window):
    resumed = SlidingWindow.from_contents(read_snapshot(snapshot_dir).window)
    assert (resumed.capacity, resumed.decay_half_life) == (50, 3600.0)
    assert resumed.total_appended == window.total_appended
    original = small_window()
    for w in (original, resumed):
        w.extend([Event("late", "item-1", 1.0, 1_700_000_100.0)] * 3)
    assert list(resumed.contents().events()) == list(original.contents().events())


def mapped(a: np.ndarray) -> bool:
    """Whether ``a`` reads a memory-mapped file: served as a plain ndarray view of the map
    (np.memmap's Python-level slicing cost every request a few µs)."""
    return not isinstance(a, np.memmap) and isinstance(a.base, np.memmap)


def test_arrays_are_memory_mapped_unless_asked_otherwise(snapshot_dir):
    assert mapped(read_snapshot(snapshot_dir).model.als.item_factors)
    assert not mapped(read_snapshot(snapshot_dir, mmap=False).model.als.item_factors)


def test_manifest_lists_every_file_with_checksum_and_records_the_run(snapshot_dir, model):
    manifest = read_manifest(snapshot_dir)
    files = {p.name for p in snapshot_dir.iterdir()} - {MANIFEST_NAME}
    assert {f"{name}.npy" for name in manifest.files} == files
    assert all(len(info.sha256) == 64 for info in manifest.files.values())
    assert manifest.format_version == ONE_USER_SIDE_FORMAT and manifest.created_at.endswith("Z")
    assert manifest.sizes == {
        "users": len(model.user_ids),
        "items": len(model.item_ids),
        "nnz": model.user_items.nnz,
        "factors": 4,
        "window": 50,
        "user_partitions": 1,
    }
    assert manifest.window["total_appended"] == 61 and manifest.extra == {"source": "test"}
    assert manifest.params["factors"] == 4 and manifest.fit["device"] == "cpu"
    raw = json.loads((snapshot_dir / MANIFEST_NAME).read_text())
    assert raw["offsets"] == {"0": 120, "3": 7}


def test_no_file_needs_pickle(snapshot_dir):
    for path in snapshot_dir.glob("*.npy"):
        assert np.load(path, allow_pickle=False).dtype != object


def test_truncated_file_is_refused_as_corrupt(snapshot_dir):
    path = snapshot_dir / "als.item_factors.npy"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(SnapshotCorrupt) as err:
        read_snapshot(snapshot_dir)
    assert err.value.path == path and "bytes" in err.value.expected
    assert "als.item_factors.npy" in str(err.value)


def test_flipped_byte_is_refused_as_corrupt(snapshot_dir):
    path = snapshot_dir / "als.user_factors.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SnapshotCorrupt) as err:
        read_snapshot(snapshot_dir)
    assert err.value.expected.startswith("sha256 ") and err.value.actual != err.value.expected


def test_missing_manifest_means_incomplete(snapshot_dir):
    (snapshot_dir / MANIFEST_NAME).unlink()
    with pytest.raises(SnapshotIncomplete, match="manifest.json"):
        read_snapshot(snapshot_dir)


def test_missing_array_file_means_incomplete(snapshot_dir):
    (snapshot_dir / "popularity.npy").unlink()
    with pytest.raises(SnapshotIncomplete, match="popularity.npy"):
        read_snapshot(snapshot_dir)


def _edit_manifest(directory: Path, edit) -> None:
    path = directory / MANIFEST_NAME
    body = json.loads(path.read_text())
    edit(body)
    path.write_text(json.dumps(body))


def test_unsupported_format_version_is_a_format_error(snapshot_dir):
    _edit_manifest(snapshot_dir, lambda m: m.update(format_version=99))
    with pytest.raises(SnapshotFormatError, match="format_version 99"):
        read_snapshot(snapshot_dir)


def test_shape_that_disagrees_with_the_manifest_is_a_format_error(snapshot_dir):
    _edit_manifest(snapshot_dir, lambda m: m["files"]["als.item_factors"].update(shape=[1, 1]))
    with pytest.raises(SnapshotFormatError, match="item_factors"):
        read_snapshot(snapshot_dir)


def test_arrays_that_disagree_with_each_other_are_a_format_error(tmp_path, model, window):
    broken = Model(
        model.scorers,
        model.user_ids,
        model.item_ids,
        model.user_items,
        model.popularity,
        model.params,
    )
    broken.user_ids = broken.user_ids[:-1]  # written as if consistent, read back as not
    write_snapshot(tmp_path / "s", broken, window.contents(), {}, "000000000001")
    with pytest.raises(SnapshotFormatError):
        read_snapshot(tmp_path / "s")


def test_model_ids_are_served_from_the_mapped_files(snapshot_dir, model):
    loaded = read_snapshot(snapshot_dir).model
    assert all(mapped(a) for a in loaded.item_ids.arrays)
    assert all(loaded.user_ids.get(u) == row for row, u in enumerate(model.user_ids))


def test_a_format_1_snapshot_without_id_tables_still_reads(snapshot_dir, model):
    def to_format_1(body):
        for name in ("user_ids.table", "item_ids.table"):
            del body["files"][name]

    downgrade(snapshot_dir, 1)
    _edit_manifest(snapshot_dir, to_format_1)
    for name in ("user_ids.table", "item_ids.table"):
        (snapshot_dir / f"{name}.npy").unlink()
    loaded = read_snapshot(snapshot_dir).model
    assert loaded.user_ids == model.user_ids
    assert loaded.item_index["itém"] == model.item_index["itém"]
    assert loaded.recommend("user-3") == model.recommend("user-3")


def test_reading_without_the_window_skips_its_files_but_keeps_its_settings(snapshot_dir, model):
    (snapshot_dir / "window.ts.npy").write_bytes(b"damaged, but not read")
    snap = read_snapshot(snapshot_dir, window=False)
    assert len(snap.window) == 0 and snap.window.user_ids == [] and snap.window.capacity == 50
    assert snap.window.total_appended == 61 and snap.window.decay_half_life == 3600.0
    assert snap.model.user_ids == model.user_ids
    with pytest.raises(SnapshotCorrupt):
        read_snapshot(snapshot_dir)


def test_garbage_manifest_is_a_format_error(snapshot_dir):
    (snapshot_dir / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(SnapshotFormatError):
        read_snapshot(snapshot_dir)


def test_every_refusal_is_a_snapshot_error():
    for error in (SnapshotCorrupt, SnapshotIncomplete, SnapshotFormatError):
        assert issubclass(error, SnapshotError)


def test_a_snapshot_is_written_once(snapshot_dir, model, window):
    with pytest.raises(SnapshotError, match="already"):
        write_snapshot(snapshot_dir, model, window.contents(), {}, "000000000008")


def test_versions_count_up_and_sort_as_strings():
    versions = [next_version(None)]
    for _ in range(11):
        versions.append(next_version(versions[-1]))
    assert versions[0] == "000000000001" and versions[-1] == "000000000012"
    assert sorted(versions) == versions and all(is_version(v) for v in versions)
    with pytest.raises(ValueError):
        next_version("v7")


def test_the_catalogue_round_trips_with_its_items_offsets(tmp_path, model, window):
    from streamrec.core.catalog.records import Catalogue, ItemRecord

    cat = Catalogue([ItemRecord("item-1", ("Comedy",), {"lang": "fr"}, title="Amélie"),
                     ItemRecord("item-2", hidden=True, expires_at=1.8e9)])
    write_snapshot(tmp_path / "s", model, window.contents(), OFFSETS, "000000000001",
                   catalog=cat.to_arrays({0: 5}, model.item_ids))
    snap = read_snapshot(tmp_path / "s", window=False)
    assert snap.catalog.records() == cat.records() and snap.item_offsets == {0: 5}
    base = snap.catalog.base  # the mapped arrays, not parsed records ...
    assert base is not None and base.model_ids is snap.model.item_ids  # ... bound to the model
    assert base.model_rows is not None and base.model_rows.tolist() == [
        -1 if (r := model.item_ids.get(i)) is None else r for i in ("item-1", "item-2")]
    manifest = read_manifest(tmp_path / "s")
    assert manifest.format_version == ONE_USER_SIDE_FORMAT
    assert "catalog.records.data" in manifest.files


def test_a_format_7_snapshot_reads_its_json_catalogue(tmp_path, model, window):
    import json

    import numpy as np

    from streamrec.core.catalog.records import Catalogue, ItemRecord

    cat = Catalogue([ItemRecord("item-1", ("Comedy",), {"lang": "fr"}, title="Amélie")])
    old = {"catalog": np.frombuffer(cat.to_bytes({0: 4}), dtype=np.uint8)}
    write_snapshot(tmp_path / "s", model, window.contents(), OFFSETS, "000000000001",
                   catalog=old)
    manifest = tmp_path / "s" / "manifest.json"
    body = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**body, "format_version": 7}))
    snap = read_snapshot(tmp_path / "s", window=False)
    assert snap.catalog.records() == cat.records() and snap.item_offsets == {0: 4}
    assert snap.catalog.base is None


def test_a_format_3_snapshot_without_a_catalogue_still_loads(snapshot_dir):
    downgrade(snapshot_dir, 3)
    snap = read_snapshot(snapshot_dir)
    assert len(snap.catalog) == 0 and snap.item_offsets == {}


def test_a_format_6_snapshot_reads_its_unprefixed_factors_as_the_als_scorer(snapshot_dir, model):
    downgrade(snapshot_dir, 6)  # the last format before every scorer got its own prefix
    assert (snapshot_dir / "item_factors.npy").exists()
    loaded = read_snapshot(snapshot_dir).model
    assert list(loaded.scorers) == ["als"]
    np.testing.assert_array_equal(loaded.als.item_factors, model.als.item_factors)
    assert loaded.recommend("user-3") == model.recommend("user-3")


def test_a_snapshot_with_part_of_the_catalogue_arrays_is_refused(tmp_path, model, window):
    from streamrec.core.catalog.records import Catalogue, ItemRecord
    from streamrec.core.snapshot.manifest import SnapshotFormatError

    arrays = Catalogue([ItemRecord("item-1", ("x",))]).to_arrays({0: 1})
    del arrays["catalog.members.rows"]
    write_snapshot(tmp_path / "s", model, window.contents(), OFFSETS, "000000000001",
                   catalog=arrays)
    with pytest.raises(SnapshotFormatError, match="catalog.members.rows"):
        read_snapshot(tmp_path / "s", window=False)
