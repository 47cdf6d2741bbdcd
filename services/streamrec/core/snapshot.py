"""Snapshots: a model plus everything needed to serve it and to resume training, on disk.

A snapshot is a directory of ``.npy`` files and a ``manifest.json`` written last. Arrays are
saved and loaded with ``allow_pickle=False`` (data, never code) and loaded memory-mapped, so the
gunicorn workers of a replica share one copy of the factors in the page cache. Every file's
sha256 and size is checked against the manifest before anything is trusted.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import snapshotlayout as layout
from .catalog import Catalogue
from .erasure import Tombstones
from .manifest import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    READABLE_FORMATS,
    FileInfo,
    Manifest,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotFormatError,
    SnapshotIncomplete,
    is_version,
    next_version,
)
from .model import Model
from .modeltypes import ModelError
from .window import WindowContents

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "READABLE_FORMATS",
    "FileInfo",
    "Manifest",
    "Snapshot",
    "SnapshotCorrupt",
    "SnapshotError",
    "SnapshotFormatError",
    "SnapshotIncomplete",
    "is_version",
    "next_version",
    "read_manifest",
    "read_snapshot",
    "write_snapshot",
]

Array = npt.NDArray[Any]
_CHUNK = 1 << 20


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A loaded snapshot: the model to serve, the window to resume, the offsets to seek to.

    ``catalog`` is the item catalogue and ``item_offsets`` the items-topic offsets it holds
    (next to read, per partition); empty for a snapshot written before format 4.
    ``tombstones`` is the set of users and items erased up to the offsets (``erasure.py``);
    empty before format 5."""

    manifest: Manifest
    model: Model
    window: WindowContents
    offsets: dict[int, int]
    path: Path
    catalog: Catalogue = field(default_factory=Catalogue)
    item_offsets: dict[int, int] = field(default_factory=dict)
    tombstones: Tombstones = field(default_factory=Tombstones)

    @property
    def version(self) -> str:
        return self.manifest.version


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
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
        sha256=_sha256(path),
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
    catalog: bytes | None = None,
    tombstones: Tombstones | None = None,
) -> Manifest:
    """Write a snapshot into ``directory`` (created if needed); the manifest goes last.

    ``sync=False`` skips the fsyncs, for a scratch copy that a store then uploads or copies
    durably itself (the trainer's case: 19 fsyncs can cost more than writing the arrays).
    ``catalog`` is the item catalogue with its offsets (``Catalogue.to_bytes``).
    ``tombstones`` (default: none) is the erased users and items the snapshot must keep
    erased on resume and replay (``erasure.py``). Raises ``SnapshotError`` if the directory
    already holds a snapshot.
    """
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    if (path / MANIFEST_NAME).exists():
        raise SnapshotError(f"{path} already holds a snapshot; write each version once")
    arrays = {**layout.to_arrays(model, window, catalog),
              **(tombstones or Tombstones()).to_arrays()}
    files = {
        name: _write_array(path / f"{name}.npy", array, sync) for name, array in arrays.items()
    }
    if sync:
        _fsync_dir(path)
    now = time.time() if created_at is None else created_at
    info = model.fit_info
    manifest = Manifest(
        version=version,
        created_at=datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z"),
        created_at_unix=now,
        params=layout.params_of(model),
        fit={} if info is None else info.to_dict(),
        sizes={
            "users": len(model.user_ids),
            "items": len(model.item_ids),
            "nnz": int(model.user_items.nnz),
            "factors": model.factors,
            "window": len(window),
        },
        offsets={int(p): int(o) for p, o in offsets.items()},
        window={
            "capacity": window.capacity,
            "decay_half_life": window.decay_half_life,
            "total_appended": window.total_appended,
        },
        files=files,
        extra=dict(extra_meta or {}),
    )
    tmp = path / f".{MANIFEST_NAME}.tmp"
    with tmp.open("w", encoding="utf-8") as f:
        f.write(manifest.to_json())
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path / MANIFEST_NAME)
    if sync:
        _fsync_dir(path)
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
    if verify and (digest := _sha256(path)) != info.sha256:
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
    return array


def read_snapshot(
    directory: Path | str, verify: bool = True, mmap: bool = True, window: bool = True
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

    Raises
    ------
    SnapshotIncomplete, SnapshotCorrupt, SnapshotFormatError
    """
    path = Path(directory)
    manifest = read_manifest(path)
    try:
        names = layout.files_for(manifest, window)
    except ValueError as exc:
        raise SnapshotFormatError(f"{path} does not hold a consistent snapshot: {exc}") from None
    missing = set(names) - set(manifest.files)
    if missing:
        raise SnapshotFormatError(f"{path} manifest does not list {sorted(missing)}")
    a = {name: _load(path / f"{name}.npy", manifest.files[name], verify, mmap) for name in names}
    try:
        model = layout.model_from_arrays(a, manifest)
        contents = (
            layout.window_from_arrays(a, manifest) if window else layout.empty_window(manifest)
        )
        catalog, item_offsets = (Catalogue.from_bytes(np.asarray(a["catalog"]).tobytes())
                                 if "catalog" in a else (Catalogue(), {}))
        tombstones = layout.tombstones_from_arrays(a)
    except (ModelError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise SnapshotFormatError(f"{path} does not hold a consistent snapshot: {exc}") from None
    return Snapshot(
        manifest=manifest, model=model, window=contents, offsets=dict(manifest.offsets), path=path,
        catalog=catalog, item_offsets=item_offsets, tombstones=tombstones,
    )
