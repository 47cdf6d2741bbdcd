"""Read the published snapshot version (``<prefix>/LATEST``) for the CR's status.

The trainer publishes a snapshot by writing ``<prefix>/snapshots/<version>/…`` and then
replacing ``<prefix>/LATEST``, which holds just the version id. The operator reads that one
small object through the adapters' store (``adapters.s3store.S3Store``, the one S3 client the
trainer and serving use too) with the credentials of ``spec.snapshots.credentialsSecret``: it
needs no extra RBAC (it already reads that Secret to check it exists), the trainer needs no
Kubernetes credentials at all, and the status shows what is really in the store, even while the
trainer is down. The trainer's fit report ``<prefix>/TRAINING`` (``core.trainingstatus``) is
read the same way and becomes the ``Training`` condition. This is the operator's only I/O besides
the Kubernetes API.
"""

from __future__ import annotations

import re
from dataclasses import replace

from streamrec.adapters.s3store import S3Store, make_client
from streamrec.adapters.storebase import StoreUnavailable
from streamrec.core.snapshot.trainingstatus import TRAINING_NAME, TrainingStatus
from streamrec.operator.spec import RecommenderSpec
from streamrec.operator.status import SnapshotRead

_VERSION = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
CONNECT_TIMEOUT_SECONDS = 3
READ_TIMEOUT_SECONDS = 5


def latest_key(name: str, spec: RecommenderSpec) -> str:
    return f"{spec.snapshots.prefix or name}/LATEST"


def training_key(name: str, spec: RecommenderSpec) -> str:
    return f"{spec.snapshots.prefix or name}/{TRAINING_NAME}"


def parse_latest(raw: bytes) -> SnapshotRead:
    """The content of ``LATEST`` as a version, refusing anything that is not a version id."""
    text = raw.decode("utf-8", errors="replace").strip()
    if not text:
        return SnapshotRead()
    if not _VERSION.match(text):
        return SnapshotRead(error=f"LATEST does not hold a version id: {text[:64]!r}")
    return SnapshotRead(version=text)


def open_snapshot_store(
    name: str, spec: RecommenderSpec, access_key_id: str, secret_access_key: str
) -> S3Store:
    """The resource's store through the adapters' S3 client, with the Secret's credentials and
    short timeouts and one attempt: a status refresh must never hang on an absent store."""
    snapshots = spec.snapshots
    client = make_client(
        snapshots.s3_endpoint,
        snapshots.region or "us-east-1",
        access_key_id=access_key_id,
        secret_access_key=secret_access_key,
        connect_timeout=CONNECT_TIMEOUT_SECONDS,
        read_timeout=READ_TIMEOUT_SECONDS,
        max_attempts=1,
    )
    return S3Store(snapshots.bucket, snapshots.prefix or name, client=client)


def read_latest(
    name: str, spec: RecommenderSpec, access_key_id: str, secret_access_key: str
) -> SnapshotRead:
    """Fetch ``LATEST``; a missing object is "no snapshot yet", any failure an error message."""
    where = f"s3://{spec.snapshots.bucket}/{latest_key(name, spec)}"
    try:
        store = open_snapshot_store(name, spec, access_key_id, secret_access_key)
        raw = store.latest_bytes(1024)
    except StoreUnavailable as exc:
        return SnapshotRead(error=f"{where}: {exc.code or exc}")
    read = parse_latest(raw) if raw is not None else SnapshotRead()
    try:
        report = store.training_status(8192)
    except StoreUnavailable:  # the report is extra: LATEST was read fine
        report = None
    return replace(read, training=parse_training(report))


def parse_training(raw: bytes | None) -> TrainingStatus | None:
    """The trainer's fit report; None when there is none or it does not parse (a report is
    never worth failing the status over)."""
    if raw is None:
        return None
    try:
        return TrainingStatus.from_bytes(raw)
    except ValueError:
        return None
