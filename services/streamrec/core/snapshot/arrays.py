"""Snapshots: a model plus everything needed to serve it and to resume training, as arrays.

A snapshot is a set of named arrays (``snapshotlayout.py``) and a manifest (``manifest.py``)
that lists each with its checksum. This module is the pure half: the arrays and the manifest of
a model, and a :class:`Snapshot` from arrays a reader checked against its manifest. Writing and
reading the ``.npy`` files (memory-mapped, ``allow_pickle=False``, fsync'd, checksummed) is the
adapter ``streamrec.adapters.snapshotfiles``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..catalog.records import Catalogue
from ..catalog.table import FILES as CATALOG_FILES
from ..catalog.table import MODEL_ROWS
from ..events.erasure import Tombstones
from ..scoring.model import Model
from ..scoring.types import ModelError
from ..window.sliding import WindowContents
from . import layout, usersides
from .manifest import (
    FORMAT_VERSION,
    ONE_USER_SIDE_FORMAT,
    FileInfo,
    Manifest,
    SnapshotFormatError,
)

__all__ = [
    "Snapshot",
    "files_to_read",
    "snapshot_arrays",
    "snapshot_from_arrays",
    "snapshot_manifest",
]

Array = npt.NDArray[Any]


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A loaded snapshot: the model to serve, the window to resume, the offsets to seek to.

    ``catalog`` is the item catalogue and ``item_offsets`` the items-topic offsets it holds
    (next to read, per partition); empty for a snapshot written before format 4.
    ``tombstones`` is the set of users and items erased up to the offsets (``erasure.py``);
    empty before format 5. ``event_ids`` is the client event ids of the window's events, read
    with or without the window (fold-in de-duplicates against them); empty when none."""

    manifest: Manifest
    model: Model
    window: WindowContents
    offsets: dict[int, int]
    path: Path
    catalog: Catalogue = field(default_factory=Catalogue)
    item_offsets: dict[int, int] = field(default_factory=dict)
    tombstones: Tombstones = field(default_factory=Tombstones)
    event_ids: frozenset[str] = frozenset()

    @property
    def version(self) -> str:
        return self.manifest.version


def _catalogue(a: Mapping[str, Array], model: Model) -> tuple[Catalogue, dict[int, int]]:
    """The snapshot's catalogue and the items-topic offsets it holds: mapped arrays from
    format 8 (bound to ``model``'s items when the snapshot has their rows), parsed JSON
    before (empty before format 4)."""
    present = [n for n in (*CATALOG_FILES, MODEL_ROWS) if n in a]
    if present and len(present) < len(CATALOG_FILES):
        raise ValueError(f"the catalogue's arrays are incomplete: missing "
                         f"{sorted(set(CATALOG_FILES) - set(present))}")
    if present:
        catalogue, offsets = Catalogue.from_arrays(a)
        if MODEL_ROWS in a and catalogue.base is not None:
            catalogue.base.bind(model.item_ids, a[MODEL_ROWS])
        return catalogue, offsets
    if "catalog" in a:
        return Catalogue.from_bytes(np.asarray(a["catalog"]).tobytes())
    return Catalogue(), {}


def snapshot_arrays(model: Model, window: WindowContents,
                    catalog: Mapping[str, Array] | None = None,
                    tombstones: Tombstones | None = None,
                    user_partitions: int = 1) -> dict[str, Array]:
    """Every array of a snapshot by file name (without ``.npy``). ``catalog`` is the item
    catalogue with its offsets (``Catalogue.to_arrays``); ``tombstones`` (default: none) the
    erased users and items the snapshot must keep erased on resume and replay;
    ``user_partitions`` > 1 splits the user side by partition (format 9, ``usersides.py``)."""
    return {**layout.to_arrays(model, window, catalog, user_partitions),
            **(tombstones or Tombstones()).to_arrays()}


def snapshot_manifest(
    model: Model,
    window: WindowContents,
    offsets: Mapping[int, int],
    version: str,
    files: dict[str, FileInfo],
    created_at: float,
    extra_meta: Mapping[str, Any] | None = None,
    user_partitions: int = 1,
) -> Manifest:
    """The manifest of a snapshot whose arrays were written as ``files``; ``created_at`` in
    Unix seconds; ``user_partitions``: the partitions its user side is split into."""
    info = model.fit_info
    return Manifest(
        version=version,
        created_at=datetime.fromtimestamp(created_at, timezone.utc).isoformat().replace(
            "+00:00", "Z"),
        created_at_unix=created_at,
        params=layout.params_of(model),
        fit={} if info is None else info.to_dict(),
        sizes={
            "users": len(model.user_ids),
            "items": len(model.item_ids),
            "nnz": int(model.user_items.nnz),
            "factors": model.factors,
            "window": len(window),
            "user_partitions": max(1, user_partitions),
        },
        offsets={int(p): int(o) for p, o in offsets.items()},
        window={
            "capacity": window.capacity,
            "decay_half_life": window.decay_half_life,
            "total_appended": window.total_appended,
        },
        files=files,
        extra=dict(extra_meta or {}),
        format_version=FORMAT_VERSION if user_partitions > 1 else ONE_USER_SIDE_FORMAT,
    )


def files_to_read(manifest: Manifest, window: bool, source: Path | str,
                  partitions: Collection[int] | None = None) -> tuple[str, ...]:
    """The array names to read for ``manifest`` (with the window's or not; of a split user
    side, ``partitions``' parts, all when None).

    Raises ``SnapshotFormatError`` naming ``source`` when the manifest lacks one of them.
    """
    try:
        names = layout.files_for(manifest, window, partitions)
    except ValueError as exc:
        raise SnapshotFormatError(f"{source} does not hold a consistent snapshot: {exc}") from None
    missing = set(names) - set(manifest.files)
    if missing:
        raise SnapshotFormatError(f"{source} manifest does not list {sorted(missing)}")
    return names


def snapshot_from_arrays(a: Mapping[str, Array], manifest: Manifest, path: Path,
                         window: bool = True) -> Snapshot:
    """The snapshot over ``a`` (the arrays of :func:`files_to_read`, already checked against
    the manifest; memory-mapped ones stay mapped). ``window=False``: the window's settings
    without its events. The parts of a split user side (``users.<p>.*``) are merged first
    (``usersides.merge``; a reader that shares them across processes merges them itself).
    Raises ``SnapshotFormatError`` when the arrays do not fit together."""
    try:
        rest, parts = usersides.group_parts(a)
        if parts:
            a = {**rest, **usersides.merge(parts)}
        model = layout.model_from_arrays(a, manifest)
        contents = (
            layout.window_from_arrays(a, manifest) if window else layout.empty_window(manifest)
        )
        catalog, item_offsets = _catalogue(a, model)
        tombstones = layout.tombstones_from_arrays(a)
        event_ids = frozenset(e for _, e in layout.event_ids_from_arrays(
            a, manifest.sizes.get("window")))
    except (ModelError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
        raise SnapshotFormatError(f"{path} does not hold a consistent snapshot: {exc}") from None
    return Snapshot(
        manifest=manifest, model=model, window=contents, offsets=dict(manifest.offsets), path=path,
        catalog=catalog, item_offsets=item_offsets, tombstones=tombstones, event_ids=event_ids,
    )
