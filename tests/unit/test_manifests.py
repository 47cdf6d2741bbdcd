"""The deployable artefacts: k8s/ manifests, the CRD and its schema, the Dockerfile, skaffold and
the Helm chart (linted and rendered with a real helm built by scripts/provision-helm.sh)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import tomllib
import yaml

from streamrec.operator.builders import build_children
from streamrec.operator.spec import GROUP, KIND, PLURAL, VERSION, RecommenderSpec, parse_spec
from streamrec.settings import SETTINGS

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
CHART = ROOT / "helm" / "streamrec"
CRD_PATH = K8S / "crd.yaml"


def load_all(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def k8s_docs() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in load_all(path)]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(scope="module")
def crd() -> dict[str, Any]:
    (doc,) = load_all(CRD_PATH)
    return doc


@pytest.fixture(scope="module")
def schema(crd: dict[str, Any]) -> dict[str, Any]:
    (version,) = crd["spec"]["versions"]
    return copy.deepcopy(version["schema"]["openAPIV3Schema"])


def to_json_schema(node: Any) -> Any:
    """OpenAPI v3 (as in CRDs) to JSON Schema draft 4: drop x-kubernetes-* and, like kubectl's
    strict field validation, refuse unknown fields where properties are declared."""
    if isinstance(node, list):
        return [to_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: to_json_schema(v) for k, v in node.items() if not k.startswith("x-kubernetes-")}
    if "properties" in node and "additionalProperties" not in node:
        out["additionalProperties"] = False
    return out


def validate(schema: dict[str, Any], obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(dotted path, message) of every schema violation of ``obj``."""
    validator = jsonschema.Draft4Validator(to_json_schema(schema))
    return [
        (".".join(str(p) for p in err.absolute_path), err.message)
        for err in validator.iter_errors(obj)
    ]


def apply_defaults(schema: dict[str, Any], obj: Any) -> Any:
    """Structural defaulting as the API server does it (defaults of defaults included)."""
    if not isinstance(obj, dict):
        return obj
    for key, sub in schema.get("properties", {}).items():
        if key not in obj and "default" in sub:
            obj[key] = copy.deepcopy(sub["default"])
        if key in obj:
            apply_defaults(sub, obj[key])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in obj:
            apply_defaults(extra, obj[key])
    return obj


def example_cr() -> dict[str, Any]:
    (cr,) = load_all(K8S / "recommender.yaml")
    return cr


# k8s/


def test_every_k8s_manifest_parses_and_names_its_api() -> None:
    files = sorted(K8S.glob("*.yaml"))
    assert {p.name for p in files} >= {
        "crd.yaml",
        "rbac.yaml",
        "operator.yaml",
        "recommender.yaml",
        "strimzi-kafka.yaml",
        "minio.yaml",
        "namespace.yaml",
    }
    for path in files:
        for doc in load_all(path):
            assert doc.get("apiVersion") and doc.get("kind"), path.name
            # `kubectl apply -f k8s/` takes every top-level file: API objects only (the kind
            # cluster config lives in k8s/kind/, which kubectl does not descend into).
            assert "kind.x-k8s.io" not in doc["apiVersion"], path.name


def test_the_chart_ships_the_very_same_crd() -> None:
    (chart_crd,) = sorted((CHART / "crds").glob("*.yaml"))
    assert chart_crd.read_bytes() == CRD_PATH.read_bytes()


def test_crd_identity_scope_and_printer_columns(crd: dict[str, Any]) -> None:
    spec = crd["spec"]
    assert crd["metadata"]["name"] == f"{PLURAL}.{GROUP}"
    assert (spec["group"], spec["scope"], spec["names"]["kind"]) == (GROUP, "Namespaced", KIND)
    assert spec["names"]["shortNames"] == ["recsvc"]
    (version,) = spec["versions"]
    assert (version["name"], version["served"], version["storage"]) == (VERSION, True, True)
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c for c in version["additionalPrinterColumns"]}
    assert columns["Ready"]["jsonPath"] == '.status.conditions[?(@.type=="Ready")].status'
    assert columns["Snapshot"]["jsonPath"] == ".status.snapshotVersion"
    assert columns["Replicas"]["jsonPath"] == ".status.servingReplicas"
    assert columns["Age"]["jsonPath"] == ".metadata.creationTimestamp"
    assert columns["Training"]["jsonPath"] == '.status.conditions[?(@.type=="Training")].status'


def test_crd_schema_is_structural(schema: dict[str, Any]) -> None:
    """Every node states its type (or is int-or-string), as the API server requires."""

    def walk(node: dict[str, Any], path: str) -> Iterator[str]:
        if "type" not in node and not node.get("x-kubernetes-int-or-string"):
            yield path
        for key, sub in node.get("properties", {}).items():
            yield from walk(sub, f"{path}.{key}")
        if isinstance(node.get("additionalProperties"), dict):
            yield from walk(node["additionalProperties"], f"{path}.*")
        if "items" in node:
            yield from walk(node["items"], f"{path}[]")

    assert list(walk(schema, "")) == []


def test_the_example_cr_is_valid_against_the_crd_schema(schema: dict[str, Any]) -> None:
    assert validate(schema, example_cr()) == []


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("model.factors", 0, "spec.model.factors"),
        ("model.factors", "64", "spec.model.factors"),
        ("kafka.format", "xml", "spec.kafka.format"),
        ("image.pullPolicy", "Sometimes", "spec.image.pullPolicy"),
        (
            "serving.autoscaling.targetCPUUtilizationPercentage",
            0,
            "spec.serving.autoscaling.targetCPUUtilizationPercentage",
        ),
        ("training.resources.requests.cpu", "lots", "spec.training.resources.requests.cpu"),
        ("model.factor", 8, "spec.model"),
        ("snapshots.bucket", "Not_A_Bucket", "spec.snapshots.bucket"),
        ("snapshots.credentialsSecret", "Bad_Name", "spec.snapshots.credentialsSecret"),
        ("serving.ingress.host", "bad host", "spec.serving.ingress.host"),
    ],
)
def test_the_schema_rejects_bad_values_naming_the_field(
    schema: dict[str, Any], path: str, value: Any, field: str
) -> None:
    cr = example_cr()
    node = cr["spec"]
    *parents, leaf = path.split(".")
    for key in parents:
        node = node[key]
    node[leaf] = value
    errors = validate(schema, cr)
    assert errors and errors[0][0] == field, errors


def test_the_schema_requires_kafka_and_snapshots(schema: dict[str, Any]) -> None:
    cr = example_cr()
    del cr["spec"]["kafka"]["bootstrapServers"]
    assert validate(schema, cr) == [("spec.kafka", "'bootstrapServers' is a required property")]


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join("CPU" if part == "cpu" else part.title() for part in rest)


def as_raw(value: Any, section: str = "") -> Any:
    """A parsed spec rendered back to its CR form (the settings table's CR keys, camelCase for
    the sections, no unset optional fields)."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if hasattr(value, "__dataclass_fields__"):
        keys = {r.attr: r.cr_key for r in SETTINGS if r.cr and r.cr_section == section}
        return {
            keys.get(name, camel(name)): as_raw(getattr(value, name),
                                                f"{section}.{name}" if section else name)
            for name in value.__dataclass_fields__
            if getattr(value, name) is not None
        }
    return value


def test_crd_defaults_are_exactly_the_operator_defaults(schema: dict[str, Any]) -> None:
    minimal = {
        "image": {"repository": "streamrec", "tag": "1"},
        "kafka": {"bootstrapServers": "k:9092"},
        "snapshots": {"bucket": "bkt", "credentialsSecret": "s3"},
    }
    parsed: RecommenderSpec = parse_spec(minimal)
    defaulted = apply_defaults(schema["properties"]["spec"], copy.deepcopy(minimal))
    assert defaulted == as_raw(parsed)
    assert parse_spec(defaulted) == parsed


# RBAC


def rules(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    return {
        (group, resource): set(rule["verbs"])
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }


def test_cluster_role_covers_only_kopf_and_the_custom_resources() -> None:
    (cluster_role,) = by_kind(k8s_docs(), "ClusterRole")
    assert rules(cluster_role) == {
        ("apiextensions.k8s.io", "customresourcedefinitions"): {"get", "list", "watch"},
        (GROUP, PLURAL): {"get", "list", "watch", "patch"},
        (GROUP, f"{PLURAL}/status"): {"get", "patch"},
        (GROUP, f"{PLURAL}/finalizers"): {"update"},
        ("", "events"): {"create"},
    }


def test_namespaced_role_grants_what_the_children_need_and_no_more() -> None:
    (role,) = by_kind(k8s_docs(), "Role")
    granted = rules(role)
    spec = parse_spec(
        {
            **example_cr()["spec"],
            "serving": {"autoscaling": {"enabled": True}, "ingress": {"enabled": True}},
        }
    )
    plural = {
        "ConfigMap": "configmaps",
        "Deployment": "deployments",
        "Service": "services",
        "HorizontalPodAutoscaler": "horizontalpodautoscalers",
        "Ingress": "ingresses",
    }
    for child in build_children("r", "ns", spec):
        group = child["apiVersion"].rpartition("/")[0]
        assert {"get", "create", "patch"} <= granted[(group, plural[child["kind"]])], child["kind"]
    # get: referenced Secrets; create/delete: the generated write token, never patch or list
    assert granted[("", "secrets")] == {"get", "create", "delete"}
    # list and delete: the serving children of groups left over (builders.stale_serving)
    serving_kinds = {("autoscaling", "horizontalpodautoscalers"), ("apps", "deployments"),
                     ("", "services")}
    for kind in serving_kinds:
        assert granted[kind] == {"get", "list", "create", "patch", "delete"}, kind
    assert granted[("", "configmaps")] == {"get", "create", "patch"}
    assert granted[("networking.k8s.io", "ingresses")] == {"get", "create", "patch", "delete"}
    assert all("*" not in verbs for verbs in granted.values())
    assert all("list" not in verbs for kind, verbs in granted.items()
               if kind not in serving_kinds)


def test_bindings_point_the_roles_at_the_operator_service_account() -> None:
    docs = k8s_docs()
    (account,) = by_kind(docs, "ServiceAccount")
    (deployment,) = [
        d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "streamrec-operator"
    ]
    assert (
        deployment["spec"]["template"]["spec"]["serviceAccountName"] == account["metadata"]["name"]
    )
    for binding in by_kind(docs, "ClusterRoleBinding") + by_kind(docs, "RoleBinding"):
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": account["metadata"]["name"],
                "namespace": account["metadata"]["namespace"],
            }
        ]


# Pods in k8s/


def pod_templates(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def test_every_pod_in_k8s_is_non_root_read_only_and_bounded() -> None:
    templates = list(pod_templates(k8s_docs()))
    assert {name for name, _ in templates} == {"streamrec-operator", "minio", "minio-create-bucket"}
    for name, pod in templates:
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert {"requests", "limits"} <= set(container["resources"]), name
            assert not container["image"].endswith(":latest") and ":" in container["image"], name


def test_operator_runs_once_with_recreate_for_its_own_namespace() -> None:
    (dep,) = load_all(K8S / "operator.yaml")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["args"][:3] == ["operator", "--namespace", "$(POD_NAMESPACE)"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_minio_credentials_are_obvious_examples_shared_with_the_example_cr() -> None:
    docs = load_all(K8S / "minio.yaml")
    (secret,) = by_kind(docs, "Secret")
    assert set(secret["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert all(v.startswith("example-") for v in secret["stringData"].values())
    assert example_cr()["spec"]["snapshots"]["credentialsSecret"] == secret["metadata"]["name"]
    (job,) = by_kind(docs, "Job")
    assert "mb --ignore-existing local/" + example_cr()["spec"]["snapshots"]["bucket"] in str(job)


def test_strimzi_kafka_is_kraft_with_a_node_pool_and_the_interactions_topic() -> None:
    docs = load_all(K8S / "strimzi-kafka.yaml")
    (kafka,) = by_kind(docs, "Kafka")
    (pool,) = by_kind(docs, "KafkaNodePool")
    # Strimzi 1.x's v1 API: KRaft with node pools is the only mode (no annotations to opt in).
    assert {d["apiVersion"] for d in docs} == {"kafka.strimzi.io/v1"}
    assert "zookeeper" not in kafka["spec"]
    assert pool["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    assert set(pool["spec"]["roles"]) == {"controller", "broker"}
    topics = {
        t["spec"].get("topicName", t["metadata"]["name"]) for t in by_kind(docs, "KafkaTopic")
    }
    assert "interactions" in topics
    bootstrap = f"{kafka['metadata']['name']}-kafka-bootstrap.streamrec.svc:9092"
    assert example_cr()["spec"]["kafka"]["bootstrapServers"] == bootstrap


def test_kind_cluster_node_is_ingress_ready_on_ports_80_and_443() -> None:
    (cluster,) = load_all(K8S / "kind" / "kind-cluster.yaml")
    (node,) = cluster["nodes"]
    assert "ingress-ready=true" in node["kubeadmConfigPatches"][0]
    assert {(m["containerPort"], m["hostPort"]) for m in node["extraPortMappings"]} == {
        (80, 80),
        (443, 443),
    }


# Image


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "services" / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_dockerfile_is_multi_stage_on_python_slim_with_a_non_root_user() -> None:
    steps = dockerfile_instructions()
    froms = [args.split() for op, args in steps if op == "FROM"]
    stages = {f[2] for f in froms if len(f) == 3 and f[1].upper() == "AS"}
    bases = [f[0] for f in froms if f[0] not in stages]  # images, not earlier stages
    assert len(froms) >= 2 and set(bases) == {"python:3.11-slim"}
    assert not any(":latest" in b or ":" not in b for b in bases)
    final = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [args for op, args in final if op == "USER"]
    assert users and re.fullmatch(r"[1-9][0-9]*(:[1-9][0-9]*)?", users[-1])
    assert ("ENTRYPOINT", '["streamrec"]') in final
    runs = " ".join(args for op, args in steps if op == "RUN")
    assert "python -m venv --without-pip /opt/venv" in runs
    assert "pip --python /opt/venv/bin/python install" in runs  # no pip in the final venv
    assert "libgomp1" in runs  # implicit's OpenMP runtime (the first fit crashed without it)


def test_dockerignore_sends_only_pyproject_and_services() -> None:
    lines = [
        ln
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln and not ln.startswith("#")
    ]
    assert lines[0] == "*"
    assert {"!pyproject.toml", "!services/"} <= set(lines)


def assert_values_exist(release: dict[str, Any]) -> None:
    """Every value a skaffold helm release sets is one the chart's values.yaml has."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for dotted in list(release["setValueTemplates"]) + list(release["setValues"]):
        node = values
        for key in dotted.split("."):
            assert key in node, dotted
            node = node[key]


def test_skaffold_builds_services_dockerfile_and_deploys_the_chart() -> None:
    (config,) = load_all(ROOT / "skaffold.yaml")
    major, minor = re.fullmatch(r"skaffold/v(\d+)beta(\d+)", config["apiVersion"]).groups()  # type: ignore[union-attr]
    assert (int(major), int(minor)) >= (4, 11)
    (artifact,) = config["build"]["artifacts"]
    assert (ROOT / artifact["context"] / artifact["docker"]["dockerfile"]).is_file()
    (release,) = config["deploy"]["helm"]["releases"]
    assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
    image = artifact["image"]
    assert release["setValueTemplates"] == {
        "image.repository": f"{{{{.IMAGE_REPO_{image}}}}}",
        "image.tag": f"{{{{.IMAGE_TAG_{image}}}}}",
    }
    assert_values_exist(release)


def test_skaffolds_ci_profile_builds_with_image_sh_pushes_by_input_digest_and_sets_real_values(
) -> None:
    (config,) = load_all(ROOT / "skaffold.yaml")
    (profile,) = [p for p in config["profiles"] if p["name"] == "ci"]
    (artifact,) = profile["build"]["artifacts"]
    assert artifact["image"] == config["build"]["artifacts"][0]["image"]
    command = artifact["custom"]["buildCommand"].split()
    assert command[0] == "bash" and (ROOT / artifact["context"] / command[1]).is_file()
    # skaffold dev watches (and inputDigest hashes) what .dockerignore lets the build copy
    deps = artifact["custom"]["dependencies"]
    allowed = [line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")]
    assert sorted(p.removesuffix("/**") for p in deps["paths"]) == sorted(allowed)
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("services/")]
    assert len(deps["ignore"]) == len(ignored)
    assert profile["build"]["tagPolicy"] == {"inputDigest": {}}
    assert profile["build"]["local"]["push"] is True
    (release,) = profile["deploy"]["helm"]["releases"]
    (default,) = config["deploy"]["helm"]["releases"]
    assert {k: release[k] for k in ("name", "chartPath", "namespace")} == \
        {k: default[k] for k in ("name", "chartPath", "namespace")}
    assert_values_exist(release)
    # each environment override falls back to what the default (kind) profile uses
    templates = release["setValueTemplates"]
    assert "streamrec-kafka-bootstrap:9092" in templates["example.kafka.bootstrapServers"]
    assert "http://minio:9000" in templates["example.snapshots.endpoint"]


@pytest.mark.parametrize(("env", "message"), [
    ({}, "IMAGE is not set"),
    ({"IMAGE": "127.0.0.1:5000/other:abc"}, "expected [REGISTRY/]streamrec:TAG"),
    ({"IMAGE": "streamrec:abc", "PUSH_IMAGE": "true"}, "no registry to push to"),
    ({"IMAGE": "127.0.0.1:5000/streamrec:abc", "PUSH_IMAGE": "false"}, "PUSH_IMAGE is not true"),
])
def test_skaffolds_custom_build_command_exits_2_naming_what_is_wrong(
    env: dict[str, str], message: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("IMAGE", "PUSH_IMAGE")}
    done = subprocess.run(["bash", str(ROOT / "scripts" / "skaffold-build.sh")],
                          env={**clean, **env}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr


@pytest.fixture(scope="module")
def schemas() -> Path:
    """Skaffold's JSON schemas and the Strimzi CRDs (scripts/provision-schemas.sh, cached)."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "provision-schemas.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return Path(done.stdout.strip().splitlines()[-1])


def skaffold_validator(schemas: Path, api_version: str) -> jsonschema.protocols.Validator:
    schema = json.loads((schemas / "skaffold" / f"{api_version.split('/')[1]}.json").read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def test_skaffold_yaml_is_valid_against_skaffolds_own_schema(schemas: Path) -> None:
    (config,) = load_all(ROOT / "skaffold.yaml")
    validator = skaffold_validator(schemas, config["apiVersion"])
    assert [e.message for e in validator.iter_errors(config)] == []


def test_skaffolds_schema_catches_a_misspelt_skaffold_field(schemas: Path) -> None:
    (config,) = load_all(ROOT / "skaffold.yaml")
    release = config["deploy"]["helm"]["releases"][0]
    release["chartPth"] = release.pop("chartPath")
    assert not skaffold_validator(schemas, config["apiVersion"]).is_valid(config)


# Helm


@pytest.fixture(scope="module")
def helm() -> str:
    """The helm binary built (once, then cached) by scripts/provision-helm.sh."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "provision-helm.sh")],
        check=True,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    return str(Path(done.stdout.strip().splitlines()[-1]) / "helm")


def template(helm: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(
        [helm, "template", "rel", str(CHART), "--namespace", "recs", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


@pytest.mark.parametrize("args", [[], ["--set", "example.enabled=true"]])
def test_helm_lint_passes(helm: str, args: list[str]) -> None:
    done = subprocess.run(
        [helm, "lint", "--strict", str(CHART), *args], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_helm_renders_a_single_hardened_operator(helm: str) -> None:
    docs = template(helm)
    assert sorted(d["kind"] for d in docs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    (dep,) = by_kind(docs, "Deployment")
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["image"] == "streamrec:0.1.0"
    assert container["args"][:3] == ["operator", "--namespace", "recs"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert {"requests", "limits"} <= set(container["resources"])
    assert pod["serviceAccountName"] == by_kind(docs, "ServiceAccount")[0]["metadata"]["name"]
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/instance"] == "rel"


def test_helm_labels_stay_valid_with_a_64_character_image_tag(helm: str) -> None:
    # skaffold's inputDigest tags are 64 hex digits; a label value may hold 63
    tag = "a4444bdddd0ca80d47aadad2684b5fbcf121bcfc49fce7b2c47fa0740d847764"
    docs = template(helm, "--set", f"image.tag={tag}", "--set", "example.enabled=true")
    label = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
    for doc in docs:
        for value in doc["metadata"].get("labels", {}).values():
            assert len(value) <= 63 and label.fullmatch(value), (doc["kind"], value)
    (dep,) = by_kind(docs, "Deployment")
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == f"streamrec:{tag}"
    (example,) = by_kind(docs, "RecommenderService")
    assert example["spec"]["image"]["tag"] == tag


def test_the_charts_app_version_is_the_package_version() -> None:
    # the chart's default image is streamrec:<appVersion>, the tag `make image` gives the build
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]


def test_helm_rbac_is_the_same_as_k8s_rbac(helm: str) -> None:
    docs = template(helm)
    k8s = k8s_docs()
    assert rules(by_kind(docs, "ClusterRole")[0]) == rules(by_kind(k8s, "ClusterRole")[0])
    assert rules(by_kind(docs, "Role")[0]) == rules(by_kind(k8s, "Role")[0])


def test_helm_gives_each_watched_namespace_a_role_and_a_flag(helm: str) -> None:
    docs = template(helm, "--set", "watchNamespaces={team-a,team-b}")
    assert sorted(r["metadata"]["namespace"] for r in by_kind(docs, "Role")) == ["team-a", "team-b"]
    assert sorted(r["metadata"]["namespace"] for r in by_kind(docs, "RoleBinding")) == [
        "team-a",
        "team-b",
    ]
    (dep,) = by_kind(docs, "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:5] == ["operator", "--namespace", "team-a", "--namespace", "team-b"]


def test_helm_example_is_off_by_default_and_a_valid_cr_when_on(
    helm: str, schema: dict[str, Any]
) -> None:
    assert not by_kind(template(helm), KIND)
    (cr,) = by_kind(template(helm, "--set", "example.enabled=true", "--set", "image.tag=9.9"), KIND)
    assert cr["metadata"]["namespace"] == "recs"
    assert validate(schema, cr) == []
    spec = parse_spec(cr["spec"])
    assert spec.image.reference == "streamrec:9.9"
    assert spec.training.window_size == 1_000_000 and isinstance(
        cr["spec"]["training"]["windowSize"], int
    )


def test_helm_example_defaults_mirror_the_operator_defaults(
    helm: str, schema: dict[str, Any]
) -> None:
    (cr,) = by_kind(template(helm, "--set", "example.enabled=true"), KIND)
    rendered = parse_spec(cr["spec"])
    minimal = parse_spec(
        {
            "image": cr["spec"]["image"],
            "kafka": {"bootstrapServers": cr["spec"]["kafka"]["bootstrapServers"]},
            "snapshots": {
                "bucket": cr["spec"]["snapshots"]["bucket"],
                "endpoint": cr["spec"]["snapshots"]["endpoint"],
                "credentialsSecret": cr["spec"]["snapshots"]["credentialsSecret"],
            },
        }
    )
    assert rendered == minimal


def test_helm_example_passes_feedback_weights_to_the_cr(helm: str, schema: dict[str, Any]
                                                        ) -> None:
    (cr,) = by_kind(template(helm, "--set", "example.enabled=true",
                             "--set", "example.model.feedbackWeights.purchase=8",
                             "--set", "example.model.feedbackWeights.refund=-2"), KIND)
    assert cr["spec"]["model"]["feedbackWeights"] == {"purchase": 8, "refund": -2}
    assert validate(schema, cr) == []
    assert dict(parse_spec(cr["spec"]).model.feedback_weights or ()) == {"purchase": 8.0,
                                                                         "refund": -2.0}


def test_helm_example_passes_the_write_token_choice_to_the_cr(
    helm: str, schema: dict[str, Any]
) -> None:
    ingress = ("--set", "example.enabled=true", "--set", "example.serving.ingress.enabled=true")
    (default,) = by_kind(template(helm, *ingress), KIND)
    # The generated template writes every example value (false here: writes need the token).
    assert default["spec"]["serving"]["ingress"].get("allowAnonymousWrites", False) is False
    assert not parse_spec(default["spec"]).serving.ingress.allow_anonymous_writes
    assert "ingestTokenSecret" not in default["spec"]["serving"]
    (open_writes,) = by_kind(template(
        helm, *ingress, "--set", "example.serving.ingress.allowAnonymousWrites=true"), KIND)
    assert open_writes["spec"]["serving"]["ingress"]["allowAnonymousWrites"] is True
    assert validate(schema, open_writes) == []
    assert parse_spec(open_writes["spec"]).serving.ingress.allow_anonymous_writes
    (own_secret,) = by_kind(template(
        helm, *ingress, "--set", "example.serving.ingestTokenSecret=my-token"), KIND)
    assert own_secret["spec"]["serving"]["ingestTokenSecret"] == "my-token"
    assert validate(schema, own_secret) == []
    assert parse_spec(own_secret["spec"]).serving.ingest_token_secret == "my-token"


def test_helm_refuses_an_example_without_kafka(helm: str) -> None:
    done = subprocess.run(
        [
            helm,
            "template",
            "rel",
            str(CHART),
            "--set",
            "example.enabled=true",
            "--set",
            "example.kafka.bootstrapServers=",
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0 and "example.kafka.bootstrapServers is required" in done.stderr


def test_every_helm_value_is_commented() -> None:
    """Each key has a comment line above it, except inside plain Kubernetes blocks."""
    opaque = {"resources", "podSecurityContext", "securityContext"}
    stack: list[tuple[int, str]] = []
    previous = ""
    for line in (CHART / "values.yaml").read_text().splitlines():
        match = re.match(r"^(\s*)([A-Za-z][\w.-]*):", line)
        if match:
            indent, key = len(match[1]), match[2]
            while stack and stack[-1][0] >= indent:
                stack.pop()
            inside_opaque = any(k in opaque for _, k in stack)
            assert inside_opaque or previous.lstrip().startswith("#"), f"{key} has no comment"
            stack.append((indent, key))
        if line.strip():
            previous = line


def test_the_crds_exclusive_bounds_are_booleans_as_openapi_v3_0_has_them() -> None:
    """The apiserver refuses a numeric exclusiveMinimum (JSON Schema's newer form) in a CRD:
    "cannot unmarshal number into ... exclusiveMinimum of type bool" (seen on the real node)."""
    def bounds(node: object) -> list[object]:
        if isinstance(node, dict):
            return [v for k, v in node.items() if k in ("exclusiveMinimum", "exclusiveMaximum")
                    ] + [b for v in node.values() for b in bounds(v)]
        if isinstance(node, list):
            return [b for v in node for b in bounds(v)]
        return []

    for path in (CRD_PATH, ROOT / "helm/streamrec/crds/recommenderservices.streamrec.io.yaml"):
        found = bounds(yaml.safe_load(path.read_text()))
        assert found and all(isinstance(b, bool) for b in found), path
