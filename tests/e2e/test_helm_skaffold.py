"""`helm install` and `skaffold` on the real node, as docs/kubernetes.md walks a user through them.

The steps build on each other and run in file order on the session's real node (tests/infra/
node.py), in the namespace `streamrec`:

1. `helm install streamrec helm/streamrec` with the example RecommenderService pointed (through
   values) at the fixture Kafka and MinIO on the host: the chart's operator pod turns Ready and
   the example serves personalised recommendations through its Service and through its Ingress
   (Traefik, `node_ingress`), where writes need the generated token;
2. `helm upgrade` with two changed values rolls exactly what they concern: the operator (its log
   format) rolls, serving scales from 2 to 3 without a rollout, the trainer is untouched;
3. `helm uninstall` removes every object of the release and of the example; the CRD stays
   (helm never deletes crds/; docs/kubernetes.md);
4. `skaffold run -p ci` builds the image with scripts/image.sh (skaffold's custom builder), pushes
   it to the session's registry and deploys the chart: the example serves the new tag;
5. one `skaffold dev -p ci` iteration in a copy of the repository: a changed source file gives a
   new image tag, rolled pods that report the change over HTTP, then Ctrl-C cleans up.

A topic and a bucket of their own keep this module's events and snapshots apart from the
kubectl-apply test's (tests/e2e/test_real_cluster.py), which shares the node, Kafka and MinIO.
Figures go to stdout as `FIGURES helm-skaffold ...` lines (docs/kubernetes.md).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from streamrec.data import movielens
from tests.infra.containers import Registry
from tests.infra.ingress import TraefikIngress
from tests.infra.kafka import KafkaBroker
from tests.infra.minio import MinioServer
from tests.infra.node import RealCluster
from tests.infra.process import REPO, ManagedProcess, provision
from tests.support.kubepods import ClusterClients, ready_pods, selector
from tests.support.trainerproc import wait_for

NS, RELEASE, CR = "streamrec", "streamrec", "recommender"
TOPIC, BUCKET = "helm-interactions", "helm-streamrec"
SERVING = {"app.kubernetes.io/instance": CR, "app.kubernetes.io/component": "serving"}
TRAINER = {"app.kubernetes.io/instance": CR, "app.kubernetes.io/component": "trainer"}
OPERATOR = {"app.kubernetes.io/instance": RELEASE, "app.kubernetes.io/name": "streamrec"}
CRD = "recommenderservices.streamrec.io"
HOST = "recs-helm.example.test"  # the example's Ingress host, set through values
POD_READY_S = 600  # a first pull of the image on a busy 2-core machine included
# A fresh node pulls the image, the trainer fits MovieLens-100K, serving loads the snapshot.
pytestmark = pytest.mark.timeout(1800)


@dataclass
class Node(ClusterClients):
    """The real node plus the tools a user drives it with: kubectl, helm and skaffold."""

    cluster: RealCluster
    kafka: KafkaBroker
    minio: MinioServer
    registry: Registry
    workdir: Path
    ingress: TraefikIngress
    figures: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.helm_bin = provision("helm") / "helm"
        # skaffold's global config: no update check, no metrics, no survey (all need the internet)
        self.skaffold_config = self.workdir / "skaffold-global.yaml"
        self.skaffold_config.write_text(json.dumps({"global": {
            "update-check": False, "collect-metrics": False,
            "survey": {"disable-prompt": True}}}))

    @functools.cached_property
    def skaffold_bin(self) -> Path:
        return provision("skaffold") / "bin" / "skaffold"

    @property
    def env(self) -> dict[str, str]:
        """What a user's shell has: KUBECONFIG, kubectl and helm on PATH; helm's own state in
        the work dir; where the example finds Kafka and MinIO (skaffold.yaml, profile ci)."""
        return {
            **os.environ,
            "KUBECONFIG": self.cluster.kubeconfig,
            "PATH": os.pathsep.join([str(self.helm_bin.parent), str(self.cluster.bin),
                                     os.environ["PATH"]]),
            **{f"HELM_{k}_HOME": str(self.workdir / "helm" / k.lower())
               for k in ("CACHE", "CONFIG", "DATA")},
            "DEPLOY_KAFKA_BOOTSTRAP": self.kafka_in_cluster,
            "DEPLOY_TOPIC": TOPIC,
            "DEPLOY_S3_ENDPOINT": self.minio.endpoint_url,
            "DEPLOY_S3_BUCKET": BUCKET,
        }

    @property
    def kafka_in_cluster(self) -> str:
        assert self.kafka.node_bootstrap is not None
        return self.kafka.node_bootstrap

    def run(self, *argv: str, timeout: float = 600, cwd: Path = REPO) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, env=self.env, cwd=cwd,
                              timeout=timeout)
        assert proc.returncode == 0, (f"{' '.join(argv)} exited {proc.returncode}:\n"
                                      f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        return proc.stdout

    def helm(self, *args: str) -> str:
        return self.run(str(self.helm_bin), *args)

    def skaffold(self, *args: str, cwd: Path = REPO, timeout: float = 900) -> str:
        return self.run(str(self.skaffold_bin), *args, *self.skaffold_flags, cwd=cwd,
                        timeout=timeout)

    @property
    def skaffold_flags(self) -> list[str]:
        return ["-p", "ci", f"--default-repo={self.registry.address}",
                f"--config={self.skaffold_config}", f"--cache-file={self.workdir / 'cache'}",
                "--port-forward=off", "--interactive=false"]

    def ready_pods(self, labels: dict[str, str]) -> list[Any]:
        return ready_pods(self.core, NS, labels)

    def wait_ready(self, labels: dict[str, str], count: int, seconds: float = POD_READY_S,
                   image: str | None = None) -> list[Any]:
        """Exactly ``count`` Ready pods with ``labels`` (and none other, Ready or not), all
        running ``image`` when given."""

        def done() -> list[Any] | None:
            every = [p for p in self.core.list_namespaced_pod(
                NS, label_selector=selector(labels)).items]
            ready = self.ready_pods(labels)
            if len(every) != count or len(ready) != count:
                return None
            if image and any(p.spec.containers[0].image != image for p in ready):
                return None
            return ready

        return list(wait_for(done, seconds, f"{count} Ready pod(s) {labels} {image or ''}: "
                        f"{self.describe()}", every=1))

    def describe(self) -> str:
        return self.cluster.kubectl("get", "pods,deploy,recsvc", "-n", NS, "-o", "wide",
                                    check=False).stdout

    def service_url(self) -> str:
        return f"http://{self.core.read_namespaced_service(CR, NS).spec.cluster_ip}:80"

    def get(self, url: str | urllib.request.Request) -> Any:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.loads(r.read())

    def personalised(self) -> dict[str, Any] | None:
        """User 1's recommendations through the Service once they come from the model."""
        got = self.get(self.service_url() + "/users/1/recommendations?n=10")
        return got if got["fallback"] is None and len(got["items"]) == 10 else None

    def deployments(self) -> dict[str, dict[str, Any]]:
        """Per Deployment in the namespace: generation, replicas, a hash of the pod template
        (what a rollout changes) and the names of its ReplicaSets."""
        sets = self.apps.list_namespaced_replica_set(NS).items
        serialize = self.cluster.api_client().sanitize_for_serialization
        out = {}
        for d in self.apps.list_namespaced_deployment(NS).items:
            template = json.dumps(serialize(d.spec.template), sort_keys=True)
            out[d.metadata.name] = {
                "generation": d.metadata.generation,
                "replicas": d.spec.replicas,
                "template": hashlib.sha256(template.encode()).hexdigest()[:16],
                "replicasets": sorted(r.metadata.name for r in sets if any(
                    o.uid == d.metadata.uid for o in r.metadata.owner_references or [])),
            }
        return out

    def leftovers(self) -> list[str]:
        """Every namespaced object in the namespace that a user did not create, and the
        release's cluster-scoped RBAC."""
        kinds = ("deploy,rs,pods,svc,endpointslices,cm,secrets,sa,roles,rolebindings,hpa,"
                 "ingress,recsvc")
        names = self.kubectl("get", kinds, "-n", NS, "-o", "name").split()
        mine = {"secret/minio-credentials", "serviceaccount/default", "configmap/kube-root-ca.crt"}
        names = [n for n in names if n not in mine]
        for kind in ("clusterrole", "clusterrolebinding"):
            out = self.cluster.kubectl("get", kind, RELEASE, "-o", "name", check=False)
            names += out.stdout.split()
        return names


def _produce_movielens(kafka: KafkaBroker) -> int:
    ratings, _ = movielens.load()
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5,
                         "enable.idempotence": True, "acks": "all"})
    for r in ratings:
        producer.produce(TOPIC, key=str(r.user).encode(), value=json.dumps(r.as_json()).encode())
        producer.poll(0)
    assert producer.flush(60) == 0
    return len(ratings)


def _clear_namespace(cluster: RealCluster) -> None:
    """Remove what another module left in `streamrec` (resources first, while an operator that
    holds their finalizer still runs; then the namespace and k8s/'s cluster-scoped RBAC)."""
    cluster.kubectl("delete", "recsvc", "--all", "-n", NS, "--wait=true", "--timeout=120s",
                    check=False)
    cluster.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true",
                    "--timeout=180s", check=False)
    cluster.kubectl("delete", "-f", str(REPO / "k8s" / "rbac.yaml"), "--ignore-not-found",
                    check=False)


@pytest.fixture(scope="module")
def node(real_cluster: RealCluster, node_kafka: KafkaBroker, node_minio: MinioServer,
         registry: Registry, node_ingress: TraefikIngress,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    n = Node(real_cluster, node_kafka, node_minio, registry, tmp_path_factory.mktemp("helm"),
             node_ingress)
    _clear_namespace(real_cluster)
    node_kafka.create_topic(TOPIC, partitions=3)
    node_minio.client().create_bucket(Bucket=BUCKET)
    # The user's part (docs/kubernetes.md): the namespace and the store's credentials.
    n.kubectl("create", "namespace", NS)
    n.kubectl("create", "secret", "generic", "minio-credentials", "-n", NS,
              f"--from-literal=AWS_ACCESS_KEY_ID={node_minio.access_key}",
              f"--from-literal=AWS_SECRET_ACCESS_KEY={node_minio.secret_key}")
    try:
        yield n
    finally:
        # Whatever a failed step left: the release, then the namespace, so that the next
        # module finds the node as it found it.
        subprocess.run([str(n.helm_bin), "uninstall", RELEASE, "-n", NS, "--wait",
                        "--timeout=180s", "--ignore-not-found"], env=n.env, capture_output=True,
                       timeout=240)
        _clear_namespace(real_cluster)
        print("\nFIGURES helm-skaffold " + " ".join(f"{k}={v}" for k, v in n.figures.items()))


def test_helm_install_brings_the_operator_to_ready_and_the_example_serves(node: Node) -> None:
    n, t0 = node, time.monotonic()
    n.helm("install", RELEASE, str(REPO / "helm" / "streamrec"), "--namespace", NS,
           "--set", "example.enabled=true",
           "--set", f"example.kafka.bootstrapServers={n.kafka_in_cluster}",
           "--set", f"example.kafka.topic={TOPIC}",
           "--set", f"example.snapshots.endpoint={n.minio.endpoint_url}",
           "--set", f"example.snapshots.bucket={BUCKET}",
           "--set", "example.serving.ingress.enabled=true",
           "--set", "example.serving.ingress.className=traefik",
           "--set", f"example.serving.ingress.host={HOST}")
    (operator,) = n.wait_ready(OPERATOR, 1)
    n.figures["helm_install_to_operator_ready_s"] = round(time.monotonic() - t0, 1)
    # the chart's default image, streamrec:<appVersion>: docker.io/library, i.e. the registry
    app_version = yaml.safe_load((REPO / "helm" / "streamrec" / "Chart.yaml").read_text())[
        "appVersion"]
    assert operator.spec.containers[0].image == f"streamrec:{app_version}"
    (trainer,) = n.wait_ready(TRAINER, 1)
    # With no snapshot and no committed offsets a trainer starts at the end of the topic (only
    # new events; docs/trainer.md): send MovieLens once it has chosen that start.
    wait_for(lambda: "resumed from end" in n.kubectl("logs", "-n", NS, trainer.metadata.name),
             120, "the trainer to choose its start in the topic", every=1)
    n.figures["events"] = _produce_movielens(n.kafka)
    n.wait_ready(SERVING, 2)  # Ready (/readyz) only once a snapshot is loaded
    got = wait_for(n.personalised, 120, "personalised recommendations through the Service")
    n.figures["helm_install_to_first_recommendation_s"] = round(time.monotonic() - t0, 1)
    assert got["model_version"]
    other = n.get(n.service_url() + "/users/2/recommendations?n=10")
    assert [i["item"] for i in other["items"]] != [i["item"] for i in got["items"]]
    # the same through the chart example's Ingress, served by Traefik
    via = urllib.request.Request(n.ingress.url + "/users/2/recommendations?n=10",
                                 headers={"Host": HOST})
    through = wait_for(lambda: n.get(via), 60, "the example's Ingress to answer")
    n.figures["helm_install_to_first_recommendation_via_ingress_s"] = round(
        time.monotonic() - t0, 1)

    # The two serving pods agree once both serve the same snapshot: one published while the
    # events stream in reaches each pod within its 5 s reload interval, not at one instant.
    def agree() -> bool:
        a, b = n.get(via), n.get(n.service_url() + "/users/2/recommendations?n=10")
        return bool(a["items"]) and [i["item"] for i in a["items"]] == [
            i["item"] for i in b["items"]]

    assert through["items"] and wait_for(
        agree, 60, "the Ingress and the Service to give user 2 the same list")
    # writes through it need the token the operator generated (status.ingestTokenSecret)
    post = urllib.request.Request(n.ingress.url + "/interactions", method="POST",
                                  data=b'{"user": "2", "item": "50"}',
                                  headers={"Host": HOST, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(post, timeout=5)
    assert refused.value.code == 401
    assert n.kubectl("get", "recsvc", CR, "-n", NS, "-o",
                     "jsonpath={.status.ingestTokenSecret}") == f"{CR}-ingest-token"
    assert json.loads(n.helm("status", RELEASE, "-n", NS, "-o", "json"))["info"]["status"] \
        == "deployed"
    # the operator was never refused anything (e.g. kopf listing namespaces: operator/cli.py)
    assert "forbidden" not in n.kubectl("logs", "-n", NS, operator.metadata.name).lower()


def test_helm_upgrade_rolls_the_operator_scales_serving_and_leaves_the_trainer_alone(
    node: Node,
) -> None:
    n = node
    before = n.deployments()
    operator, trainer, serving = RELEASE, f"{CR}-trainer", f"{CR}-serving"
    assert set(before) == {operator, trainer, serving}, before
    assert before[serving]["replicas"] == 2
    n.helm("upgrade", RELEASE, str(REPO / "helm" / "streamrec"), "--namespace", NS,
           "--reuse-values", "--set", "example.serving.replicas=3",
           "--set", "operator.logFormat=json")
    n.wait_ready(SERVING, 3)
    (pod,) = n.wait_ready(OPERATOR, 1)
    # the new operator (JSON logs now) has resumed the resource and re-applied its children
    wait_for(lambda: any(line.startswith("{") and "children reconciled" in line
                         for line in n.kubectl("logs", "-n", NS, pod.metadata.name).splitlines()),
             180, "the new operator's JSON log line 'children reconciled'")
    after = n.deployments()
    # the operator: a new pod template (its args), so a new ReplicaSet
    assert after[operator]["template"] != before[operator]["template"]
    assert after[operator]["generation"] == before[operator]["generation"] + 1
    # serving: scaled, not rolled (same template, same single ReplicaSet)
    assert after[serving]["replicas"] == 3
    assert after[serving]["template"] == before[serving]["template"]
    assert after[serving]["replicasets"] == before[serving]["replicasets"]
    assert len(after[serving]["replicasets"]) == 1
    # the trainer: not written at all, although a new operator re-applied every child
    assert after[trainer] == before[trainer]
    versions = {n.get(f"http://{p.status.pod_ip}:8000/model")["version"]
                for p in n.ready_pods(SERVING)}
    assert len(versions) == 1, versions
    history = json.loads(n.helm("history", RELEASE, "-n", NS, "-o", "json"))
    assert [h["revision"] for h in history] == [1, 2]


def test_helm_uninstall_removes_everything_but_the_crd(node: Node) -> None:
    n = node
    n.helm("uninstall", RELEASE, "--namespace", NS, "--wait", "--timeout=180s")
    wait_for(lambda: not n.leftovers(), 180, f"every object of the release to go: "
             f"{n.leftovers()}", every=1)
    assert not n.core.list_namespaced_pod(NS).items
    # helm never deletes what crds/ installed (docs/kubernetes.md, "Uninstall")
    assert n.kubectl("get", "crd", CRD, "-o", "name").strip() == \
        f"customresourcedefinition.apiextensions.k8s.io/{CRD}"
    assert RELEASE not in n.helm("list", "-n", NS, "-q").split()


def _skaffold_tag(pod: Any, registry: str) -> str:
    """The tag of a pod's ``REGISTRY/streamrec:TAG[@sha256:...]`` image."""
    image = str(pod.spec.containers[0].image).split("@", 1)[0]
    repository, tag = image.rsplit(":", 1)
    assert repository == f"{registry}/streamrec", image
    return tag


def test_skaffold_run_builds_with_image_sh_pushes_and_deploys_the_chart(node: Node) -> None:
    n, t0 = node, time.monotonic()
    n.skaffold("run", "--status-check=true")
    n.figures["skaffold_run_s"] = round(time.monotonic() - t0, 1)
    (operator,) = n.wait_ready(OPERATOR, 1)
    tag = _skaffold_tag(operator, n.registry.address)
    # the example runs the image skaffold built and pushed, by tag
    pods = n.wait_ready(SERVING, 2, image=f"{n.registry.address}/streamrec:{tag}")
    n.wait_ready(TRAINER, 1, image=f"{n.registry.address}/streamrec:{tag}")
    assert n.registry.manifest("streamrec", tag)["layers"]
    wait_for(n.personalised, 120, "personalised recommendations after skaffold run")
    assert {n.get(f"http://{p.status.pod_ip}:8000/healthz")["status"] for p in pods} == {"ok"}


def _copy_repo(to: Path) -> Path:
    """The repository's files as git sees them (tracked and new, not ignored): what a
    developer's checkout holds, without .venv and caches."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                            capture_output=True, check=True, timeout=60).stdout
    for rel in filter(None, listed.decode().split("\0")):
        src = REPO / rel
        if src.is_file():
            (to / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, to / rel)
    return to


def test_one_skaffold_dev_iteration_rolls_pods_that_serve_the_changed_source(
    node: Node, tmp_path: Path,
) -> None:
    n = node
    repo = _copy_repo(tmp_path / "repo")
    log = tmp_path / "skaffold-dev.log"
    dev = ManagedProcess("skaffold-dev", [str(n.skaffold_bin), "dev", *n.skaffold_flags,
                                          "--status-check=true", "--cleanup=true"],
                         log, env=n.env, cwd=repo)
    dev.start()
    try:
        dev.wait_ready(lambda: "Watching for changes" in log.read_text(errors="replace"), 900)
        (operator,) = n.wait_ready(OPERATOR, 1)
        old = _skaffold_tag(operator, n.registry.address)
        n.wait_ready(SERVING, 2, image=f"{n.registry.address}/streamrec:{old}")
        marker = f"0.1.0+dev.{int(time.time())}"
        init = repo / "services" / "streamrec" / "__init__.py"
        t0 = time.monotonic()
        init.write_text(init.read_text() + f'__version__ = "{marker}"  # a developer\'s edit\n')

        def rolled() -> str | None:
            ops = n.ready_pods(OPERATOR)
            tag = _skaffold_tag(ops[0], n.registry.address) if len(ops) == 1 else old
            return tag if tag != old else None

        new = str(wait_for(rolled, 900, f"skaffold dev to deploy a new tag:\n{dev.log_tail()}",
                           every=1))
        pods = n.wait_ready(SERVING, 2, image=f"{n.registry.address}/streamrec:{new}")
        n.figures["skaffold_dev_edit_to_serving_ready_s"] = round(time.monotonic() - t0, 1)
        assert {n.get(f"http://{p.status.pod_ip}:8000/healthz")["version"] for p in pods} \
            == {marker}
        wait_for(n.personalised, 120, "personalised recommendations from the new pods")
    finally:
        t1 = time.monotonic()
        dev.stop(timeout=300, sig=signal.SIGINT)  # Ctrl-C: skaffold dev cleans up and exits
        n.figures["skaffold_dev_stop_s"] = round(time.monotonic() - t1, 1)
    assert dev.proc is not None and dev.proc.returncode == 0, dev.log_tail()
    wait_for(lambda: not n.leftovers(), 180, f"skaffold dev's cleanup: {n.leftovers()}", every=1)
