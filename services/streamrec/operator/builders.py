"""Pure builders: (name, namespace, parsed spec) -> manifests of a RecommenderService's children.

No I/O and no kopf here; handlers add owner references (``kopf.adopt``) and apply the result,
and unit tests assert on these dicts directly. Children: a ConfigMap holding the env-var
contract, a ConfigMap holding the placements (mounted in the serving pods and watched there,
so a change of ``spec.placements`` reaches them without a rollout), the trainer Deployment
(one replica, Recreate: two trainers would fight over the consumer group and the snapshot
store), the serving Deployment (one per serving group, ``core/groups.py``, each with its own
Service), the serving Service, and optionally an HPA (one per group), an Ingress, and the
generated write-token Secret (``build_token_secret``, which the handler creates once, apart
from the others: its token is random).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from streamrec.core.placements.spec import to_json as placements_json
from streamrec.operator.env import (
    INGEST_TOKEN_KEY,
    PLACEMENTS_DIR,
    PLACEMENTS_FILE,
    SERVING_PORT,
    TRAINER_METRICS_PORT,
    config_data,
    group_service_name,
    secret_env,
)
from streamrec.operator.spec import RecommenderSpec, Resources
from streamrec.operator.writeauth import generated_secret_name, generates_token
from streamrec.settings.rows import SERVING_GRACEFUL_S

APP = "streamrec"
MANAGER = "streamrec-operator"
CONFIG_HASH_ANNOTATION = "streamrec.io/config-hash"
RUN_AS = 10001  # the image's numeric non-root user (services/Dockerfile)
#: A serving group's pods (``core/groups.py``): its Deployment's selector and its Service's.
GROUP_LABEL = "streamrec.io/serving-group"


def labels(name: str, component: str) -> dict[str, str]:
    return {**selector_labels(name, component), "app.kubernetes.io/managed-by": MANAGER}


def selector_labels(name: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": APP,
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": component,
    }


def child_names(name: str) -> dict[str, str]:
    """Names of the children by role; the Service keeps the bare name clients will use."""
    return {
        "config": f"{name}-config",
        "placements": f"{name}-placements",
        "trainer": f"{name}-trainer",
        "serving": f"{name}-serving",
        "service": name,
        "hpa": f"{name}-serving",
        "ingress": name,
        "token": generated_secret_name(name),
    }


def serving_name(name: str, group: int | None) -> str:
    """The serving Deployment (and its HPA): ``<name>-serving`` with one group, else
    ``<name>-serving-<group>``."""
    return f"{name}-serving" if group is None else f"{name}-serving-{group}"


def serving_groups(spec: RecommenderSpec) -> list[int | None]:
    """The serving Deployments to build: [None] (one, unsharded) or each group's index."""
    return [None] if spec.serving.groups == 1 else list(range(spec.serving.groups))


def config_hash(data: dict[str, str]) -> str:
    """A short digest of the ConfigMap data; a change rolls the pods that load it."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _meta(name: str, namespace: str, component: str, child: str) -> dict[str, Any]:
    return {"name": child, "namespace": namespace, "labels": labels(name, component)}


def build_configmap(name: str, namespace: str, spec: RecommenderSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, namespace, "config", child_names(name)["config"]),
        "data": config_data(name, spec),
    }


def build_placements_configmap(name: str, namespace: str,
                               spec: RecommenderSpec) -> dict[str, Any]:
    """``spec.placements`` as the file serving watches (an empty list when none); not part
    of the config hash, so changing it rolls no pod."""
    placements = spec.placements.placements if spec.placements is not None else ()
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(name, namespace, "placements", child_names(name)["placements"]),
        "data": {PLACEMENTS_FILE: json.dumps(placements_json(placements), indent=1)},
    }


def _container(
    spec: RecommenderSpec,
    component: str,
    name: str,
    port: tuple[str, int],
    readiness_path: str,
    resources: Resources,
) -> dict[str, Any]:
    port_name, port_number = port
    return {
        "name": component,
        "image": spec.image.reference,
        "imagePullPolicy": spec.image.pull_policy,
        "args": ["trainer" if component == "trainer" else "serve"],
        "envFrom": [{"configMapRef": {"name": child_names(name)["config"]}}],
        "env": secret_env(name, spec, component),
        "ports": [{"name": port_name, "containerPort": port_number, "protocol": "TCP"}],
        "livenessProbe": {
            "httpGet": {"path": "/healthz", "port": port_name},
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "readinessProbe": {
            "httpGet": {"path": readiness_path, "port": port_name},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        # Loading a large snapshot can take a while; liveness waits until the process is up.
        "startupProbe": {
            "httpGet": {"path": "/healthz", "port": port_name},
            "periodSeconds": 5,
            "failureThreshold": 60,
        },
        "resources": resources.to_dict(),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }


def _pod_template(
    name: str, spec: RecommenderSpec, component: str, container: dict[str, Any]
) -> dict[str, Any]:
    port = container["ports"][0]["containerPort"]
    return {
        "metadata": {
            "labels": labels(name, component),
            "annotations": {
                CONFIG_HASH_ANNOTATION: config_hash(config_data(name, spec)),
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(port),
                "prometheus.io/path": "/metrics",
            },
        },
        "spec": {
            # The containers never call the Kubernetes API.
            "automountServiceAccountToken": False,
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": RUN_AS,
                "runAsGroup": RUN_AS,
                "fsGroup": RUN_AS,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            # The root filesystem is read-only; /tmp holds downloaded snapshots and scratch.
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def build_trainer_deployment(name: str, namespace: str, spec: RecommenderSpec) -> dict[str, Any]:
    container = _container(
        spec,
        "trainer",
        name,
        ("metrics", TRAINER_METRICS_PORT),
        # The trainer has no /readyz: it is ready as soon as it is alive.
        "/healthz",
        spec.training.resources,
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, "trainer", child_names(name)["trainer"]),
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(name, "trainer")},
            "template": _pod_template(name, spec, "trainer", container),
        },
    }


def build_serving_deployment(
    name: str, namespace: str, spec: RecommenderSpec, group: int | None = None
) -> dict[str, Any]:
    """The serving Deployment; ``group``: serving group ``group``'s (its pods carry
    `GROUP_LABEL` and ``STREAMREC_SERVING_GROUP``; the main Service selects every group's)."""
    container = _container(
        spec, "serving", name, ("http", SERVING_PORT), "/readyz", spec.serving.resources
    )
    selector = selector_labels(name, "serving")
    template = _pod_template(name, spec, "serving", container)
    meta = _meta(name, namespace, "serving", serving_name(name, group))
    if group is not None:
        selector[GROUP_LABEL] = str(group)
        template["metadata"]["labels"][GROUP_LABEL] = str(group)
        meta["labels"][GROUP_LABEL] = str(group)
        container["env"].append({"name": "STREAMREC_SERVING_GROUP", "value": str(group)})
    body: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "selector": {"matchLabels": selector},
            "template": template,
        },
    }
    # With an HPA the replica count is the HPA's. The Deployment is created at minReplicas, the
    # count the HPA keeps until load says otherwise (created without it, the API's default of 1
    # would be raised by the HPA at once: a write and a scale-up right after every create), and
    # afterwards the operator only ever re-applies the live count (HPA_OWNED_FIELDS, kube.apply).
    scaling = spec.serving.autoscaling
    body["spec"]["replicas"] = scaling.min_replicas if scaling.enabled else spec.serving.replicas
    _drain_before_stopping(body["spec"]["template"], spec.serving.shutdown_delay_seconds)
    _mount_placements(name, body["spec"]["template"])
    return body


def _mount_placements(name: str, template: dict[str, Any]) -> None:
    """The placements ConfigMap as a read-only volume, watched by serving
    (``serving/placements/book.py``); ``STREAMREC_PLACEMENTS`` names its file
    (``env.config_data``: a constant, so the config hash does not move). The kubelet refreshes
    a mounted ConfigMap within its sync period (about a minute by default)."""
    pod = template["spec"]
    pod["volumes"].append({"name": "placements",
                           "configMap": {"name": child_names(name)["placements"]}})
    container = pod["containers"][0]
    container["volumeMounts"].append({"name": "placements", "mountPath": PLACEMENTS_DIR,
                                      "readOnly": True})


def _drain_before_stopping(template: dict[str, Any], delay: int) -> None:
    """A serving pod being deleted (a rollout, a scale-down) keeps answering for ``delay``
    seconds (a preStop sleep: the kubelet's own, no binary in the image) while its endpoint
    leaves the Service and the Ingress; only then does gunicorn get SIGTERM, stop accepting and
    let in-flight requests finish (``SERVING_GRACEFUL_S``). Without it, the connections that
    kube-proxy or Traefik still send to the pod in that interval are refused or reset (25 of
    618 requests in a rollout on the real node). The grace period covers both, plus 5 s."""
    pod = template["spec"]
    if delay > 0:
        pod["containers"][0]["lifecycle"] = {"preStop": {"sleep": {"seconds": delay}}}
    pod["terminationGracePeriodSeconds"] = delay + SERVING_GRACEFUL_S + 5


def hpa_owned_fields(
    child: Mapping[str, Any], spec: RecommenderSpec
) -> tuple[tuple[str, ...], ...]:
    """Paths of ``child`` whose live value wins over the desired one: ``spec.replicas`` of the
    serving Deployment while an HPA scales it. Empty for every other child."""
    if (spec.serving.autoscaling.enabled and child.get("kind") == "Deployment"
            and child["metadata"]["labels"].get("app.kubernetes.io/component") == "serving"):
        return (("spec", "replicas"),)
    return ()


def build_service(
    name: str, namespace: str, spec: RecommenderSpec, group: int | None = None
) -> dict[str, Any]:
    """The serving Service: ``<name>``, every serving pod (any group answers any user); with
    ``group``, that serving group's own Service ``<name>-group-<g>``, where the other groups
    forward its users' requests (``STREAMREC_GROUP_URLS``) and its Ingress path routes."""
    selector = selector_labels(name, "serving")
    meta = _meta(name, namespace, "serving", child_names(name)["service"] if group is None
                 else group_service_name(name, group))
    if group is not None:
        selector[GROUP_LABEL] = meta["labels"][GROUP_LABEL] = str(group)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def build_hpa(
    name: str, namespace: str, spec: RecommenderSpec, group: int | None = None
) -> dict[str, Any]:
    """The serving Deployment's HPA (``group``: that group's; each group scales apart)."""
    scaling = spec.serving.autoscaling
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(name, namespace, "serving", serving_name(name, group)),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": serving_name(name, group),
            },
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling.target_cpu_utilization_percentage,
                        },
                    },
                }
            ],
            "behavior": {"scaleDown": {
                "stabilizationWindowSeconds": scaling.scale_down_stabilization_seconds}},
        },
    }


def build_ingress(name: str, namespace: str, spec: RecommenderSpec) -> dict[str, Any]:
    """The Ingress: ``path`` to the serving Service (any group answers any user); with serving
    groups also ``<path>groups/<g>`` to group g's Service, which serving strips
    (``serving/groups/prefix.py``): a client that computes the user's group skips the hop."""
    ing = spec.serving.ingress
    paths: list[dict[str, Any]] = [
        {
            "path": ing.path,
            "pathType": "Prefix",
            "backend": {
                "service": {"name": child_names(name)["service"], "port": {"name": "http"}}
            },
        }
    ]
    for group in serving_groups(spec):
        if group is not None:
            paths.append({
                "path": f"{ing.path.rstrip('/')}/groups/{group}",
                "pathType": "Prefix",
                "backend": {"service": {"name": group_service_name(name, group),
                                        "port": {"name": "http"}}},
            })
    rule: dict[str, Any] = {"http": {"paths": paths}}
    if ing.host is not None:
        rule["host"] = ing.host
    body: dict[str, Any] = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": _meta(name, namespace, "serving", child_names(name)["ingress"]),
        "spec": {"rules": [rule]},
    }
    if ing.class_name is not None:
        body["spec"]["ingressClassName"] = ing.class_name
    if ing.tls_secret is not None:
        body["spec"]["tls"] = [{"hosts": [ing.host], "secretName": ing.tls_secret}]
    return body


def build_token_secret(name: str, namespace: str, token: str) -> dict[str, Any]:
    """The generated write-token Secret (``streamrec.operator.writeauth``): ``token`` under key
    ``token``. Created once, never patched: the handler passes a fresh random token only when the
    Secret does not exist. The caller adds the owner reference."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(name, namespace, "ingest-token", child_names(name)["token"]),
        "data": {INGEST_TOKEN_KEY: base64.b64encode(token.encode("utf-8")).decode("ascii")},
    }


def build_children(name: str, namespace: str, spec: RecommenderSpec) -> list[dict[str, Any]]:
    """Every child the spec asks for, ConfigMap first so pods never start without it."""
    groups = serving_groups(spec)
    children = [
        build_configmap(name, namespace, spec),
        build_placements_configmap(name, namespace, spec),
        build_trainer_deployment(name, namespace, spec),
        *(build_serving_deployment(name, namespace, spec, g) for g in groups),
        build_service(name, namespace, spec),
        *(build_service(name, namespace, spec, g) for g in groups if g is not None),
    ]
    if spec.serving.autoscaling.enabled:
        children.extend(build_hpa(name, namespace, spec, g) for g in groups)
    if spec.serving.ingress.enabled:
        children.append(build_ingress(name, namespace, spec))
    return children


#: The kinds of serving children whose count follows ``spec.serving.groups``.
SERVING_KINDS = (("apps/v1", "Deployment"), ("v1", "Service"),
                 ("autoscaling/v2", "HorizontalPodAutoscaler"))


def stale_serving(
    children: list[dict[str, Any]], live: Mapping[tuple[str, str], list[str]]
) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of the live serving children (``live``: names by
    (apiVersion, kind), listed by this instance's serving labels) that ``children`` no longer
    holds: a group removed, the unsharded Deployment after sharding, or the groups' after
    going back to one, an HPA after autoscaling is switched off."""
    wanted = {(c["apiVersion"], c["kind"], c["metadata"]["name"]) for c in children}
    return [(api, kind, n) for (api, kind), names in sorted(live.items()) for n in sorted(names)
            if (api, kind, n) not in wanted]


def unwanted_children(name: str, spec: RecommenderSpec) -> list[tuple[str, str, str]]:
    """(apiVersion, kind, name) of the optional children the spec no longer asks for."""
    names = child_names(name)
    unwanted = []
    if not spec.serving.ingress.enabled:
        unwanted.append(("networking.k8s.io/v1", "Ingress", names["ingress"]))
    if not generates_token(spec):
        unwanted.append(("v1", "Secret", names["token"]))
    return unwanted
