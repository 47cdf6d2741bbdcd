"""The builders turn a parsed spec into the children's manifests; we assert on the dicts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from streamrec.operator.builders import (
    CONFIG_HASH_ANNOTATION,
    build_children,
    build_configmap,
    build_hpa,
    build_ingress,
    build_service,
    build_serving_deployment,
    build_trainer_deployment,
    hpa_owned_fields,
    stale_serving,
    unwanted_children,
)
from streamrec.operator.diff import (
    APPLIED_HASH_ANNOTATION,
    first_difference,
    matches,
    with_applied_hash,
    with_live_values,
)
from streamrec.operator.spec import InvalidSpec, RecommenderSpec, parse_spec
from streamrec.settings.rows import SERVING_GRACEFUL_S

ROOT = Path(__file__).resolve().parents[2]
NAME, NS = "recs", "shop"


def spec(**overrides: Any) -> RecommenderSpec:
    raw: dict[str, Any] = {
        "image": {"repository": "registry.local/streamrec", "tag": "1.2.3"},
        "kafka": {"bootstrapServers": "kafka:9092"},
        "snapshots": {"bucket": "recs-bucket", "credentialsSecret": "s3-creds"},
    }
    for path, value in overrides.items():
        node = raw
        *parents, leaf = path.split("__")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return parse_spec(raw)


FULL = spec(
    serving__autoscaling={"enabled": True, "minReplicas": 3, "maxReplicas": 9},
    serving__ingress={"enabled": True, "host": "recs.example.com", "className": "nginx"},
)


def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return result


def test_children_are_configmap_deployments_and_service_by_default() -> None:
    kinds = [(c["kind"], c["metadata"]["name"]) for c in build_children(NAME, NS, spec())]
    assert kinds == [
        ("ConfigMap", "recs-config"),
        ("ConfigMap", "recs-placements"),
        ("Deployment", "recs-trainer"),
        ("Deployment", "recs-serving"),
        ("Service", "recs"),
    ]


def test_autoscaling_and_ingress_add_an_hpa_and_an_ingress() -> None:
    kinds = [c["kind"] for c in build_children(NAME, NS, FULL)]
    assert kinds[-2:] == ["HorizontalPodAutoscaler", "Ingress"]
    assert unwanted_children(NAME, FULL) == []
    assert unwanted_children(NAME, spec()) == [
        ("networking.k8s.io/v1", "Ingress", "recs"),
        ("v1", "Secret", "recs-ingest-token"),
    ]
    # The HPA goes with the serving children the spec no longer has (listed by label).
    live = {("autoscaling/v2", "HorizontalPodAutoscaler"): ["recs-serving"],
            ("apps/v1", "Deployment"): ["recs-serving"], ("v1", "Service"): ["recs"]}
    assert stale_serving(build_children(NAME, NS, FULL), live) == []
    assert stale_serving(build_children(NAME, NS, spec()), live) == [
        ("autoscaling/v2", "HorizontalPodAutoscaler", "recs-serving")]


def test_every_child_has_the_standard_labels_and_namespace() -> None:
    for child in build_children(NAME, NS, FULL):
        meta = child["metadata"]
        assert meta["namespace"] == NS
        assert meta["labels"]["app.kubernetes.io/name"] == "streamrec"
        assert meta["labels"]["app.kubernetes.io/instance"] == NAME
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "streamrec-operator"
        assert meta["labels"]["app.kubernetes.io/component"] in ("config", "placements", "trainer",
                                                                 "serving")


@pytest.mark.parametrize("build", [build_trainer_deployment, build_serving_deployment])
def test_pods_are_locked_down_and_bounded(build: Any) -> None:
    pod = pod_spec(build(NAME, NS, FULL))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]) == {"requests", "limits"}
    for bucket in container["resources"].values():
        assert {"cpu", "memory"} <= set(bucket)
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_trainer_is_a_single_recreated_replica_running_streamrec_trainer() -> None:
    dep = build_trainer_deployment(NAME, NS, FULL)
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    (container,) = pod_spec(dep)["containers"]
    assert container["args"] == ["trainer"]
    assert container["image"] == "registry.local/streamrec:1.2.3"
    assert container["ports"][0]["containerPort"] == 9100
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["resources"]["limits"] == {"cpu": "2", "memory": "4Gi"}


def test_serving_runs_streamrec_serve_on_8000_with_readyz_readiness() -> None:
    dep = build_serving_deployment(NAME, NS, spec(serving__replicas=4))
    assert dep["spec"]["replicas"] == 4
    (container,) = pod_spec(dep)["containers"]
    assert container["args"] == ["serve"]
    assert container["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert dep["spec"]["selector"]["matchLabels"] == {
        k: v
        for k, v in dep["spec"]["template"]["metadata"]["labels"].items()
        if k != "app.kubernetes.io/managed-by"
    }


def test_a_stopping_serving_pod_keeps_answering_while_its_endpoint_leaves_then_drains() -> None:
    default = pod_spec(build_serving_deployment(NAME, NS, spec()))
    (container,) = default["containers"]
    assert container["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    assert default["terminationGracePeriodSeconds"] == 5 + SERVING_GRACEFUL_S + 5
    longer = pod_spec(build_serving_deployment(
        NAME, NS, spec(serving__shutdownDelaySeconds=30)))
    assert longer["containers"][0]["lifecycle"]["preStop"]["sleep"]["seconds"] == 30
    assert longer["terminationGracePeriodSeconds"] == 30 + SERVING_GRACEFUL_S + 5
    none = pod_spec(build_serving_deployment(NAME, NS, spec(serving__shutdownDelaySeconds=0)))
    assert "lifecycle" not in none["containers"][0]
    assert none["terminationGracePeriodSeconds"] == SERVING_GRACEFUL_S + 5
    # The trainer has its own shutdown (a fit's grace), untouched.
    assert "lifecycle" not in pod_spec(build_trainer_deployment(NAME, NS, spec()))["containers"][0]


@pytest.mark.parametrize("value", [-1, 301, 2.5, "5"])
def test_a_shutdown_delay_out_of_range_is_refused_naming_the_field(value: Any) -> None:
    with pytest.raises(InvalidSpec, match="serving.shutdownDelaySeconds"):
        spec(serving__shutdownDelaySeconds=value)


def test_serving_is_created_at_min_replicas_and_then_keeps_the_hpas_count() -> None:
    dep = build_serving_deployment(NAME, NS, FULL)
    assert dep["spec"]["replicas"] == FULL.serving.autoscaling.min_replicas
    assert hpa_owned_fields(dep, FULL) == (("spec", "replicas"),)
    assert hpa_owned_fields(build_trainer_deployment(NAME, NS, FULL), FULL) == ()
    assert hpa_owned_fields(build_serving_deployment(NAME, NS, spec()), spec()) == ()


def test_a_patch_re_applies_the_live_replica_count_guarded_by_the_resource_version() -> None:
    dep = with_applied_hash(build_serving_deployment(NAME, NS, FULL))
    live = live_version(dep)
    (container,) = live["spec"]["template"]["spec"]["containers"]
    container["resources"]["limits"]["cpu"] = "1000m"  # serving's limit, canonical
    live["spec"]["replicas"] = 4
    live["metadata"]["resourceVersion"] = "812"
    out = with_live_values(dep, live, hpa_owned_fields(dep, FULL))
    assert out["spec"]["replicas"] == 4 and out["metadata"]["resourceVersion"] == "812"
    assert matches(out, live)  # an HPA's scaling alone is no reason to patch
    assert dep["spec"]["replicas"] == 3  # the desired object itself is untouched (minReplicas)


def test_configmap_holds_only_variables_of_the_configuration_contract() -> None:
    contract = (ROOT / "docs/configuration.md").read_text()
    documented = set(re.findall(r"`((?:STREAMREC|AWS)_[A-Z0-9_]+)`", contract))
    everything = spec(
        kafka__minWeight=3.0,
        kafka__dlqTopic="dead",
        kafka__itemsTopic="catalogue",
        kafka__notifyTopic="",
        kafka__securityProtocol="SASL_SSL",
        kafka__credentialsSecret="kafka-user",
        training__decayHalfLifeSeconds=3600,
        snapshots__endpoint="http://minio:9000",
        snapshots__region="eu-west-1",
    )
    data = build_configmap(NAME, NS, everything)["data"]
    assert set(data) <= documented, set(data) - documented
    assert all(isinstance(v, str) for v in data.values())
    assert data["STREAMREC_NOTIFY_TOPIC"] == ""
    assert data["STREAMREC_ITEMS_TOPIC"] == "catalogue"
    assert data["STREAMREC_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert data["STREAMREC_DECAY_HALF_LIFE"] == "3600.0"
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "STREAMREC_KAFKA_PASSWORD"} & set(
        data
    )


def test_configmap_maps_the_spec_to_the_contract() -> None:
    data = build_configmap(NAME, NS, spec(model__factors=32, snapshots__prefix="team/recs"))["data"]
    assert data["STREAMREC_FACTORS"] == "32"
    assert data["STREAMREC_REGULARIZATION"] == "0.05"
    assert data["STREAMREC_GROUP"] == "recs-trainer"
    assert data["STREAMREC_STORE"] == "s3://recs-bucket/team/recs"
    assert data["STREAMREC_BIND"] == "0.0.0.0:8000"
    assert data["STREAMREC_METRICS_PORT"] == "9100"
    assert "STREAMREC_S3_ENDPOINT" not in data and "STREAMREC_MIN_WEIGHT" not in data


def test_store_prefix_defaults_to_the_resource_name() -> None:
    assert build_configmap(NAME, NS, spec())["data"]["STREAMREC_STORE"] == "s3://recs-bucket/recs"


def test_credentials_reach_containers_only_as_secret_key_refs() -> None:
    sasl = spec(
        kafka__securityProtocol="SASL_SSL",
        kafka__credentialsSecret="kafka-user",
        serving__ingestTokenSecret="ingest",
    )
    for build in (build_trainer_deployment, build_serving_deployment):
        (container,) = pod_spec(build(NAME, NS, sasl))["containers"]
        assert container["envFrom"] == [{"configMapRef": {"name": "recs-config"}}]
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert all("value" not in e for e in container["env"])
        assert env["AWS_ACCESS_KEY_ID"] == {"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID"}
        assert env["AWS_SECRET_ACCESS_KEY"] == {"name": "s3-creds", "key": "AWS_SECRET_ACCESS_KEY"}
        assert env["STREAMREC_KAFKA_USERNAME"] == {"name": "kafka-user", "key": "username"}
        assert env["STREAMREC_KAFKA_PASSWORD"] == {"name": "kafka-user", "key": "password"}
        assert ("STREAMREC_INGEST_TOKEN" in env) == (build is build_serving_deployment)


def test_an_erasure_key_secret_reaches_the_trainer_and_serving_as_a_secret_key_ref() -> None:
    keyed = spec(snapshots__erasureKeySecret="erasure-key")
    for build in (build_trainer_deployment, build_serving_deployment):
        (container,) = pod_spec(build(NAME, NS, keyed))["containers"]
        env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
        assert env["STREAMREC_ERASURE_KEY"] == {"name": "erasure-key", "key": "erasureKey"}
        (plain,) = pod_spec(build(NAME, NS, spec()))["containers"]
        assert "STREAMREC_ERASURE_KEY" not in {e["name"] for e in plain["env"]}
    assert "STREAMREC_ERASURE_KEY" not in build_configmap(NAME, NS, keyed)["data"]


def test_plaintext_kafka_gets_no_kafka_credentials() -> None:
    (container,) = pod_spec(build_trainer_deployment(NAME, NS, spec()))["containers"]
    assert [e["name"] for e in container["env"]] == ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]


def test_a_config_change_rolls_both_deployments_and_nothing_else() -> None:
    before = {c["metadata"]["name"] + c["kind"]: c for c in build_children(NAME, NS, FULL)}
    changed = spec(
        model__factors=128,
        serving__autoscaling={"enabled": True, "minReplicas": 3, "maxReplicas": 9},
        serving__ingress={"enabled": True, "host": "recs.example.com", "className": "nginx"},
    )
    after = {c["metadata"]["name"] + c["kind"]: c for c in build_children(NAME, NS, changed)}
    differing = sorted(key for key in before if before[key] != after[key])
    assert differing == ["recs-configConfigMap", "recs-servingDeployment", "recs-trainerDeployment"]
    for key in ("recs-servingDeployment", "recs-trainerDeployment"):
        annotations = [
            d[key]["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
            for d in (before, after)
        ]
        assert annotations[0] != annotations[1]
        strip = [dict(d[key]) for d in (before, after)]
        for s in strip:
            s["spec"] = {**s["spec"], "template": {**s["spec"]["template"], "metadata": {}}}
        assert strip[0] == strip[1]


def test_builders_are_deterministic() -> None:
    assert build_children(NAME, NS, FULL) == build_children(NAME, NS, FULL)


def test_service_exposes_serving_http_on_port_80() -> None:
    svc = build_service(NAME, NS, FULL)
    assert svc["spec"]["selector"]["app.kubernetes.io/component"] == "serving"
    assert svc["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]


def test_hpa_targets_the_serving_deployment_on_cpu() -> None:
    hpa = build_hpa(NAME, NS, FULL)
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "recs-serving",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    target = hpa["spec"]["metrics"][0]["resource"]
    assert target == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}
    # Kubernetes' own scale-down window unless the resource says otherwise
    assert hpa["spec"]["behavior"] == {"scaleDown": {"stabilizationWindowSeconds": 300}}


def test_hpa_scales_down_after_the_window_the_resource_sets() -> None:
    quick = spec(serving__autoscaling={"enabled": True, "scaleDownStabilizationSeconds": 20})
    hpa = build_hpa(NAME, NS, quick)
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 20


def test_ingress_routes_the_host_and_path_to_the_service() -> None:
    ing = build_ingress(NAME, NS, FULL)
    assert ing["spec"]["ingressClassName"] == "nginx"
    (rule,) = ing["spec"]["rules"]
    assert rule["host"] == "recs.example.com"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    assert path["backend"] == {"service": {"name": "recs", "port": {"name": "http"}}}
    assert "tls" not in ing["spec"]


def test_ingress_with_tls_secret_terminates_tls_for_its_host() -> None:
    tls = spec(serving__ingress={"enabled": True, "host": "r.example.com", "tlsSecret": "r-tls"})
    ing = build_ingress(NAME, NS, tls)
    assert ing["spec"]["tls"] == [{"hosts": ["r.example.com"], "secretName": "r-tls"}]
    assert "ingressClassName" not in ing["spec"]


# diff: when is a live object "unchanged"?


def live_version(desired: dict[str, Any]) -> dict[str, Any]:
    """What the API server hands back: defaults added, quantities canonical, status and more."""
    import copy

    live = copy.deepcopy(desired)
    live["metadata"].update(uid="u-1", resourceVersion="7", generation=2)
    live["metadata"]["annotations"] = {
        **live["metadata"].get("annotations", {}),
        "deployment.kubernetes.io/revision": "2",
    }
    live["status"] = {"readyReplicas": 1}
    pod = live["spec"]["template"]["spec"]
    pod["dnsPolicy"] = "ClusterFirst"
    (container,) = pod["containers"]
    container["terminationMessagePath"] = "/dev/termination-log"
    container["livenessProbe"]["successThreshold"] = 1
    container["resources"]["limits"]["cpu"] = "2000m"
    return live


def test_a_live_object_with_server_defaults_matches_its_desired_form() -> None:
    desired = with_applied_hash(build_trainer_deployment(NAME, NS, FULL))
    assert matches(desired, live_version(desired))
    assert first_difference(desired, live_version(desired)) is None


def test_a_changed_desired_field_does_not_match() -> None:
    desired = with_applied_hash(build_trainer_deployment(NAME, NS, FULL))
    live = live_version(desired)
    live["spec"]["template"]["spec"]["containers"][0]["image"] = "other:1"
    assert not matches(desired, live)
    assert first_difference(desired, live) == ".spec.template.spec.containers"


def test_an_extra_list_element_does_not_match() -> None:
    desired = build_service(NAME, NS, FULL)
    live = live_version_of_service(desired)
    live["spec"]["ports"].append({"name": "debug", "port": 81})
    assert not matches(desired, live)


def live_version_of_service(desired: dict[str, Any]) -> dict[str, Any]:
    import copy

    live = copy.deepcopy(desired)
    live["spec"]["clusterIP"] = "10.0.0.7"
    live["spec"]["sessionAffinity"] = "None"
    return live


def test_quantities_compare_by_value_only_under_resources() -> None:
    assert matches(
        {"resources": {"limits": {"cpu": "0.5"}}}, {"resources": {"limits": {"cpu": "500m"}}}
    )
    assert not matches({"image": "1.0"}, {"image": "1"})
    assert not matches({"replicas": 1}, {"replicas": True})


def test_dropping_a_field_changes_the_applied_hash_so_the_child_is_reapplied() -> None:
    with_class = with_applied_hash(build_ingress(NAME, NS, FULL))
    without = with_applied_hash(
        build_ingress(
            NAME, NS, spec(serving__ingress={"enabled": True, "host": "recs.example.com"})
        )
    )
    assert "ingressClassName" not in without["spec"]
    hashes = [o["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] for o in (with_class, without)]
    assert hashes[0] != hashes[1]
    assert not matches(without, with_class)


def test_applied_hash_is_stable_and_ignores_a_previous_hash() -> None:
    once = with_applied_hash(build_service(NAME, NS, FULL))
    assert with_applied_hash(once) == once
