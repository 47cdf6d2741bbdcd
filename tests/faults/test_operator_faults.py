"""The operator under faults, against the real control plane (the ``kube`` fixture).

The operator runs as the real ``streamrec operator`` subprocess, so a fault is what production
would see: SIGKILL mid-reconcile and a restart, several clients editing one resource at once,
and Secrets that are missing, incomplete or not text. Convergence times are printed (``-s``)
for docs/reliability.md, never asserted.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from tests.integration.test_operator import (
    CHILDREN,
    Cluster,
    example_cr,
    fingerprint,
    s3_secret,
    settled,
    wait_for,
)
from tests.integration.test_operator import (
    crd as crd,  # noqa: F401  (the module-scoped fixture that installs the CRD)
)

from streamrec.operator.builders import config_hash

pytestmark = pytest.mark.timeout(900)

MANAGED = "app.kubernetes.io/managed-by=streamrec-operator"


class OperatorProcess:
    """``streamrec operator`` as a child process, appending to one log across restarts."""

    def __init__(self, kubeconfig: str, namespace: str, log: Path) -> None:
        self.kubeconfig, self.namespace, self.log = kubeconfig, namespace, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self, wait: bool = True) -> None:
        """Start the process; with ``wait``, return once its liveness endpoint answers (kopf
        installs its signal handlers before that, so a SIGTERM then stops it cleanly)."""
        from tests.infra.process import free_port

        self.port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": self.kubeconfig,
            "STREAMREC_OPERATOR_STATUS_INTERVAL": "1",
        }
        argv = [sys.executable, "-m", "streamrec.cli", "operator", "--namespace", self.namespace]
        argv += ["--liveness-port", str(self.port), "--log-format", "plain", "--verbose"]
        with self.log.open("a") as out:
            out.write(f"===== start {time.time():.3f}\n")
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        if wait:
            wait_for("the operator's liveness endpoint", self.healthy, 60, self.last_run)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.port}/healthz"
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def last_run(self) -> str:
        return self.text().rsplit("===== start", 1)[-1]


@contextlib.contextmanager
def running_operator(kube: Any, namespace: str, log: Path) -> Iterator[OperatorProcess]:
    op = OperatorProcess(kube.kubeconfig, namespace, log)
    op.start()
    try:
        yield op
    finally:
        if op.alive:
            op.stop()


def owned_children(cluster: Cluster) -> list[dict[str, Any]]:
    """Every object in the namespace that carries the operator's managed-by label."""
    apps = client.AppsV1Api(cluster.api)
    autoscaling = client.AutoscalingV2Api(cluster.api)
    networking = client.NetworkingV1Api(cluster.api)
    listers = {
        "ConfigMap": cluster.core.list_namespaced_config_map,
        "Service": cluster.core.list_namespaced_service,
        "Deployment": apps.list_namespaced_deployment,
        "HorizontalPodAutoscaler": autoscaling.list_namespaced_horizontal_pod_autoscaler,
        "Ingress": networking.list_namespaced_ingress,
    }
    found: list[dict[str, Any]] = []
    for kind, lister in listers.items():
        for obj in lister(cluster.ns, label_selector=MANAGED).items:
            found.append({**cluster.api.sanitize_for_serialization(obj), "kind": kind})
    return found


def child_key(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


# Kill -9 mid-reconcile


def assert_no_rollout(cluster: Cluster, names: list[str]) -> None:
    """One ReplicaSet per Deployment, whose pod template is the Deployment's current one."""
    apps = client.AppsV1Api(cluster.api)
    deployments = {
        d.metadata.name: d
        for d in apps.list_namespaced_deployment(cluster.ns, label_selector=MANAGED).items
    }
    assert sorted(deployments) == sorted(f"{n}-{d}" for n in names for d in ("serving", "trainer"))
    replica_sets = apps.list_namespaced_replica_set(cluster.ns).items
    owners = sorted(rs.metadata.owner_references[0].name for rs in replica_sets)
    assert owners == sorted(deployments), owners
    for rs in replica_sets:
        dep = deployments[rs.metadata.owner_references[0].name]
        template = cluster.api.sanitize_for_serialization(dep.spec.template)
        rs_template = cluster.api.sanitize_for_serialization(rs.spec.template)
        rs_template["metadata"]["labels"].pop("pod-template-hash", None)
        assert rs_template == template, dep.metadata.name


def convergence_report(cluster: Cluster, names: list[str], log: str) -> str:
    """What a timed-out convergence saw: each resource's generation, observedGeneration and
    Ready condition, its Deployments' replica counts and conditions, and the log's tail."""
    apps = client.AppsV1Api(cluster.api)
    lines = []
    for n in names:
        cr = cluster.get("RecommenderService", n) or {}
        status = cr.get("status") or {}
        lines.append(f"{n}: generation {cr.get('metadata', {}).get('generation')}, "
                     f"observedGeneration {status.get('observedGeneration')}, "
                     f"Ready {cluster.condition(n, 'Ready')}")
        for d in ("trainer", "serving"):
            try:
                dep = apps.read_namespaced_deployment(f"{n}-{d}", cluster.ns)
            except client.ApiException as exc:
                lines.append(f"  {d}: {exc.status} {exc.reason}")
                continue
            st = dep.status
            conds = [(c.type, c.status, c.reason) for c in st.conditions or []]
            lines.append(f"  {d}: spec.replicas {dep.spec.replicas}, generation "
                         f"{dep.metadata.generation}/{st.observed_generation}, replicas "
                         f"{st.replicas} ready {st.ready_replicas} updated {st.updated_replicas}"
                         f", {conds}")
    pods = cluster.core.list_namespaced_pod(cluster.ns).items
    lines.append("pods: " + ", ".join(f"{p.metadata.name} {p.status.phase}" for p in pods))
    kept = [line for line in log.splitlines()
            if "InsecureRequestWarning" not in line and "warnings.warn(" not in line]
    return "\n".join(lines) + "\n--- operator log tail ---\n" + "\n".join(kept[-40:])


# Was quarantined to `make test-slow` (failed 2 of 4 full runs: one resource not Ready within
# 240 s of the restart). The cause, found in a full run's kube-controller-manager.log ("all Nodes
# are not-Ready"): under load kwok renewed the fake node's lease later than the 50 s grace
# period, the node lifecycle controller set every pod Ready=False, and kwok never set them Ready
# again (tests/infra/kube.py now gives the fake node an hour). Two operator defects found on the
# way made it likelier: every start spent ~75 s retrying a namespace listing the RBAC forbids
# (kopf's scanning, off with --namespace), and the status came from a kopf timer (now an
# operator task, operator/refresher.py). The operator now starts at once, so the kill moment is
# taken from its log (above) rather than from listing the children. A timeout prints
# convergence_report.
def test_sigkill_mid_reconcile_then_restart_converges_without_duplicates_or_needless_writes(
    kube: Any,
    crd: None,
    tmp_path: Path,  # noqa: F811
) -> None:
    cluster = Cluster(kube.api_client(), kube.namespace())
    s3_secret(cluster)
    names = [f"rec{i}" for i in range(4)]
    expected = sorted(f"{kind}/{pattern.format(n)}" for n in names for kind, pattern in CHILDREN)
    rng = random.Random(7)
    op = OperatorProcess(kube.kubeconfig, cluster.ns, tmp_path / "operator.log")
    uids = {n: cluster.create_cr(example_cr(cluster.ns, n))["metadata"]["uid"] for n in names}

    # Three kills, each while the operator is writing: as soon as a run logs its first
    # "created <kind> <name>", plus a random extra moment of up to 50 ms. The log is polled every
    # 5 ms: with an operator that starts at once, one run writes all 24 children in a fraction of
    # a second, and a slower poll (listing the children) saw them all before it could kill.
    seen_at_kill: list[int] = []
    for _ in range(3):
        op.start(wait=False)
        deadline = time.monotonic() + 90
        while "\ncreated " not in op.last_run():
            if time.monotonic() > deadline or not op.alive:
                pytest.fail(f"the operator created no child within 90 s:\n{op.last_run()[-4000:]}")
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.05))
        op.kill()
        seen_at_kill.append(len(owned_children(cluster)))
        if seen_at_kill[-1] == len(expected):
            break
    print(f"\nchildren present at each SIGKILL (of {len(expected)}): {seen_at_kill}")
    assert any(n < len(expected) for n in seen_at_kill), seen_at_kill  # a kill was mid-way

    started = time.monotonic()
    op.start()
    try:
        wait_for(
            "every resource reconciled and Ready after the restart",
            lambda: (
                op.last_run().count("children reconciled") >= len(names)
                and all(settled(cluster, n) for n in names)
            ),
            240,
            lambda: convergence_report(cluster, names, op.last_run()),
        )
        print(f"converged {time.monotonic() - started:.1f}s after the restart (busy machine)")

        # No duplicates: exactly the expected children, each owned once by its own resource.
        found = owned_children(cluster)
        assert sorted(child_key(obj) for obj in found) == expected
        for obj in found:
            (owner,) = obj["metadata"]["ownerReferences"]
            assert owner["uid"] == uids[obj["metadata"]["labels"]["app.kubernetes.io/instance"]]
        # No rollout: every Deployment still has the pod template it was created with, so it
        # has exactly one ReplicaSet. (spec.replicas is the HPA's to change and not a rollout.)
        assert_no_rollout(cluster, names)
        before = {n: fingerprint(cluster, n) for n in names}
    finally:
        assert op.stop() == 0, op.last_run()

    # One more clean restart: resume finds everything up to date and writes nothing.
    op.start()
    try:
        wait_for(
            "resume to finish",
            lambda: op.last_run().count("children reconciled") >= len(names),
            60,
            op.last_run,
        )
        time.sleep(2)  # a write would land right after the log line
        assert op.last_run().count("0 created, 0 patched, 7 unchanged, 0 deleted") == len(names)
        assert {n: fingerprint(cluster, n) for n in names} == before
    finally:
        assert op.stop() == 0, op.last_run()
        for n in names:  # with the operator gone the finalizer would hold the resource
            cluster.patch_cr(n, {"metadata": {"finalizers": None}})


# Concurrent edits


def test_concurrent_edits_of_one_resource_converge_to_the_final_spec(
    kube: Any,
    crd: None,
    tmp_path: Path,  # noqa: F811
) -> None:
    cluster = Cluster(kube.api_client(), kube.namespace())
    s3_secret(cluster)
    cr = example_cr(cluster.ns, "busy")
    cr["spec"]["serving"]["autoscaling"]["enabled"] = False  # so replicas reach the Deployment
    cluster.create_cr(cr)
    edits: dict[str, list[Any]] = {
        "model.factors": [8, 16, 24, 32, 40],
        "serving.replicas": [1, 4, 2, 5, 3],
        "training.windowSize": [1000, 5000, 2000, 4000, 3000],
        "serving.workers": [1, 3, 2, 4, 5],
        "kafka.topic": ["t1", "t2", "t3", "t4", "events"],
    }

    def editor(path: str, values: list[Any], seed: int) -> None:
        api = Cluster(kube.api_client(), cluster.ns)  # one client per thread
        rng = random.Random(seed)
        *parents, leaf = path.split(".")
        for value in values:
            patch: dict[str, Any] = {leaf: value}
            for key in reversed(parents):
                patch = {key: patch}
            api.patch_cr("busy", {"spec": patch})
            time.sleep(rng.uniform(0, 0.3))

    with running_operator(kube, cluster.ns, tmp_path / "operator.log") as op:
        wait_for("the first reconcile", lambda: settled(cluster, "busy"), 180, op.last_run)
        threads = [
            threading.Thread(target=editor, args=(path, values, seed))
            for seed, (path, values) in enumerate(edits.items())
        ]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        final = cluster.get("RecommenderService", "busy")
        assert final is not None
        spec = final["spec"]
        assert (spec["model"]["factors"], spec["serving"]["replicas"]) == (40, 3)
        assert (spec["training"]["windowSize"], spec["serving"]["workers"]) == (3000, 5)
        assert spec["kafka"]["topic"] == "events"

        def converged() -> bool:
            config = (cluster.get("ConfigMap", "busy-config") or {}).get("data") or {}
            serving = cluster.get("Deployment", "busy-serving") or {}
            return (
                settled(cluster, "busy")
                and config.get("STREAMREC_FACTORS") == "40"
                and config.get("STREAMREC_WINDOW_SIZE") == "3000"
                and config.get("STREAMREC_WORKERS") == "5"
                and config.get("STREAMREC_TOPIC") == "events"
                and serving.get("spec", {}).get("replicas") == 3
            )

        wait_for("the children to carry the final spec", converged, 180, op.last_run)
        print(f"\nconverged {time.monotonic() - started:.1f}s after the edits began (busy machine)")
        config = (cluster.get("ConfigMap", "busy-config") or {})["data"]
        for d in ("trainer", "serving"):
            dep = cluster.get("Deployment", f"busy-{d}") or {}
            annotations = dep["spec"]["template"]["metadata"]["annotations"]
            assert annotations["streamrec.io/config-hash"] == config_hash(config), d
        assert op.alive
        cluster.delete_cr("busy")
        wait_for("the CR to be gone", lambda: cluster.get("RecommenderService", "busy") is None)


# Bad Secret references


def secrets_condition(cluster: Cluster, name: str) -> dict[str, Any] | None:
    cond = cluster.condition(name, "SecretsFound")
    return cond if cond and cond["status"] == "False" else None


def test_bad_secret_references_are_reported_in_the_status_and_the_operator_carries_on(
    kube: Any,
    crd: None,
    tmp_path: Path,  # noqa: F811
) -> None:
    cluster = Cluster(kube.api_client(), kube.namespace())
    # SASL credentials without the password key; the S3 Secret does not exist at all.
    cluster.core.create_namespaced_secret(
        cluster.ns, {"metadata": {"name": "kafka-user"}, "stringData": {"username": "alice"}}
    )
    bad = example_cr(cluster.ns, "badref")
    bad["spec"]["kafka"].update(securityProtocol="SASL_SSL", credentialsSecret="kafka-user")
    bad["spec"]["snapshots"]["credentialsSecret"] = "no-such-secret"
    # A Secret whose values are not text: the store read must fail softly, not crash.
    cluster.core.create_namespaced_secret(
        cluster.ns,
        {
            "metadata": {"name": "binary-store"},
            "data": {
                "AWS_ACCESS_KEY_ID": base64.b64encode(b"\xff\xfe\x00id").decode(),
                "AWS_SECRET_ACCESS_KEY": base64.b64encode(b"\xc3\x28").decode(),
            },
        },
    )
    binary = example_cr(cluster.ns, "binary")
    binary["spec"]["snapshots"]["credentialsSecret"] = "binary-store"

    with running_operator(kube, cluster.ns, tmp_path / "operator.log") as op:
        cluster.create_cr(bad)
        cluster.create_cr(binary)
        cond = wait_for("SecretsFound=False", lambda: secrets_condition(cluster, "badref"))
        message = cond["message"]
        assert cond["reason"] == "SecretNotFound"
        assert "'no-such-secret' (spec.snapshots.credentialsSecret) not found" in message
        assert "'kafka-user' (spec.kafka.credentialsSecret) has no key 'password'" in message
        status = (cluster.get("RecommenderService", "badref") or {})["status"]
        assert status["phase"] == "Degraded"
        assert (cluster.condition("badref", "Ready") or {}).get("status") == "False"

        published = wait_for(
            "SnapshotPublished on the binary Secret",
            lambda: (c := cluster.condition("binary", "SnapshotPublished")) and c,
            explain=op.last_run,
        )
        assert published["status"] == "False" and published["reason"] == "StoreUnreadable"
        assert "'binary-store'" in published["message"] and "UTF-8" in published["message"]

        # The operator is alive and still does its job for everyone else.
        assert op.alive and op.healthy()
        s3_secret(cluster)
        cluster.create_cr(example_cr(cluster.ns, "good"))
        wait_for("the good resource Ready", lambda: settled(cluster, "good"), 180, op.last_run)

        # Fixing the Secrets clears the condition without any change to the resource.
        cluster.core.create_namespaced_secret(
            cluster.ns,
            {
                "metadata": {"name": "no-such-secret"},
                "stringData": {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b"},
            },
        )
        cluster.core.patch_namespaced_secret(
            "kafka-user", cluster.ns, {"stringData": {"password": "pw"}}
        )
        wait_for(
            "SecretsFound=True",
            lambda: (cluster.condition("badref", "SecretsFound") or {}).get("status") == "True",
            explain=lambda: cluster.condition("badref", "SecretsFound"),
        )
        assert op.alive
        for n in ("badref", "binary", "good"):
            cluster.delete_cr(n)
        wait_for(
            "the CRs to be gone",
            lambda: all(
                cluster.get("RecommenderService", n) is None for n in ("badref", "binary", "good")
            ),
        )
    assert op.proc is not None and op.proc.returncode == 0, op.text()
    assert "Traceback" not in op.text()
