"""The streamrec image, built by `make image`, with every command run as the operator's pods run it.

Each container runs as uid 10001 with a read-only root filesystem, a tmpfs on /tmp, every
capability dropped and the host network (`tests.infra.containers.POD_SECURITY`), against the
session's real Kafka, MinIO and kube-apiserver on 127.0.0.1. The trainer test is the regression
test for the first-fit crash (`libgomp.so.1: cannot open shared object file`) that no test outside
a container could see.
"""

from __future__ import annotations

import json
import math
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Producer
from tests.infra.containers import (
    POD_SECURITY,
    SESSION_LABEL,
    Container,
    Podman,
    Registry,
    wait_http,
)
from tests.infra.kafka import KafkaBroker
from tests.infra.kube import KubeCluster
from tests.infra.minio import S3Bucket
from tests.infra.process import REPO, free_port
from tests.support.serving import publish_snapshot
from tests.support.trainerproc import wait_for

from streamrec.adapters.s3store import S3Store
from streamrec.adapters.snapshotfiles import read_manifest
from streamrec.adapters.stores import LocalStore


def run_once(podman: Podman, image: str, *args: str, entrypoint: str | None = None,
             timeout: float = 300) -> tuple[int, str, str]:
    """Run one command of the image to completion, as a pod would: (exit code, stdout, stderr)."""
    argv = ["run", "--rm", "--label", SESSION_LABEL, *POD_SECURITY]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    proc = podman(*argv, image, *args, timeout=timeout, check=False)
    return proc.returncode, proc.stdout, proc.stderr


def get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as r:
        return dict(json.loads(r.read()))


def test_every_streamrec_module_imports_inside_the_image(podman: Podman, image: str) -> None:
    code, out, err = run_once(podman, image, "-c", (
        "import importlib, pkgutil, streamrec\n"
        "names = [m.name for m in pkgutil.walk_packages(streamrec.__path__, 'streamrec.')]\n"
        "for name in names: importlib.import_module(name)\n"
        "print(len(names))"), entrypoint="python")
    assert code == 0, err
    assert int(out.split()[-1]) >= 60  # every module of services/streamrec, not a subset


def test_every_shared_library_that_the_image_loads_resolves(podman: Podman, image: str) -> None:
    code, out, err = run_once(podman, image, "-c",
                              "find /opt/venv /opt/streamrec -type f -name '*.so*'"
                              " -not -path '*.libs/*' -print0 | xargs -0 ldd", entrypoint="sh")
    assert code == 0, err
    assert "not found" not in out, [line for line in out.splitlines() if "not found" in line]
    assert "libgomp.so.1 =>" in out  # implicit's OpenMP runtime, the library that was missing


def test_a_real_fit_fold_in_and_top_n_run_inside_the_image(podman: Podman, image: str) -> None:
    # `streamrec evaluate` fits implicit ALS (OpenMP), folds users in and ranks top-N lists.
    code, out, err = run_once(
        podman, image, "-c",
        "streamrec evaluate --dataset synthetic --events 3000 --retrain-every 1000 --window 3000"
        " --factors 8 --iterations 3 --no-plots --out /tmp/q >/dev/null"
        " && cat /tmp/q/quality.json", entrypoint="sh")
    assert code == 0, err
    strategies = json.loads(out)["result"]["strategies"]
    by_kind = {s["kind"]: s for s in strategies}
    assert by_kind["fold-in"]["learner"]["fits"] >= 2
    assert all(math.isfinite(s["warm"]["recall"]) for s in strategies)
    assert by_kind["fold-in"]["warm"]["recall"] > 0


def test_serve_in_the_image_answers_readyz_a_personalised_list_and_folds_in_an_event(
    podman: Podman, image: str, kafka: KafkaBroker, tmp_path: Path
) -> None:
    store = LocalStore(tmp_path / "store")
    version = publish_snapshot(store, tmp_path / "work", 1)
    topic = f"img-serve-{free_port()}"
    kafka.create_topic(topic, 1)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    serve = Container(podman, image, [
        "serve", "--store", "/snapshots", "--bind", f"127.0.0.1:{port}", "--workers", "1",
        "--threads", "2", "--bootstrap-servers", kafka.bootstrap, "--topic", topic,
    ], volumes=[f"{tmp_path / 'store'}:/snapshots:ro"])
    try:
        serve.start()
        wait_http(base + "/readyz", 120, serve)
        known = get_json(base + "/users/u1/recommendations?n=5")
        assert known["model_version"] == version and known["fallback"] is None
        assert len(known["items"]) == 5  # type: ignore[arg-type]
        # A brand-new user's first event, through the real broker, is folded in by the worker.
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        producer.produce(topic, key=b"newcomer", value=b"newcomer:i3")
        producer.flush(10)
        fresh = wait_for(lambda: (lambda r: r if r["fallback"] is None else None)(
            get_json(base + "/users/newcomer/recommendations?n=5")), 30, "the fold-in")
        assert fresh["fresh_events"] == 1
        assert "i3" not in [i["item"] for i in fresh["items"]]  # seen items are excluded
    finally:
        serve.remove()


def test_trainer_in_the_image_fits_and_publishes_a_snapshot_to_minio(
    podman: Podman, image: str, kafka: KafkaBroker, s3: S3Bucket, tmp_path: Path
) -> None:
    topic = f"img-train-{free_port()}"
    kafka.create_topic(topic, 2)
    producer = Producer({"bootstrap.servers": kafka.bootstrap})
    events = [(f"u{u}", f"i{(u * 7 + k) % 50}") for u in range(60) for k in range(10)]
    for user, item in events:
        producer.produce(topic, key=user.encode(),
                         value=json.dumps({"user": user, "item": item, "weight": 2}).encode())
    producer.flush(10)
    metrics_port = free_port()
    trainer = Container(podman, image, [
        "trainer", "--bootstrap-servers", kafka.bootstrap, "--topic", topic,
        "--group", f"g-{topic}", "--store", f"s3://{s3.bucket}", "--from-beginning",
        "--metrics-port", str(metrics_port), "--window-size", "10000", "--retrain-every", "500",
        "--retrain-interval", "2", "--factors", "8", "--iterations", "3",
    ], env=s3.env())
    try:
        trainer.start()
        wait_http(f"http://127.0.0.1:{metrics_port}/healthz", 60, trainer)
        store = S3Store(s3.bucket, client=s3.client())
        latest = wait_for(store.latest, 180, "the trainer's first snapshot in MinIO")
        manifest = read_manifest(store.fetch(latest, tmp_path / "fetched"))
        assert manifest.sizes["window"] == len(events)
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as r:
            assert b"streamrec_trainer_retrains_total" in r.read()
        assert "libgomp" not in trainer.logs()
    finally:
        trainer.remove()


def test_operator_in_the_image_answers_its_liveness_endpoint(
    podman: Podman, image: str, kube: KubeCluster, tmp_path: Path
) -> None:
    kube.kubectl("apply", "-f", str(REPO / "k8s" / "crd.yaml"))
    namespace = kube.namespace()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(Path(kube.kubeconfig).read_text())
    kubeconfig.chmod(0o644)  # readable by uid 10001, as a mounted Secret would be
    port = free_port()
    operator = Container(podman, image, [
        "operator", "--namespace", namespace, "--liveness-port", str(port),
        "--log-format", "plain",
    ], env={"KUBECONFIG": "/kube/config"}, volumes=[f"{kubeconfig}:/kube/config:ro"])
    try:
        operator.start()
        wait_http(f"http://127.0.0.1:{port}/healthz", 120, operator)
    finally:
        operator.remove()


@pytest.mark.parametrize(("args", "names"), [
    (["trainer", "--store", "s3://"], "store"),
    (["serve", "--workers", "zero"], "workers"),
    (["trainer", "--no-such-flag"], "--no-such-flag"),
    (["operator"], "--namespace"),
    (["serve", "--bind", "nowhere"], "bind"),
    # A local store on the read-only root: refused at start, not at the first publish.
    (["trainer", "--store", "/snapshots", "--bootstrap-servers", "127.0.0.1:1"],
     "invalid store: cannot write to /snapshots: Read-only file system"),
])
def test_bad_input_inside_the_image_exits_2_naming_it_without_a_traceback(
    podman: Podman, image: str, args: list[str], names: str
) -> None:
    code, out, err = run_once(podman, image, *args, timeout=120)
    assert code == 2, (out, err)
    assert names in err
    assert "Traceback" not in err + out


def test_the_image_is_pushed_to_the_local_registry(registry: Registry, pushed_image: str) -> None:
    assert pushed_image.startswith(registry.address + "/streamrec:")
    tag = pushed_image.rsplit(":", 1)[1]
    manifest = registry.manifest("streamrec", tag)
    layers = manifest["layers"]
    assert isinstance(layers, list) and len(layers) >= 3
    for layer in layers:  # every blob the manifest names is really there
        req = urllib.request.Request(
            f"http://{registry.address}/v2/streamrec/blobs/{layer['digest']}", method="HEAD")
        with urllib.request.urlopen(req, timeout=10) as r:
            assert int(r.headers["Content-Length"]) == layer["size"]
