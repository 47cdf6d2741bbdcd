"""Snapshot stores: one small interface, a local directory or S3 behind it.

The trainer publishes through a :class:`SnapshotStore`; serving replicas poll ``latest()`` and
``fetch()`` the new version into a local directory to memory-map it. ``open_store`` turns the
``--store`` setting (``s3://bucket/prefix`` or a directory) into the right one.
"""

from __future__ import annotations

from pathlib import Path

from streamrec.settings.sections import S3Settings

from .localstore import LocalStore
from .s3store import S3Store
from .storebase import (
    LATEST_NAME,
    SNAPSHOTS_DIR,
    SnapshotStore,
    StoreError,
    StoreUnavailable,
    VersionNotFound,
)

__all__ = [
    "LATEST_NAME",
    "SNAPSHOTS_DIR",
    "LocalStore",
    "S3Store",
    "SnapshotStore",
    "StoreError",
    "StoreUnavailable",
    "VersionNotFound",
    "open_store",
]


def open_store(url: str, s3: S3Settings | None = None) -> SnapshotStore:
    """``s3://bucket[/prefix]`` gives an :class:`S3Store` reached as ``s3`` says (default:
    AWS's endpoint, boto3's region); ``file://path`` or a plain path a :class:`LocalStore`.
    ``ValueError`` for anything else."""
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"store URL {url!r} has no bucket")
        s3 = s3 or S3Settings()
        return S3Store(bucket, prefix, endpoint_url=s3.endpoint or None, region=s3.region)
    if url.startswith("file://"):
        url = url[len("file://") :]
    elif "://" in url:
        raise ValueError(f"unsupported store URL {url!r}: use s3://bucket/prefix or a directory")
    if not url:
        raise ValueError("empty store path")
    return LocalStore(Path(url))
