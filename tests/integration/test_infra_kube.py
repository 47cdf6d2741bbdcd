"""The Kubernetes in the tests is a real control plane: scheduling, readiness and GC happen."""

from __future__ import annotations

from kubernetes import client
from tests.infra.process import wait_until


def _deployment(name: str) -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {
            "replicas": 2, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "web", "image": "example/web:1"}]}},
        },
    }


def test_deployment_reaches_ready_through_scheduler_and_kwok(kube):
    ns = kube.namespace()
    apps = client.AppsV1Api(kube.api_client())
    apps.create_namespaced_deployment(ns, _deployment("web"))

    def ready() -> bool:
        d = apps.read_namespaced_deployment("web", ns)
        return (d.status.ready_replicas or 0) == 2

    wait_until(ready, 90, "deployment web to have 2 ready replicas")
    pods = client.CoreV1Api(kube.api_client()).list_namespaced_pod(ns).items
    assert len(pods) == 2
    assert all(p.spec.node_name == "kwok-node-0" and p.status.phase == "Running" for p in pods)


def test_deleting_the_owner_garbage_collects_its_children(kube):
    ns = kube.namespace()
    api = kube.api_client()
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    owner = core.create_namespaced_config_map(ns, {"metadata": {"name": "owner"}})
    dep = _deployment("child")
    dep["metadata"]["ownerReferences"] = [{
        "apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid,
    }]
    apps.create_namespaced_deployment(ns, dep)
    wait_until(lambda: len(apps.list_namespaced_replica_set(ns).items) == 1, 60, "a ReplicaSet")

    core.delete_namespaced_config_map("owner", ns)

    def collected() -> bool:
        return (not apps.list_namespaced_deployment(ns).items
                and not apps.list_namespaced_replica_set(ns).items
                and not core.list_namespaced_pod(ns).items)

    wait_until(collected, 90, "garbage collection of the deployment, replicaset and pods")


def test_kubectl_talks_to_the_api_server(kube):
    ns = kube.namespace()
    out = kube.kubectl("get", "ns", "-o", "name").stdout.split()
    assert f"namespace/{ns}" in out and "namespace/kube-system" in out
    version = kube.kubectl("version", "-o", "json").stdout
    assert '"gitVersion": "v1.36' in version
