"""What every snapshot store promises, and the errors it may raise.

A store holds published snapshot directories under ``<prefix>/snapshots/<version>/`` and a
``<prefix>/LATEST`` object holding just the newest version id. Publishing uploads the files,
the manifest last, and only then replaces LATEST: a reader that follows LATEST never sees a
partial snapshot, and a version without a manifest is invisible.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..core.snapshot.layout import WINDOW_FILES, partitions_to_read
from ..core.snapshot.manifest import MANIFEST_NAME, Manifest, SnapshotError
from ..core.snapshot.usersides import UserShard, parse_part

__all__ = [
    "EXPERIMENTS_DIR",
    "ExperimentResults",
    "LATEST_NAME",
    "SNAPSHOTS_DIR",
    "SnapshotStore",
    "TrainingReports",
    "StoreError",
    "StoreUnavailable",
    "VersionNotFound",
    "check_version_name",
    "prune_candidates",
]

LATEST_NAME = "LATEST"
SNAPSHOTS_DIR = "snapshots"
#: ``<prefix>/experiments/<experiment>/<part>.json``: each serving worker's counts of an
#: experiment's arms (``serving/online/archive.py``), kept after the experiment ends.
EXPERIMENTS_DIR = "experiments"
# Versions become path segments and object keys: no separators, no dot files.
_SAFE_VERSION = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")


class StoreError(Exception):
    """Base for snapshot store errors."""


class StoreUnavailable(StoreError):
    """The backend failed (I/O error, network, S3 error): retry later, with backoff.

    ``code`` is the backend's error code where it gave one (S3's ``AccessDenied``,
    ``NoSuchBucket``...), else ``""``.
    """

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


class VersionNotFound(StoreError, KeyError):
    """No complete snapshot with this version exists in the store."""

    def __init__(self, version: str, where: str) -> None:
        super().__init__(version, where)
        self.version, self.where = version, where

    def __str__(self) -> str:
        return f"snapshot version {self.version!r} not found in {self.where}"


def check_version_name(version: str) -> str:
    """Return ``version`` if it is safe as a path segment and key; else ``ValueError``."""
    if not _SAFE_VERSION.fullmatch(version):
        raise ValueError(f"unsafe snapshot version name {version!r}")
    return version


def prune_candidates(versions: list[str], latest: str | None, keep: int) -> list[str]:
    """The versions `prune(keep)` deletes: all but the newest ``keep``, never LATEST's."""
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    return [v for v in versions[:-keep] if v != latest]


#: The objects of a version that hold the trainer's window (``core/snapshot/layout.py``):
#: what a fetch with ``window=False`` leaves out (at 10M users ~4.7 GB of a version).
WINDOW_OBJECTS = frozenset(f"{name}.npy" for name in WINDOW_FILES)


def wanted(name: str, window: bool, partitions: Collection[int] | None = None) -> bool:
    """Whether a fetch with(out) the ``window`` downloads the object ``name``; of a user side
    split by partition (``users.<p>.*``, format 9), only ``partitions``' (all when None)."""
    if not window and name in WINDOW_OBJECTS:
        return False
    parsed = parse_part(name.removesuffix(".npy"))
    return partitions is None or parsed is None or parsed[0] in partitions


def fetched_partitions(manifest_text: str | bytes | None, shard: UserShard | None
                       ) -> frozenset[int] | None:
    """The user partitions a fetch for ``shard`` takes of the snapshot whose manifest is
    ``manifest_text``: None (all) without a shard, for a snapshot not split the shard's way,
    or for a manifest that does not parse (the reader then refuses it with the reason)."""
    if shard is None or manifest_text is None:
        return None
    try:
        text = manifest_text.decode() if isinstance(manifest_text, bytes) else manifest_text
        manifest = Manifest.from_json(text)
    except (SnapshotError, UnicodeDecodeError):
        return None
    return partitions_to_read(manifest, shard)


def complete(target: Path, window: bool, shard: UserShard | None = None) -> bool:
    """Whether ``target`` is a finished copy good for a fetch with(out) the ``window`` for
    ``shard``: the manifest is written last, and every file it lists that such a fetch takes
    is there (a copy made without the window, or for other partitions, lacks some)."""
    try:
        manifest = Manifest.from_json((target / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, SnapshotError):
        return False
    parts = partitions_to_read(manifest, shard)
    return all((target / f"{name}.npy").is_file() for name in manifest.files
               if wanted(f"{name}.npy", window, parts))


@runtime_checkable
class SnapshotStore(Protocol):
    """Where the trainer publishes snapshots and replicas find them."""

    def publish(self, local_dir: Path, version: str) -> None:
        """Upload the snapshot in ``local_dir`` as ``version`` (manifest last), then point
        LATEST at it. Publishing the same content again only re-points LATEST."""
        ...

    def latest(self) -> str | None:
        """The version LATEST names, or None before the first publish."""
        ...

    def fetch(self, version: str, dest: Path, window: bool = True,
              shard: UserShard | None = None) -> Path:
        """Make ``dest/<version>/`` a complete local copy (atomically) and return it; an
        existing complete copy is reused. ``window=False`` leaves out the trainer's window
        (`WINDOW_OBJECTS`: only a trainer resuming reads it; serving never does), and a copy
        without it is complete for such a fetch only. ``shard``: of a user side split by
        partition (format 9), only the shard's partitions (`fetched_partitions`; a serving
        group's). ``VersionNotFound`` if the store lacks the version."""
        ...

    def versions(self) -> list[str]:
        """Complete (manifest present) versions, oldest first."""
        ...

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` versions, never the LATEST one; return them."""
        ...


@runtime_checkable
class TrainingReports(Protocol):
    """A store that also keeps the trainer's fit report (``core.trainingstatus``) next to
    LATEST. Both built-in stores do; a store without it simply has no report."""

    def put_training_status(self, data: bytes) -> None:
        """Replace the report (atomically: a reader sees the old one or the new one)."""
        ...

    def training_status(self) -> bytes | None:
        """The report's bytes, or None if none was written."""
        ...


@runtime_checkable
class ExperimentResults(Protocol):
    """A store that keeps experiments' results next to the snapshots: one small JSON part per
    serving worker and experiment (``EXPERIMENTS_DIR``). Both built-in stores do. Names and
    parts are checked with `check_version_name` (safe path segments and keys)."""

    def put_experiment_part(self, experiment: str, part: str, data: bytes) -> None:
        """Replace one worker's part of ``experiment``'s results (atomically)."""
        ...

    def experiment_parts(self, experiment: str) -> dict[str, bytes]:
        """Every part of ``experiment``'s results by part name ({} when none)."""
        ...

    def experiment_names(self) -> list[str]:
        """Experiments with results in the store, sorted."""
        ...
