"""Snapshot manifests, versions and errors.

The manifest is the table of contents of a snapshot directory and the last file written, so
its presence means the snapshot is complete. It lists every array file with its sha256, size,
dtype and shape, so a reader can refuse a truncated, corrupted or foreign snapshot before
serving from it. Versions are zero-padded counters: they sort as strings, which is all the
stores need to find the newest and to prune.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "ONE_USER_SIDE_FORMAT",
    "READABLE_FORMATS",
    "FileInfo",
    "Manifest",
    "SnapshotCorrupt",
    "SnapshotError",
    "SnapshotFormatError",
    "SnapshotIncomplete",
    "file_info",
    "is_version",
    "next_version",
]

#: What this build writes: 2 adds a hash table per model id list (``*_ids.table``); 3 adds the
#: per-user ordered history (``history.*``), the item-item model (``item_item.*``) and the
#: scoring settings (``params.scoring``, ``params.item_item``); 4 adds the item catalogue
#: (``catalog``, with the items-topic offsets it holds); 5 adds the tombstone set of erased
#: users and items (``tombstones.*``, ``core/events/erasure.py``); 6 holds the tombstones' keyed
#: hashes (``tombstones.*.hash``) instead of the erased ids (``core/events/erasurekey.py``); 7
#: writes every scorer's arrays under its name (``als.*``, ``item_item.*``) and its settings as
#: ``params.<name>``, the names in ``params.scorers`` (``core/scoring/scorer.py``); 8 stores
#: the catalogue as arrays (``catalog.*``, ``core/catalog/table.py``) that workers map and share
#: instead of JSON each parsed into Python objects; 9 may split the user side by the user's
#: partition of the interactions topic (``users.<p>.*``, ``sizes["user_partitions"]``,
#: ``core/snapshot/usersides.py``) so a serving group fetches and maps its own users only.
FORMAT_VERSION = 9
#: What a snapshot with one user side is written as: format 9 adds nothing else, so a trainer
#: upgraded before its serving replicas (which read 1-8) does not have every snapshot refused
#: until they are; ``sizes.user_partitions`` (1) is a key format-8 readers ignore.
ONE_USER_SIDE_FORMAT = 8
#: What it reads: format 1 snapshots still load (their id tables are built at load); formats
#: 1 and 2 are scored as before (no recency, ALS alone); before 4 the catalogue is empty;
#: before 5 the tombstone set is empty; format 5's tombstones (ids) are hashed when read;
#: before 7 the ALS factors are ``{user,item}_factors``; before 9 the user side is one.
READABLE_FORMATS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
MANIFEST_NAME = "manifest.json"
_VERSION = re.compile(r"\d{12}")


class SnapshotError(Exception):
    """Base for every reason a snapshot cannot be written or used."""


class SnapshotIncomplete(SnapshotError):
    """The manifest or a file it lists is missing (a partial upload, or not a snapshot)."""


class SnapshotCorrupt(SnapshotError):
    """A file's size, checksum or content does not match the manifest."""

    def __init__(self, path: Path | str, expected: str, actual: str) -> None:
        super().__init__(str(path), expected, actual)
        self.path, self.expected, self.actual = Path(path), expected, actual

    def __str__(self) -> str:
        return (
            f"corrupt snapshot file {self.path}: expected {self.expected}, got {self.actual};"
            " refetch or republish the snapshot"
        )


class SnapshotFormatError(SnapshotError):
    """The snapshot is readable but not something this code understands or trusts."""


def next_version(prev: str | None) -> str:
    """The version after ``prev`` (``None``: the first), e.g. ``'000000000042'``."""
    if prev is None:
        return f"{1:012d}"
    if not is_version(prev):
        raise ValueError(f"not a snapshot version: {prev!r} (expected 12 digits)")
    return f"{int(prev) + 1:012d}"


def is_version(text: str) -> bool:
    """True for a well-formed version id (12 ASCII digits)."""
    return _VERSION.fullmatch(text) is not None


@dataclass(frozen=True)
class FileInfo:
    """What the manifest records about one ``.npy`` file."""

    sha256: str
    bytes: int
    dtype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "sha256": self.sha256,
            "bytes": self.bytes,
            "dtype": self.dtype,
            "shape": list(self.shape),
        }


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json``; see docs/core.md for every field."""

    version: str
    created_at: str
    created_at_unix: float
    params: dict[str, Any]
    fit: dict[str, Any]
    sizes: dict[str, int]
    offsets: dict[int, int]
    window: dict[str, Any]
    files: dict[str, FileInfo]
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        body = {
            "format_version": self.format_version,
            "version": self.version,
            "created_at": self.created_at,
            "created_at_unix": self.created_at_unix,
            "params": self.params,
            "fit": self.fit,
            "sizes": self.sizes,
            # JSON keys are strings; partitions are ints again after from_json.
            "offsets": {str(p): o for p, o in sorted(self.offsets.items())},
            "window": self.window,
            "files": {name: info.to_dict() for name, info in sorted(self.files.items())},
            "extra": self.extra,
        }
        return json.dumps(body, indent=2, sort_keys=False, allow_nan=False) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "manifest") -> Manifest:
        """Parse and check a manifest; ``SnapshotFormatError`` says what is wrong."""
        try:
            body = json.loads(text)
        except ValueError as exc:
            raise SnapshotFormatError(f"{source} is not valid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise SnapshotFormatError(f"{source} is not a JSON object")
        version = body.get("format_version")
        if isinstance(version, bool) or version not in READABLE_FORMATS:
            raise SnapshotFormatError(
                f"{source} has format_version {version!r}; this build reads"
                f" {', '.join(map(str, READABLE_FORMATS))}"
            )
        try:
            return cls(
                version=str(body["version"]),
                created_at=str(body["created_at"]),
                created_at_unix=float(body["created_at_unix"]),
                params=dict(body["params"]),
                fit=dict(body["fit"]),
                sizes={str(k): int(v) for k, v in body["sizes"].items()},
                offsets={int(k): int(v) for k, v in body["offsets"].items()},
                window=dict(body["window"]),
                files={str(name): file_info(info) for name, info in body["files"].items()},
                extra=dict(body.get("extra") or {}),
                format_version=int(version),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SnapshotFormatError(f"{source} is missing or mistypes a field: {exc!r}") from None


def file_info(info: Mapping[str, Any]) -> FileInfo:
    """A :class:`FileInfo` from its ``to_dict`` (``KeyError``/``TypeError``/``ValueError``
    when a field is missing or mistyped)."""
    return FileInfo(
        sha256=str(info["sha256"]),
        bytes=int(info["bytes"]),
        dtype=str(info["dtype"]),
        shape=tuple(int(d) for d in info["shape"]),
    )
