"""Serving groups in the operator: a Deployment, Service and HPA per group, the Ingress paths,
the forwarding URLs in the ConfigMap, stale children, the status over the groups, and the spec's
rules naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from tests.unit.test_operator_builders import NAME, NS, spec

from streamrec.core.groups import GroupLayout
from streamrec.operator.builders import (
    GROUP_LABEL,
    build_children,
    build_configmap,
    build_ingress,
    hpa_owned_fields,
    stale_serving,
)
from streamrec.operator.spec import InvalidSpec
from streamrec.operator.status import compute_status

SHARDED = spec(kafka__partitions=8, serving__groups=3,
               serving__autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 6},
               serving__ingress={"enabled": True, "path": "/recs"})


def _named(children: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {c["metadata"]["name"]: c for c in children if c["kind"] == kind}


def test_each_group_gets_its_deployment_service_and_hpa() -> None:
    children = build_children(NAME, NS, SHARDED)
    deployments = _named(children, "Deployment")
    assert set(deployments) == {"recs-trainer", "recs-serving-0", "recs-serving-1",
                                "recs-serving-2"}
    for g in range(3):
        d = deployments[f"recs-serving-{g}"]
        assert d["spec"]["selector"]["matchLabels"][GROUP_LABEL] == str(g)
        assert d["spec"]["template"]["metadata"]["labels"][GROUP_LABEL] == str(g)
        env = {e["name"]: e.get("value") for e in
               d["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["STREAMREC_SERVING_GROUP"] == str(g)
        assert d["spec"]["replicas"] == 2  # the HPA's minimum
        assert hpa_owned_fields(d, SHARDED) == (("spec", "replicas"),)
    services = _named(children, "Service")
    assert services["recs"]["spec"]["selector"].get(GROUP_LABEL) is None  # every group's pods
    for g in range(3):
        assert services[f"recs-group-{g}"]["spec"]["selector"][GROUP_LABEL] == str(g)
    hpas = _named(children, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in hpas.values()} == \
        {"recs-serving-0", "recs-serving-1", "recs-serving-2"}


def test_one_group_keeps_the_unsharded_names_and_labels() -> None:
    children = build_children(NAME, NS, spec())
    serving = _named(children, "Deployment")["recs-serving"]
    assert GROUP_LABEL not in serving["spec"]["selector"]["matchLabels"]
    assert set(_named(children, "Service")) == {"recs"}
    assert "STREAMREC_GROUP_URLS" not in build_configmap(NAME, NS, spec())["data"]


def test_the_configmap_carries_the_groups_their_urls_and_the_partition_count() -> None:
    data = build_configmap(NAME, NS, SHARDED)["data"]
    assert data["STREAMREC_SERVING_GROUPS"] == "3"
    assert data["STREAMREC_TOPIC_PARTITIONS"] == "8"
    assert data["STREAMREC_GROUP_URLS"] == \
        "http://recs-group-0,http://recs-group-1,http://recs-group-2"
    assert "STREAMREC_SERVING_GROUP" not in data  # per Deployment, not shared


def test_the_ingress_routes_each_groups_prefix_to_its_service() -> None:
    paths = build_ingress(NAME, NS, SHARDED)["spec"]["rules"][0]["http"]["paths"]
    routes = {p["path"]: p["backend"]["service"]["name"] for p in paths}
    assert routes == {"/recs": "recs", "/recs/groups/0": "recs-group-0",
                      "/recs/groups/1": "recs-group-1", "/recs/groups/2": "recs-group-2"}


def test_children_left_over_from_more_groups_or_from_one_are_stale() -> None:
    children = build_children(NAME, NS, SHARDED)
    live = {("apps/v1", "Deployment"): ["recs-serving", "recs-serving-0", "recs-serving-3"],
            ("v1", "Service"): ["recs", "recs-group-0", "recs-group-3"],
            ("autoscaling/v2", "HorizontalPodAutoscaler"): ["recs-serving", "recs-serving-1"]}
    assert stale_serving(children, live) == [
        ("apps/v1", "Deployment", "recs-serving"), ("apps/v1", "Deployment", "recs-serving-3"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "recs-serving"),
        ("v1", "Service", "recs-group-3")]
    one = build_children(NAME, NS, spec())  # autoscaling off: every serving HPA is stale
    assert stale_serving(one, live) == [
        ("apps/v1", "Deployment", "recs-serving-0"), ("apps/v1", "Deployment", "recs-serving-3"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "recs-serving"),
        ("autoscaling/v2", "HorizontalPodAutoscaler", "recs-serving-1"),
        ("v1", "Service", "recs-group-0"), ("v1", "Service", "recs-group-3")]


@pytest.mark.parametrize(("overrides", "field", "says"), [
    ({"serving__groups": 2}, "spec.kafka.partitions", "is required with spec.serving.groups 2"),
    ({"serving__groups": 4, "kafka__partitions": 3}, "spec.serving.groups",
     "must be at most spec.kafka.partitions (4 > 3)"),
    ({"serving__groups": 0}, "spec.serving.groups", ""),
    ({"serving__groups": 65, "kafka__partitions": 100}, "spec.serving.groups", ""),
])
def test_an_impossible_group_count_is_refused_naming_the_field(overrides: dict[str, Any],
                                                               field: str, says: str) -> None:
    with pytest.raises(InvalidSpec) as e:
        spec(**overrides)
    assert str(e.value).startswith(field) and says in str(e.value)


def _deployment(ready: int, desired: int = 2) -> dict[str, Any]:
    return {"metadata": {"generation": 1}, "spec": {"replicas": desired},
            "status": {"observedGeneration": 1, "readyReplicas": ready,
                       "updatedReplicas": desired, "replicas": desired}}


def _status(groups: list[dict[str, Any] | None]) -> dict[str, Any]:
    from streamrec.operator.status import SnapshotRead

    return compute_status(observed_generation=1, trainer=_deployment(1, 1), serving=groups[0],
                          serving_groups=groups, secret_issues=(),
                          snapshot=SnapshotRead(version="000000000001"), previous={},
                          now="2026-12-05T00:00:00Z")


def test_serving_is_ready_when_every_group_is_and_the_replicas_add_up() -> None:
    ready = _status([_deployment(2), _deployment(2), _deployment(2)])
    assert ready["phase"] == "Ready" and ready["servingReplicas"] == 6
    assert ready["servingGroups"] == 3
    one_short = _status([_deployment(2), _deployment(1), None])
    assert one_short["phase"] == "Progressing" and one_short["servingReplicas"] == 3
    serving = next(c for c in one_short["conditions"] if c["type"] == "ServingReady")
    assert serving["status"] == "False" and serving["reason"] == "RollingOut"
    assert "group 1: 1/2 replicas ready" in serving["message"]
    assert "group 2: the Deployment does not exist yet" in serving["message"]


def test_the_operators_layout_is_the_one_serving_computes() -> None:
    data = build_configmap(NAME, NS, SHARDED)["data"]
    layout = GroupLayout(int(data["STREAMREC_SERVING_GROUPS"]), 2,
                         int(data["STREAMREC_TOPIC_PARTITIONS"]))
    assert layout.owned == (2, 5)
    assert len(data["STREAMREC_GROUP_URLS"].split(",")) == layout.groups
