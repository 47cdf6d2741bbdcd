"""Pod readiness on a real cluster, as the end-to-end tests see it (tests/e2e/)."""

from __future__ import annotations

from typing import Any

from kubernetes import client


def selector(labels: dict[str, str]) -> str:
    """A label selector string: ``{"a": "1", "b": "2"}`` -> ``"a=1,b=2"``."""
    return ",".join(f"{k}={v}" for k, v in labels.items())


def ready_pods(core: client.CoreV1Api, namespace: str, labels: dict[str, str]) -> list[Any]:
    """The pods with ``labels`` that run, are not being deleted and whose Ready condition is
    True (V1Pod objects)."""
    return [p for p in core.list_namespaced_pod(namespace, label_selector=selector(labels)).items
            if p.metadata.deletion_timestamp is None and p.status.phase == "Running"
            and any(c.type == "Ready" and c.status == "True"
                    for c in p.status.conditions or [])]


class ClusterClients:
    """``core`` and ``apps`` API clients of ``self.cluster`` (a tests.infra.node.RealCluster) and
    a checked ``kubectl``, for the e2e modules' dataclasses that hold one."""

    cluster: Any

    @property
    def core(self) -> client.CoreV1Api:
        return client.CoreV1Api(self.cluster.api_client())

    @property
    def apps(self) -> client.AppsV1Api:
        return client.AppsV1Api(self.cluster.api_client())

    def kubectl(self, *args: str) -> str:
        """``kubectl ARGS`` against the cluster; its stdout. Fails the test naming the command
        and its stderr on a non-zero exit."""
        out = self.cluster.kubectl(*args, check=False)
        assert out.returncode == 0, f"kubectl {' '.join(args)}: {out.stderr}"
        return str(out.stdout)
