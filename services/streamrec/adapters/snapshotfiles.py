"""Snapshot files: a snapshot's arrays as ``.npy`` files and its ``manifest.json``, on disk.

A snapshot is a directory of ``.npy`` files and a ``manifest.json`` written last. Arrays are
saved and loaded with ``allow_pickle=False`` (data, never code; implicit's ``save``/``load``
do the same) and loaded memory-mapped, so the gunicorn workers of a replica share one copy of
the factors in the page cache. Every file's sha256 and size is checked against the manifest
before anything is trusted. What the arrays are is ``core/snapshot/arrays.py`` and
``core/snapshot/layout.py``; this module only moves them between memory and files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ..core.events.erasure import Tombstones
from ..core.scoring.model import Model
from ..core.snapshot.arrays import (
    Snapshot,
    files_to_read,
    snapshot_arrays,
    snapshot_from_arrays,
    snapshot_manifest,
)
from ..core.snapshot.layout import partitions_to_read
from ..core.snapshot.manifest import (
    MANIFEST_NAME,
    FileInfo,
    Manifest,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotFormatError,
    SnapshotIncomplete,
    file_info,
)
from ..core.snapshot.usersides import UserShard, group_parts, merge, parse_part
from ..core.window.sliding import WindowContents

__all__ = ["fsync_path", "read_manifest", "read_snapshot", "sha256_file", "write_snapshot"]

Array = npt.NDArray[Any]
_CHUNK = 1 << 20
log = logging.getLogger(__name__)
#: The index of a merged user-side copy (``_user_view``): its files' checksums.
_VIEW_INDEX = "files.json"
#: A merged copy being written (removed by the next reader if its writer died).
_VIEW_TMP = ".tmp-users-"


def sha256_file(path: Path) -> str:
    """The hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (a directory: the names created or renamed in it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_array(path: Path, array: Array, sync: bool) -> FileInfo:
    with path.open("wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    return FileInfo(
        sha256=sha256_file(path),
        bytes=path.stat().st_size,
        dtype=array.dtype.str,
        shape=tuple(array.shape),
    )


def write_snapshot(
    directory: Path | str,
    model: Model,
    window: WindowContents,
    offsets: Mapping[int, int],
    version: str,
    extra_meta: Mapping[str, Any] | None = None,
    created_at: float | None = None,
    sync: bool = True,
    catalog: Mapping[str, npt.NDArray[Any]] | None = None,
    tombstones: Tombstones | None = None,
    user_partitions: int = 1,
) -> Manifest:
    """Write a snapshot into ``directory`` (created if needed); the manifest goes last.

    ``sync=False`` skips the fsyncs, for a scratch copy that a store then uploads or copies
    durably itself (the trainer's case: 19 fsyncs can cost more than writing the arrays).
    ``catalog`` is the item catalogue with its offsets (``Catalogue.to_arrays``).
    ``tombstones`` (default: none) is the erased users and items the snapshot must keep
    erased on resume and replay (``erasure.py``). ``user_partitions`` > 1 writes the user side
    once per partition of the interactions topic (format 9, ``core/snapshot/usersides.py``).
    Raises ``SnapshotError`` if the directory already holds a snapshot.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if (path / MANIFEST_NAME).exists():
        raise SnapshotError(f"{path} already holds a snapshot; write each version once")
    arrays = snapshot_arrays(model, window, catalog, tombstones, user_partitions)
    files = {
        name: _write_array(path / f"{name}.npy", array, sync) for name, array in arrays.items()
    }
    if sync:
        fsync_path(path)
    now = time.time() if created_at is None else created_at
    manifest = snapshot_manifest(model, window, offsets, version, files, now, extra_meta,
                                 user_partitions)
    tmp = path / f".{MANIFEST_NAME}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        f.write(manifest.to_json())
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path / MANIFEST_NAME)
    if sync:
        fsync_path(path)
    return manifest


def read_manifest(directory: Path | str) -> Manifest:
    """Parse ``directory``'s manifest (``SnapshotIncomplete`` if there is none)."""
    path = Path(directory) / MANIFEST_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SnapshotIncomplete(
            f"{path} is missing: not a snapshot, or an unfinished one"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotFormatError(f"cannot read {path}: {exc}") from None
    return Manifest.from_json(text, source=str(path))


def _load(path: Path, info: FileInfo, verify: bool, mmap: bool) -> Array:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise SnapshotIncomplete(f"{path} is listed in the manifest but missing") from None
    if size != info.bytes:
        raise SnapshotCorrupt(path, f"{info.bytes} bytes", f"{size} bytes")
    if verify and (digest := sha256_file(path)) != info.sha256:
        raise SnapshotCorrupt(path, f"sha256 {info.sha256}", f"sha256 {digest}")
    # An empty array cannot be memory-mapped; it costs nothing to read.
    mode: Literal["r"] | None = "r" if mmap and math.prod(info.shape) > 0 else None
    try:
        array: Array = np.load(path, mmap_mode=mode, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise SnapshotCorrupt(path, "a valid .npy file", str(exc)) from None
    if array.dtype.str != info.dtype or array.shape != info.shape:
        raise SnapshotFormatError(
            f"{path} holds {array.dtype.str}{array.shape}, manifest says {info.dtype}{info.shape}"
        )
    # A plain ndarray view of the mapping (which it keeps alive): np.memmap's Python-level
    # __getitem__ and __array_finalize__ ran on every slice a request takes (~7 per request,
    # bench/serving.py's breakdown); the view reads the same pages.
    return np.asarray(array) if isinstance(array, np.memmap) else array


def read_snapshot(
    directory: Path | str, verify: bool = True, mmap: bool = True, window: bool = True,
    shard: UserShard | None = None,
) -> Snapshot:
    """Load and check a snapshot.

    Parameters
    ----------
    verify : bool
        Check every file's sha256 (sizes, dtypes and shapes are always checked).
    mmap : bool
        Memory-map the arrays read-only instead of reading them into memory.
    window : bool
        Also read the trainer's window. Serving passes False: the window's files are then
        neither read nor checked, and ``Snapshot.window`` holds its settings but no events
        (its decoded ids would be private memory in every worker).
    shard : UserShard, optional
        The user partitions to read of a snapshot split by partition (format 9): a serving
        group's. None, or a snapshot split otherwise than the shard: every user. Memory-mapped,
        several partitions are merged once into ``.users-<digest of the parts>/`` beside the
        files (checksummed there too), which the other workers of the replica then map and
        share (`_user_view`).

    Raises
    ------
    SnapshotIncomplete, SnapshotCorrupt, SnapshotFormatError
    """
    path = Path(directory)
    manifest = read_manifest(path)
    names = files_to_read(manifest, window, path, partitions_to_read(manifest, shard))
    parts = {n: parsed[0] for n in names if (parsed := parse_part(n))}
    shared = mmap and len(set(parts.values())) > 1
    a = {name: _load(path / f"{name}.npy", manifest.files[name], verify, mmap)
         for name in names if not (shared and name in parts)}
    if shared:  # several partitions, mapped: the one merged copy every worker maps
        a.update(_user_view(path, manifest, list(parts), verify))
    return snapshot_from_arrays(a, manifest, path, window)


def _user_view(path: Path, manifest: Manifest, parts: list[str], verify: bool
               ) -> dict[str, Array]:
    """The user side of the partitions of ``parts`` merged (``usersides.merge``), memory-mapped
    from ``path/.users-<key>/``: written there by the first reader (atomically, with its own
    checksums and the sha256 of the parts it was made from in ``files.json``), mapped by every
    later one. ``key`` is a digest of those parts (a name of fixed length, whatever the
    partition count). A copy that does not match its parts, was made without the checks a
    ``verify`` reader wants, or is damaged is made again: it is derived, never the truth.
    The caller holds the cache lock (``serving/feeds/reloader.py``) or is the only reader."""
    sources = {n: manifest.files[n].sha256 for n in sorted(parts)}
    key = hashlib.sha256(json.dumps(sources).encode()).hexdigest()[:16]
    view = path / f".users-{key}"
    for debris in path.glob(f"{_VIEW_TMP}*"):  # a merge killed half-way (OOM, SIGKILL)
        shutil.rmtree(debris, ignore_errors=True)
    index = _read_view_index(view)
    if index is not None and index["sources"] == sources and (index["verified"] or not verify):
        try:
            return {n: _load(view / f"{n}.npy", info, verify, True)
                    for n, info in index["files"].items()}
        except SnapshotError as exc:
            log.warning("remaking the merged user side %s: %s", view, exc)
    shutil.rmtree(view, ignore_errors=True)
    loaded = {n: _load(path / f"{n}.npy", manifest.files[n], verify, True) for n in parts}
    try:
        merged = merge(group_parts(loaded)[1])
    except ValueError as exc:
        raise SnapshotFormatError(f"{path} does not hold a consistent snapshot: {exc}") from None
    infos = _write_view(view, merged, sources, verify)
    # What was just written and hashed is not hashed again (sizes, dtypes and shapes are).
    return {n: _load(view / f"{n}.npy", info, False, True) for n, info in infos.items()}


def _write_view(view: Path, merged: Mapping[str, Array], sources: Mapping[str, str],
                verified: bool) -> dict[str, FileInfo]:
    """Write ``merged`` as ``view`` (atomically, nothing left behind on any failure)."""
    tmp = view.parent / f"{_VIEW_TMP}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        infos = {n: _write_array(tmp / f"{n}.npy", a, sync=False) for n, a in merged.items()}
        body = {"sources": dict(sources), "verified": verified,
                "files": {n: info.to_dict() for n, info in infos.items()}}
        (tmp / _VIEW_INDEX).write_text(json.dumps(body), encoding="utf-8")
        os.rename(tmp, view)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return infos


def _read_view_index(view: Path) -> dict[str, Any] | None:
    """A merged copy's ``files.json`` (its files' `FileInfo` under ``files``); None when
    there is none or it does not parse (the copy is then made again)."""
    try:
        body = json.loads((view / _VIEW_INDEX).read_text(encoding="utf-8"))
        return {"sources": dict(body["sources"]), "verified": bool(body["verified"]),
                "files": {str(n): file_info(i) for n, i in body["files"].items()}}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
