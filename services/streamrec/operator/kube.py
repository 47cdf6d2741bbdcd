"""The operator's Kubernetes I/O: read, apply and delete children, addressed by REST path.

One small generic client instead of four typed API classes: every child kind maps to a path,
reads return plain dicts (what the builders produce and the tests compare), and writes use
server-side apply with one field manager, so the API server merges our fields with the ones
other controllers own (the HPA's replica count, defaults) and drops fields we stop applying.
``apply`` writes nothing when the live object already matches, which is what keeps a restart
of the operator free of patches.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from kubernetes import client, config

from streamrec.operator.builders import MANAGER
from streamrec.operator.diff import matches, with_live_values
from streamrec.operator.spec import GROUP, KIND, PLURAL, VERSION

Outcome = Literal["created", "patched", "unchanged"]

_PLURALS = {
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("apps/v1", "Deployment"): "deployments",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscalers",
    ("networking.k8s.io/v1", "Ingress"): "ingresses",
    (f"{GROUP}/{VERSION}", KIND): PLURAL,
}
REQUEST_TIMEOUT_SECONDS = 30


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    """REST path of one namespaced object, e.g. ``/apis/apps/v1/namespaces/ns/deployments/x``."""
    group = "api" if "/" not in api_version else "apis"
    plural = _PLURALS[(api_version, kind)]
    return f"/{group}/{api_version}/namespaces/{namespace}/{plural}/{name}"


class Kube:
    """Reads and writes children through one configured ``kubernetes.client.ApiClient``."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    @classmethod
    def from_environment(cls) -> Kube:
        """In-cluster service-account credentials, else ``$KUBECONFIG`` / ``~/.kube/config``."""
        configuration = client.Configuration()
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            # Pass $KUBECONFIG explicitly: the client reads it only once, at import time.
            config.load_kube_config(
                config_file=os.environ.get("KUBECONFIG"), client_configuration=configuration
            )
        return cls(client.ApiClient(configuration))

    def _call(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Sequence[tuple[str, str]] = (),
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        response = self.api.call_api(
            path,
            method,
            query_params=list(query),
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
            _preload_content=False,
            _return_http_data_only=True,
            _request_timeout=REQUEST_TIMEOUT_SECONDS,
        )
        data: dict[str, Any] = json.loads(response.data or b"{}")
        return data

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The live object, or None if it does not exist."""
        try:
            return self._call("GET", object_path(api_version, kind, namespace, name))
        except client.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def names(
        self, api_version: str, kind: str, namespace: str, labels: Mapping[str, str]
    ) -> list[str]:
        """Names of the objects of ``kind`` in ``namespace`` that carry every one of
        ``labels`` (a label selector)."""
        collection = object_path(api_version, kind, namespace, "_").rsplit("/", 1)[0]
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        listed = self._call("GET", collection, query=[("labelSelector", selector)])
        return [item["metadata"]["name"] for item in listed.get("items") or []]

    def apply(self, obj: Mapping[str, Any], keep_live: Sequence[tuple[str, ...]] = ()) -> Outcome:
        """Create ``obj`` if missing, patch it if a desired field differs, else do nothing.

        ``keep_live``: paths whose live value is re-applied instead of ours (``spec.replicas``
        of a Deployment an HPA scales), so a patch never changes them. Such a patch carries the
        live ``resourceVersion``: if the HPA scaled in between, the API server answers 409 and
        the caller retries with the new count, instead of this write undoing the scaling.
        """
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        live = self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if live is not None and keep_live:
            obj = with_live_values(obj, live, keep_live)
        if live is not None and matches(obj, live):
            return "unchanged"
        self._call(
            "PATCH",
            path,
            body=obj,
            query=[("fieldManager", MANAGER), ("force", "true")],
            content_type="application/apply-patch+yaml",
        )
        return "created" if live is None else "patched"

    def create_if_absent(self, obj: Mapping[str, Any]) -> bool:
        """Create ``obj`` unless an object of that name exists; True if this call created it.

        For the generated token Secret: it is never patched (a new random token on every
        reconcile would roll the pods), so a create that meets 409 Conflict is the normal case.
        """
        meta = obj["metadata"]
        path = object_path(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        if self.get(obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]) is not None:
            return False
        try:
            self._call("POST", path.rsplit("/", 1)[0], body=obj,
                       query=[("fieldManager", MANAGER)])
        except client.ApiException as exc:
            if exc.status == 409:  # created in between (another reconcile)
                return False
            raise
        return True

    def patch_status(
        self, api_version: str, kind: str, namespace: str, name: str, status: Mapping[str, Any]
    ) -> None:
        """Merge ``status`` into the object's status subresource (JSON merge patch, RFC 7386:
        keys given replace theirs, keys not given stay). Raises ``ApiException`` (404 if the
        object is gone)."""
        self._call(
            "PATCH",
            object_path(api_version, kind, namespace, name) + "/status",
            body={"status": dict(status)},
            content_type="application/merge-patch+json",
        )

    def delete_owned(
        self, api_version: str, kind: str, namespace: str, name: str, owner_uid: str
    ) -> bool:
        """Delete an object only if ``owner_uid`` owns it; True if it was deleted."""
        live = self.get(api_version, kind, namespace, name)
        owners = (live or {}).get("metadata", {}).get("ownerReferences") or []
        if live is None or not any(ref.get("uid") == owner_uid for ref in owners):
            return False
        uid = live["metadata"]["uid"]
        try:
            self._call(
                "DELETE",
                object_path(api_version, kind, namespace, name),
                body={"preconditions": {"uid": uid}, "propagationPolicy": "Background"},
            )
        except client.ApiException as exc:
            if exc.status in (404, 409):  # gone already, or replaced by another object
                return False
            raise
        return True

