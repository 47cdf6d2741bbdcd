"""A snapshot store in a local directory: the embedded default, and the model for S3Store.

Atomicity comes from rename: a version is assembled in a hidden temporary directory and renamed
into place, and LATEST is replaced with ``os.replace`` after an fsync, so a crash at any point
leaves either the old state or the new one. Fetching hard-links the immutable files (copying
across filesystems), so the caller owns its copy and pruning the store cannot pull files out
from under a replica that has them memory-mapped.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..core.snapshot.manifest import MANIFEST_NAME
from ..core.snapshot.trainingstatus import TRAINING_NAME
from ..core.snapshot.usersides import UserShard
from .snapshotfiles import fsync_path
from .storebase import (
    EXPERIMENTS_DIR,
    LATEST_NAME,
    SNAPSHOTS_DIR,
    StoreError,
    StoreUnavailable,
    VersionNotFound,
    check_version_name,
    complete,
    fetched_partitions,
    prune_candidates,
    wanted,
)

__all__ = ["LocalStore"]

_TMP = ".tmp-"
# Temporary directories older than this are debris from a crash; prune removes them.
_STALE_SECONDS = 3600.0


@contextmanager
def _io(what: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise StoreUnavailable(f"local store: {what} failed: {exc}") from exc


def _snapshot_files(directory: Path) -> list[Path]:
    """Regular files of a snapshot directory, the manifest last."""
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    return sorted(files, key=lambda p: p.name == MANIFEST_NAME)


def _link_or_copy(src: Path, dst: Path) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not supported
        shutil.copyfile(src, dst)


class LocalStore:
    """Snapshots under ``root/snapshots/<version>/`` with ``root/LATEST``."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.snapshots = self.root / SNAPSHOTS_DIR

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def check_writable(self) -> None:
        """Create the store directory if needed and prove a file can be written there.

        The trainer calls this at start, so a store it could never publish to (a read-only
        root filesystem in a container, a typo'd mount path) is reported before the first fit,
        not at its end. Raises ``StoreError`` with the operating system's reason.
        """
        probe = self.root / f".write-check-{uuid.uuid4().hex}"
        try:
            self.snapshots.mkdir(parents=True, exist_ok=True)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise StoreError(f"cannot write to {self.root}: {e.strerror or e}") from e

    def publish(self, local_dir: Path, version: str) -> None:
        check_version_name(version)
        local_dir = Path(local_dir)
        if not (local_dir / MANIFEST_NAME).is_file():
            raise StoreError(f"{local_dir} has no {MANIFEST_NAME}: not a complete snapshot")
        final = self.snapshots / version
        with _io(f"publishing {version}"):
            self.snapshots.mkdir(parents=True, exist_ok=True)
            if final.exists():
                self._check_same(local_dir, final, version)
            else:
                tmp = self.snapshots / f"{_TMP}{version}-{uuid.uuid4().hex}"
                tmp.mkdir()
                try:
                    for src in _snapshot_files(local_dir):
                        shutil.copyfile(src, tmp / src.name)
                        fsync_path(tmp / src.name)
                    fsync_path(tmp)
                    os.rename(tmp, final)
                except OSError:
                    shutil.rmtree(tmp, ignore_errors=True)
                    if not final.exists():
                        raise
                    # Another publisher renamed the same version into place first.
                    self._check_same(local_dir, final, version)
                except BaseException:
                    shutil.rmtree(tmp, ignore_errors=True)
                    raise
                fsync_path(self.snapshots)
            self._write_latest(version)

    @staticmethod
    def _check_same(local_dir: Path, final: Path, version: str) -> None:
        # A retried publish (say, after a crash before LATEST moved) is fine; a different
        # snapshot under a used version is a bug upstream.
        published = final / MANIFEST_NAME
        if (
            not published.is_file()
            or published.read_bytes() != (local_dir / MANIFEST_NAME).read_bytes()
        ):
            raise StoreError(f"version {version} is already published with other content")

    def _write_latest(self, version: str) -> None:
        self._replace(LATEST_NAME, (version + "\n").encode("ascii"))

    def _replace(self, name: str, data: bytes) -> None:
        tmp = self.root / f".{name}.{uuid.uuid4().hex}"
        with tmp.open("wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / name)
        fsync_path(self.root)

    def create_if_absent(self, name: str, data: bytes) -> bytes:
        """Store ``data`` as ``root/name`` unless that exists (an exclusive link of a complete,
        fsynced file: never a partial one); return what ``root/name`` holds now."""
        target = self.root / name
        with _io(f"creating {name}"):
            self.root.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                tmp = self.root / f".{name}.{uuid.uuid4().hex}"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                try:
                    os.write(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
                try:
                    os.link(tmp, target)  # fails if another process created it first
                    fsync_path(self.root)
                except FileExistsError:
                    pass
                finally:
                    tmp.unlink(missing_ok=True)
            return target.read_bytes()

    def put_training_status(self, data: bytes) -> None:
        with _io(f"writing {TRAINING_NAME}"):
            self.root.mkdir(parents=True, exist_ok=True)
            self._replace(TRAINING_NAME, data)

    def training_status(self) -> bytes | None:
        with _io(f"reading {TRAINING_NAME}"):
            try:
                return (self.root / TRAINING_NAME).read_bytes()
            except FileNotFoundError:
                return None

    def put_experiment_part(self, experiment: str, part: str, data: bytes) -> None:
        directory = self.root / EXPERIMENTS_DIR / check_version_name(experiment)
        with _io(f"writing results of experiment {experiment}"):
            directory.mkdir(parents=True, exist_ok=True)
            tmp = directory / f".{check_version_name(part)}.{uuid.uuid4().hex}"
            tmp.write_bytes(data)
            os.replace(tmp, directory / f"{part}.json")

    def experiment_parts(self, experiment: str) -> dict[str, bytes]:
        directory = self.root / EXPERIMENTS_DIR / check_version_name(experiment)
        with _io(f"reading results of experiment {experiment}"):
            if not directory.is_dir():
                return {}
            return {p.stem: p.read_bytes() for p in sorted(directory.glob("*.json"))}

    def experiment_names(self) -> list[str]:
        directory = self.root / EXPERIMENTS_DIR
        with _io("listing experiments"):
            if not directory.is_dir():
                return []
            return sorted(p.name for p in directory.iterdir()
                          if p.is_dir() and not p.name.startswith("."))

    def latest(self) -> str | None:
        with _io("reading LATEST"):
            try:
                text = (self.root / LATEST_NAME).read_text(encoding="ascii").strip()
            except FileNotFoundError:
                return None
        return text or None

    def versions(self) -> list[str]:
        with _io("listing versions"):
            if not self.snapshots.is_dir():
                return []
            return sorted(
                p.name
                for p in self.snapshots.iterdir()
                if not p.name.startswith(".") and (p / MANIFEST_NAME).is_file()
            )

    def fetch(self, version: str, dest: Path, window: bool = True,
              shard: UserShard | None = None) -> Path:
        check_version_name(version)
        target = Path(dest) / version
        src = self.snapshots / version
        with _io(f"fetching {version}"):
            if complete(target, window, shard):
                return target
            try:
                parts = fetched_partitions((src / MANIFEST_NAME).read_bytes(), shard)
            except FileNotFoundError:
                raise VersionNotFound(version, str(self.root)) from None
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.parent / f"{_TMP}{version}-{uuid.uuid4().hex}"
            tmp.mkdir()
            try:
                for file in _snapshot_files(src):
                    if wanted(file.name, window, parts):
                        _link_or_copy(file, tmp / file.name)
                if target.exists():  # an incomplete leftover: replace it
                    shutil.rmtree(target)
                os.rename(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        return target

    def prune(self, keep: int) -> list[str]:
        doomed = prune_candidates(self.versions(), self.latest(), keep)
        with _io("pruning"):
            for version in doomed:
                path = self.snapshots / version
                # Manifest first: a half-deleted version is then invisible, not corrupt.
                (path / MANIFEST_NAME).unlink(missing_ok=True)
                shutil.rmtree(path)
            if self.snapshots.is_dir():
                now = time.time()
                for debris in self.snapshots.glob(f"{_TMP}*"):
                    if now - debris.stat().st_mtime > _STALE_SECONDS:
                        shutil.rmtree(debris, ignore_errors=True)
        return doomed
