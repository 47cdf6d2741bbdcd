"""Session fixtures that start real infrastructure on demand, on free ports on 127.0.0.1.

`kafka`, `minio`/`s3`, `kube`, `registry` and the container `image` each start their component
the first time a test asks for it and stop it at the end of the session. A component that
cannot be provisioned or started raises `InfraError`, so the test errors with the component's
name and reason; nothing is ever skipped. When a test fails, the tail of each component log it
used is attached to the report.

Every process the session starts inherits its marker (`SESSION_ENV`); at the session's end any
that survived its fixtures is ended and named, and the session fails (`pytest_sessionfinish`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.infra.containers import Podman, Registry, build_image
from tests.infra.ingress import TraefikIngress
from tests.infra.kafka import KafkaBroker
from tests.infra.kube import KubeCluster
from tests.infra.minio import MinioServer, S3Bucket
from tests.infra.node import RealCluster, node_image
from tests.infra.nodeconf import GATEWAY
from tests.infra.process import SESSION_ENV, end_survivors

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
# Set before any fixture starts anything, so every descendant carries it (a nested pytest, e.g.
# a test that runs pytest, gets its own: its survivors are its own session's to report).
os.environ[SESSION_ENV] = uuid.uuid4().hex

# Components started in this session, by fixture name, for log tails on failure.
_STARTED: dict[str, Any] = {}


C = TypeVar("C", KafkaBroker, MinioServer, Registry, KubeCluster, RealCluster, TraefikIngress)


def _running(name: str, component: C) -> Iterator[C]:
    """Start ``component`` for the session, record it for log tails, stop it at the end (also
    after a start that failed half-way: what did start is stopped)."""
    _STARTED[name] = component
    try:
        component.start()
        yield component
    finally:
        component.stop()


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A real KRaft Kafka broker: `.bootstrap`, `.admin`, `.create_topic(name, partitions)`."""
    yield from _running("kafka", KafkaBroker(tmp_path_factory.mktemp("kafka")))


@pytest.fixture(scope="session")
def minio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MinioServer]:
    """The shared MinIO server (tests that stop and start S3 use this one directly)."""
    yield from _running("minio", MinioServer(tmp_path_factory.mktemp("minio")))


@pytest.fixture
def s3(minio: MinioServer) -> Iterator[S3Bucket]:
    """A fresh, empty bucket on the real MinIO server, removed after the test."""
    if not minio.process.running:  # a fault test may have left it stopped
        minio.start()
    bucket = f"t-{uuid.uuid4().hex[:16]}"
    client = minio.client()
    client.create_bucket(Bucket=bucket)
    yield S3Bucket(minio, bucket)
    if minio.process.running:
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def kube(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeCluster]:
    """A real control plane: `.kubeconfig`, `.api_client()`, `.kubectl(...)`, `.namespace()`."""
    yield from _running("kube", KubeCluster(tmp_path_factory.mktemp("kube")))


@pytest.fixture(scope="session")
def podman() -> Iterator[Podman]:
    """The project's podman (scripts/provision-containers.sh). At the session's end, every
    container a test started must be gone: leftovers are removed and the session errors."""
    runner = Podman()
    yield runner
    leftovers = runner.leftovers()
    for name in leftovers:
        runner("rm", "-f", "-t", "0", name, check=False)
    assert not leftovers, f"containers outlived their tests: {leftovers}"


@pytest.fixture(scope="session")
def image(podman: Podman) -> str:
    """The streamrec image built by scripts/image.sh (`make image`; cached layers)."""
    return build_image()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """`distribution`'s registry server on 127.0.0.1 (scripts/provision-registry.sh)."""
    yield from _running("registry", Registry(tmp_path_factory.mktemp("registry")))


@pytest.fixture(scope="session")
def pushed_image(image: str, registry: Registry) -> str:
    """The image pushed to the local registry by `scripts/image.sh --push`: its reference."""
    return build_image("--push", registry.address)


@pytest.fixture(scope="session")
def real_cluster(
    tmp_path_factory: pytest.TempPathFactory, registry: Registry, pushed_image: str
) -> Iterator[RealCluster]:
    """A real node (tests/infra/node.py): containerd, kubelet, kube-proxy, CNI bridge, CoreDNS
    and the control plane; `streamrec:<version>` pulls from the session's registry. Its
    teardown fails the session if anything it did to the host is left."""
    node_image(registry, pushed_image)
    yield from _running(
        "real_cluster", RealCluster(tmp_path_factory.mktemp("node"), registry=registry.address)
    )


@pytest.fixture(scope="session")
def node_kafka(tmp_path_factory: pytest.TempPathFactory,
               real_cluster: RealCluster) -> Iterator[KafkaBroker]:
    """A Kafka broker on the host that the node's pods reach at `.node_bootstrap` (the bridge
    address), as a managed Kafka outside the cluster; `.bootstrap` is 127.0.0.1 as usual."""
    yield from _running("node_kafka",
                        KafkaBroker(tmp_path_factory.mktemp("node-kafka"), node_host=GATEWAY))


@pytest.fixture(scope="session")
def node_minio(tmp_path_factory: pytest.TempPathFactory,
               real_cluster: RealCluster) -> Iterator[MinioServer]:
    """MinIO on the node's bridge address: pods and tests reach it at `.endpoint_url`."""
    yield from _running("node_minio",
                        MinioServer(tmp_path_factory.mktemp("node-minio"), host=GATEWAY))


@pytest.fixture(scope="session")
def node_ingress(tmp_path_factory: pytest.TempPathFactory,
                 real_cluster: RealCluster) -> Iterator[TraefikIngress]:
    """Traefik v3 on the host (tests/infra/ingress.py), serving the node's Ingresses of class
    `traefik` at `.url` (127.0.0.1, a free port)."""
    yield from _running("node_ingress",
                        TraefikIngress(tmp_path_factory.mktemp("traefik"), real_cluster))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        fixtures = getattr(item, "fixturenames", ())
        for name, component in _STARTED.items():
            if name in fixtures or (name == "minio" and "s3" in fixtures):
                report.sections.append((f"{name} log tail", component.log_tail()))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """No process of the session may outlive it: end survivors by pid, name them, fail."""
    survivors = end_survivors(os.environ[SESSION_ENV])
    if survivors:
        lines = "\n".join(f"  pid {pid}: {cmd[:200]}" for pid, cmd in sorted(survivors.items()))
        session.config.get_terminal_writer().line(
            f"processes of this test session outlived their fixtures (now ended):\n{lines}",
            red=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d
