"""A snapshot store in S3 (or MinIO, or any S3-compatible endpoint), through boto3.

S3 has no rename, so ordering does the work of atomicity: the array files go up first, the
manifest after them, and LATEST last. A version counts only once its manifest exists, and
pruning deletes the manifest first. Downloads land in a temporary local directory that is
renamed into place. Credentials come from boto3's standard chain (environment, config files,
instance or pod identity); every backend failure becomes :class:`StoreUnavailable`.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import boto3.exceptions
import botocore.exceptions
from botocore.config import Config

from ..core.snapshot.manifest import MANIFEST_NAME
from ..core.snapshot.trainingstatus import TRAINING_NAME
from ..core.snapshot.usersides import UserShard, parse_part
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

__all__ = ["S3Store"]

_MISSING = {"NoSuchKey", "404", "NotFound"}
_DELETE_BATCH = 1000  # the DeleteObjects limit
_LOST_RACE = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class _Missing(Exception):
    """An object that is not there (internal: callers turn it into None or VersionNotFound)."""


@contextmanager
def _s3(what: str) -> Iterator[None]:
    try:
        yield
    except botocore.exceptions.ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _MISSING:
            raise _Missing(code) from exc
        raise StoreUnavailable(f"S3 {what} failed ({code or 'error'}): {exc}", code) from exc
    except (botocore.exceptions.BotoCoreError, boto3.exceptions.Boto3Error, OSError) as exc:
        raise StoreUnavailable(f"S3 {what} failed: {exc}") from exc


def make_client(
    endpoint_url: str | None = None,
    region: str | None = None,
    *,
    access_key_id: str | None = None,
    secret_access_key: str | None = None,
    connect_timeout: float = 5,
    read_timeout: float = 60,
    max_attempts: int = 3,
) -> Any:
    """An S3 client with bounded retries and timeouts (path-style for custom endpoints).

    Credentials come from boto3's standard chain unless both keys are given (the operator
    passes those of a RecommenderService's ``spec.snapshots.credentialsSecret``).
    ``max_attempts`` counts the first try (botocore's ``standard`` retry mode).
    """
    config = Config(
        retries={"mode": "standard", "max_attempts": max_attempts},
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    # boto3 itself reads AWS_DEFAULT_REGION; AWS_REGION is what our docs and most tools use.
    region = region or os.environ.get("AWS_REGION") or None
    with _s3("client setup"):
        return boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=config,
            aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key,
        )


class S3Store:
    """Snapshots under ``s3://bucket/<prefix>/snapshots/<version>/`` with ``<prefix>/LATEST``.

    Parameters
    ----------
    client : optional
        A ready boto3 S3 client (tests, custom sessions); otherwise one is made from
        ``endpoint_url`` and ``region`` with credentials from the standard chain.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3Store needs a bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = client if client is not None else make_client(endpoint_url, region)

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}')"

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _version_prefix(self, version: str) -> str:
        return self._key(SNAPSHOTS_DIR, version) + "/"

    def _get(self, key: str, limit: int | None = None) -> bytes:
        with _s3(f"get {key}"):
            body: bytes = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read(limit)
            return body

    def _keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        with _s3(f"list {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                keys.extend(obj["Key"] for obj in page.get("Contents", ()))
        return keys

    def publish(self, local_dir: Path, version: str) -> None:
        check_version_name(version)
        local_dir = Path(local_dir)
        manifest = local_dir / MANIFEST_NAME
        if not manifest.is_file():
            raise StoreError(f"{local_dir} has no {MANIFEST_NAME}: not a complete snapshot")
        base = self._version_prefix(version)
        try:
            published: bytes | None = self._get(base + MANIFEST_NAME)
        except _Missing:
            published = None
        if published is not None and published != manifest.read_bytes():
            raise StoreError(f"version {version} is already published with other content")
        if published is None:
            files = sorted(
                p
                for p in local_dir.iterdir()
                if p.is_file() and p.name != MANIFEST_NAME and not p.name.startswith(".")
            )
            for path in [*files, manifest]:  # manifest last: it marks the version complete
                with _s3(f"upload {base}{path.name}"):
                    self.client.upload_file(str(path), self.bucket, base + path.name)
        with _s3("put LATEST"):
            self.client.put_object(
                Bucket=self.bucket,
                Key=self._key(LATEST_NAME),
                Body=(version + "\n").encode("ascii"),
                ContentType="text/plain",
            )

    def create_if_absent(self, name: str, data: bytes) -> bytes:
        """Store ``data`` as ``<prefix>/name`` unless it exists (a conditional put,
        ``If-None-Match: *``, honoured by S3 and MinIO); return what is stored now."""
        key = self._key(name)
        try:
            return self._get(key)
        except _Missing:
            pass
        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*",
                                   ContentType="application/octet-stream")
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            # Another component created it first (412), or wrote it concurrently (409): read
            # the winner's. Anything else is the store failing.
            if code not in _LOST_RACE:
                raise StoreUnavailable(f"S3 create {key} failed ({code or 'error'}): {exc}") \
                    from exc
        except (botocore.exceptions.BotoCoreError, boto3.exceptions.Boto3Error,
                OSError) as exc:
            raise StoreUnavailable(f"S3 create {key} failed: {exc}") from exc
        try:
            return self._get(key)
        except _Missing:
            raise StoreUnavailable(f"S3 {key} vanished right after it was created") from None

    def put_training_status(self, data: bytes) -> None:
        with _s3(f"put {TRAINING_NAME}"):
            self.client.put_object(Bucket=self.bucket, Key=self._key(TRAINING_NAME), Body=data,
                                   ContentType="application/json")

    def training_status(self, limit: int | None = None) -> bytes | None:
        try:
            return self._get(self._key(TRAINING_NAME), limit)
        except _Missing:
            return None

    def put_experiment_part(self, experiment: str, part: str, data: bytes) -> None:
        key = self._key(EXPERIMENTS_DIR, check_version_name(experiment),
                        check_version_name(part) + ".json")
        with _s3(f"put {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data,
                                   ContentType="application/json")

    def experiment_parts(self, experiment: str) -> dict[str, bytes]:
        base = self._key(EXPERIMENTS_DIR, check_version_name(experiment)) + "/"
        out = {}
        for key in sorted(self._keys(base)):
            name = key[len(base):]
            if "/" not in name and name.endswith(".json"):
                try:
                    out[name.removesuffix(".json")] = self._get(key)
                except _Missing:  # pruned between the listing and the read
                    continue
        return out

    def experiment_names(self) -> list[str]:
        base = self._key(EXPERIMENTS_DIR) + "/"
        return sorted({key[len(base):].split("/", 1)[0] for key in self._keys(base)
                       if "/" in key[len(base):]})

    def latest(self) -> str | None:
        raw = self.latest_bytes()
        text = "" if raw is None else raw.decode("ascii", "replace").strip()
        return text or None

    def latest_bytes(self, limit: int = 1024) -> bytes | None:
        """LATEST as stored (at most ``limit`` bytes), None when it does not exist; for a
        reader that checks the content itself (the operator's status)."""
        try:
            return self._get(self._key(LATEST_NAME), limit)
        except _Missing:
            return None

    def versions(self) -> list[str]:
        base = self._key(SNAPSHOTS_DIR) + "/"
        suffix = "/" + MANIFEST_NAME
        found = (k[len(base) : -len(suffix)] for k in self._keys(base) if k.endswith(suffix))
        return sorted(v for v in found if v and "/" not in v)

    def fetch(self, version: str, dest: Path, window: bool = True,
              shard: UserShard | None = None) -> Path:
        check_version_name(version)
        target = Path(dest) / version
        if complete(target, window, shard):
            return target
        base = self._version_prefix(version)
        names = [k[len(base) :] for k in self._keys(base)]
        names = [n for n in names if n and "/" not in n and not n.startswith(".")]
        if MANIFEST_NAME not in names:
            raise VersionNotFound(version, f"s3://{self.bucket}/{self.prefix}")
        parts = None
        if shard is not None and any(parse_part(n.removesuffix(".npy")) for n in names):
            try:  # which partitions: the manifest says how the user side is split
                parts = fetched_partitions(self._get(base + MANIFEST_NAME), shard)
            except _Missing:
                raise VersionNotFound(version, f"s3://{self.bucket}/{self.prefix}") from None
        names = [n for n in names if wanted(n, window, parts)]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(target.parent / f".tmp-{version}-{uuid.uuid4().hex}")
            tmp.mkdir()
        except OSError as exc:
            raise StoreUnavailable(f"cannot create a download directory in {dest}: {exc}") from exc
        try:
            for name in sorted(names, key=lambda n: n == MANIFEST_NAME):
                try:
                    with _s3(f"download {base}{name}"):
                        self.client.download_file(self.bucket, base + name, str(tmp / name))
                except _Missing:  # pruned while we were downloading
                    raise VersionNotFound(version, f"s3://{self.bucket}/{self.prefix}") from None
            with _s3(f"install {target}"):
                if target.exists():  # an incomplete leftover: replace it
                    shutil.rmtree(target)
                os.rename(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return target

    def prune(self, keep: int) -> list[str]:
        doomed = prune_candidates(self.versions(), self.latest(), keep)
        for version in doomed:
            base = self._version_prefix(version)
            with _s3(f"delete {base}{MANIFEST_NAME}"):  # first: the version disappears at once
                self.client.delete_object(Bucket=self.bucket, Key=base + MANIFEST_NAME)
            rest = [k for k in self._keys(base) if not k.endswith("/" + MANIFEST_NAME)]
            for start in range(0, len(rest), _DELETE_BATCH):
                batch = rest[start : start + _DELETE_BATCH]
                with _s3(f"delete {base}*"):
                    self.client.delete_objects(
                        Bucket=self.bucket,
                        Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True},
                    )
        return doomed
