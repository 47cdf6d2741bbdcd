"""Security checks of the Kubernetes side (issue 9).

- Every pod template we ship (the operator's builders, k8s/, the Helm chart) runs non-root,
  without privilege escalation or capabilities, on a read-only root filesystem, and with no
  host namespaces or host paths.
- RBAC grants exactly an explicit allow-list; cluster-wide it writes only the custom resource
  (kopf's annotations, finalizer, status) and Events. docs/operator.md lists the same verbs.
- No Secret value reaches the operator's log, a resource's status, a ConfigMap, a Deployment
  or an Event, even with ``--verbose`` and a store that rejects the credentials.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from tests.infra.process import provision
from tests.integration.test_operator import (
    Cluster,
    example_cr,
    wait_for,
)
from tests.integration.test_operator import (
    crd as crd,  # noqa: F401  (the module-scoped fixture that installs the CRD)
)

from streamrec.operator.builders import build_children
from streamrec.operator.spec import GROUP, PLURAL, parse_spec

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
CHART = ROOT / "helm" / "streamrec"

pytestmark = pytest.mark.timeout(900)


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def k8s_docs() -> list[dict[str, Any]]:
    return [d for p in sorted(K8S.glob("*.yaml")) for d in load_all(p.read_text())]


def helm_docs(*values: str) -> list[dict[str, Any]]:
    helm = provision("helm") / "helm"
    out = subprocess.run(
        [str(helm), "template", "rel", str(CHART), "--namespace", "recs", *values],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    return load_all(out)


def builder_docs() -> list[dict[str, Any]]:
    """Children of the most complete spec: SASL, ingest token, autoscaling, Ingress, GPU."""
    raw = example_cr("ns")["spec"]
    raw["kafka"].update(securityProtocol="SASL_SSL", credentialsSecret="kafka-user")
    raw["serving"]["ingestTokenSecret"] = "ingest-token"
    raw["training"]["gpu"] = True
    return build_children("rec", "ns", parse_spec(raw))


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            yield f"{doc['kind']}/{doc['metadata']['name']}", doc["spec"]["template"]["spec"]
        elif doc["kind"] == "CronJob":
            yield doc["metadata"]["name"], doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        elif doc["kind"] == "Pod":
            yield doc["metadata"]["name"], doc["spec"]


SOURCES = {
    "builders": builder_docs,
    "k8s": k8s_docs,
    "helm": lambda: helm_docs("--set", "example.enabled=true"),
}
EXPECTED_PODS = {
    "builders": {"Deployment/rec-trainer", "Deployment/rec-serving"},
    "k8s": {"Deployment/streamrec-operator", "Deployment/minio", "Job/minio-create-bucket"},
    "helm": {"Deployment/rel-streamrec"},
}


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_pod_template_runs_non_root_without_privileges(source: str) -> None:
    pods = dict(pod_specs(SOURCES[source]()))
    assert set(pods) == EXPECTED_PODS[source]
    for name, pod in pods.items():
        pod_sc = pod.get("securityContext") or {}
        assert pod_sc.get("runAsNonRoot") is True, name
        assert pod_sc.get("runAsUser", 1) != 0 and pod_sc.get("runAsGroup", 1) != 0, name
        assert pod_sc.get("seccompProfile") == {"type": "RuntimeDefault"}, name
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(host), (name, host)
        assert not any("hostPath" in v for v in pod.get("volumes") or []), name
        for container in pod.get("initContainers", []) + pod["containers"]:
            where = (name, container["name"])
            sc = container.get("securityContext") or {}
            assert sc.get("runAsNonRoot", True) is True and sc.get("runAsUser", 1) != 0, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert not sc.get("privileged"), where
            assert sc.get("capabilities") == {"drop": ["ALL"]}, where  # and nothing added
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert {"requests", "limits"} <= set(container.get("resources") or {}), where


def test_only_the_operator_pod_gets_a_service_account_token() -> None:
    """The trainer and serving pods never call the API server; MinIO neither."""
    pods = dict(pod_specs(builder_docs() + k8s_docs()))
    for name, pod in pods.items():
        if name == "Deployment/streamrec-operator":
            assert pod["serviceAccountName"] == "streamrec-operator"
        else:
            assert pod.get("automountServiceAccountToken") is False, name


# RBAC

WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}

# The explicit allow-list: (API group, resource) -> verbs. docs/operator.md has the same tables.
CLUSTER_ALLOWED: dict[tuple[str, str], set[str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
    (GROUP, PLURAL): {"get", "list", "watch", "patch"},
    (GROUP, f"{PLURAL}/status"): {"get", "patch"},
    (GROUP, f"{PLURAL}/finalizers"): {"update"},
    ("", "events"): {"create"},
}
NAMESPACED_ALLOWED: dict[tuple[str, str], set[str]] = {
    ("", "configmaps"): {"get", "create", "patch"},
    # list/delete: the serving children a smaller group count or autoscaling off leaves over
    ("", "services"): {"get", "list", "create", "patch", "delete"},
    ("apps", "deployments"): {"get", "list", "create", "patch", "delete"},
    ("autoscaling", "horizontalpodautoscalers"): {"get", "list", "create", "patch", "delete"},
    ("networking.k8s.io", "ingresses"): {"get", "create", "patch", "delete"},
    # create/delete: the generated write token (<name>-ingest-token); never list, watch, patch
    ("", "secrets"): {"get", "create", "delete"},
}
# What the operator may write cluster-wide: its own resource (kopf's finalizer and progress
# annotations, the status) and Events. Nothing else, in particular no core object.
CLUSTER_WRITES = {
    (GROUP, PLURAL): {"patch"},
    (GROUP, f"{PLURAL}/status"): {"patch"},
    (GROUP, f"{PLURAL}/finalizers"): {"update"},
    ("", "events"): {"create"},
}


def rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        assert not rule.get("nonResourceURLs") and not rule.get("resourceNames"), rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


RBAC_SOURCES = {
    "k8s": k8s_docs,
    "helm": lambda: helm_docs("--set", "watchNamespaces={team-a,team-b}"),
}


@pytest.mark.parametrize("source", sorted(RBAC_SOURCES))
def test_rbac_grants_exactly_the_allow_list(source: str) -> None:
    docs = RBAC_SOURCES[source]()
    (cluster_role,) = [d for d in docs if d["kind"] == "ClusterRole"]
    roles = [d for d in docs if d["kind"] == "Role"]
    assert roles, source
    assert rules(cluster_role) == CLUSTER_ALLOWED
    for role in roles:
        assert rules(role) == NAMESPACED_ALLOWED, role["metadata"]
    for granted in [rules(cluster_role), *map(rules, roles)]:
        for (group, resource), verbs in granted.items():
            assert "*" not in verbs and "*" not in (group, resource), (group, resource)
            assert not verbs & {"escalate", "bind", "impersonate"}, (group, resource)
    # Every Role is bound by a RoleBinding, never by a ClusterRoleBinding (no cluster-wide
    # child or Secret access), and the ClusterRole only through its own binding.
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    for binding in bindings:
        if binding["roleRef"]["kind"] == "Role":
            assert binding["kind"] == "RoleBinding", binding["metadata"]
    cluster_writes = {
        key: verbs & WRITE_VERBS
        for key, verbs in rules(cluster_role).items()
        if verbs & WRITE_VERBS
    }
    assert cluster_writes == CLUSTER_WRITES


def docs_rbac_tables() -> list[dict[tuple[str, str], set[str]]]:
    """The RBAC tables of docs/operator.md: | API group | resource | verbs | why |."""
    text = (ROOT / "docs" / "operator.md").read_text()
    section = text.split("\n## RBAC\n", 1)[1].split("\n## ", 1)[0]
    tables: list[dict[tuple[str, str], set[str]]] = []
    for block in section.split("| API group | resource | verbs | why |")[1:]:
        table: dict[tuple[str, str], set[str]] = {}
        for line in block.strip().splitlines()[1:]:  # after the |---| row
            if not line.startswith("|"):
                break
            group, resource, verbs = (c.strip() for c in line.strip("|").split("|")[:3])
            group = "" if group.startswith("core") else group.strip("`")
            table[(group, resource)] = {v.strip() for v in verbs.split(",")}
        tables.append(table)
    return tables


def test_docs_list_exactly_the_granted_verbs() -> None:
    assert docs_rbac_tables() == [CLUSTER_ALLOWED, NAMESPACED_ALLOWED]


# Secret values never leak


LEAK_VALUES = {
    "AWS_ACCESS_KEY_ID": "leakcheck-access-7Qz3",
    "AWS_SECRET_ACCESS_KEY": "leakcheck-secret-K9w2pX",
    "username": "leakcheck-user-R5t",
    "password": "leakcheck-password-V8m4",
    "token": "leakcheck-token-J2h6",
}


def forms(value: str) -> set[str]:
    """The value and how it could appear encoded (base64 of the value, as Secret data)."""
    return {value, base64.b64encode(value.encode()).decode()}


def test_no_secret_value_appears_in_logs_status_configmaps_or_events(
    kube: Any,
    crd: None,  # noqa: F811
    s3: Any,
    tmp_path: Path,
) -> None:
    from tests.faults.test_operator_faults import running_operator

    cluster = Cluster(kube.api_client(), kube.namespace())
    for name, keys in {
        "store": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
        "kafka-user": ("username", "password"),
        "ingest-token": ("token",),
    }.items():
        cluster.core.create_namespaced_secret(
            cluster.ns,
            {"metadata": {"name": name}, "stringData": {k: LEAK_VALUES[k] for k in keys}},
        )
    cr = example_cr(cluster.ns, "leaky")
    cr["spec"]["kafka"].update(securityProtocol="SASL_SSL", credentialsSecret="kafka-user")
    cr["spec"]["serving"]["ingestTokenSecret"] = "ingest-token"
    # A real S3 endpoint that refuses these credentials: its error lands in the status.
    cr["spec"]["snapshots"].update(
        bucket=s3.bucket, endpoint=s3.endpoint_url, region=s3.region, credentialsSecret="store"
    )

    with running_operator(kube, cluster.ns, tmp_path / "operator.log") as op:
        cluster.create_cr(cr)
        wait_for(
            "SecretsFound=True and the store refusing the credentials",
            lambda: (
                (cluster.condition("leaky", "SecretsFound") or {}).get("status") == "True"
                and (cluster.condition("leaky", "SnapshotPublished") or {}).get("reason")
                == "StoreUnreadable"
            ),
            explain=op.last_run,
        )
        # A token the operator generates (Ingress on, no ingestTokenSecret) must not leak either.
        generated_cr = example_cr(cluster.ns, "generated")
        generated_cr["spec"]["snapshots"]["credentialsSecret"] = "store"
        cluster.create_cr(generated_cr)
        generated = wait_for("the generated token Secret",
                             lambda: cluster.get("Secret", "generated-ingest-token"),
                             explain=op.last_run)
        generated_token = base64.b64decode(generated["data"]["token"]).decode()
        cluster.patch_cr("leaky", {"spec": {"model": {"factors": 16}}})  # an update, logged
        wait_for(
            "the update to be applied",
            lambda: (
                ((cluster.get("ConfigMap", "leaky-config") or {}).get("data") or {}).get(
                    "STREAMREC_FACTORS"
                )
                == "16"
            ),
            explain=op.last_run,
        )
        store_error = (cluster.condition("leaky", "SnapshotPublished") or {})["message"]

    api = cluster.api
    apps = client.AppsV1Api(api)
    places: dict[str, str] = {
        "operator log": op.text(),
        "RecommenderService (spec, status, annotations)": json.dumps(
            cluster.get("RecommenderService", "leaky")
        ),
        "RecommenderService with a generated token": json.dumps(
            cluster.get("RecommenderService", "generated")
        ),
        "ConfigMaps": json.dumps(
            api.sanitize_for_serialization(cluster.core.list_namespaced_config_map(cluster.ns))
        ),
        "Deployments": json.dumps(
            api.sanitize_for_serialization(apps.list_namespaced_deployment(cluster.ns))
        ),
        "Events": json.dumps(
            api.sanitize_for_serialization(cluster.core.list_namespaced_event(cluster.ns))
        ),
    }
    assert "leaky" in places["operator log"] and store_error  # the places are not empty
    for where, text in places.items():
        for key, value in {**LEAK_VALUES, "generated token": generated_token}.items():
            for form in forms(value):
                assert form not in text, f"{key} found in {where}"
    # The containers get credentials only as references to the Secrets.
    for dep in apps.list_namespaced_deployment(cluster.ns).items:
        for container in dep.spec.template.spec.containers:
            for env in container.env or []:
                assert env.value_from is None or env.value_from.secret_key_ref is not None
                if env.name in ("AWS_SECRET_ACCESS_KEY", "STREAMREC_KAFKA_PASSWORD"):
                    assert env.value is None and env.value_from.secret_key_ref is not None
