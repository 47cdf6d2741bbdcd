"""metrics-server on the real test node: the resource metrics API (``metrics.k8s.io``) that
HorizontalPodAutoscalers read CPU from.

It runs as a host process on the node's bridge address (like CoreDNS), built by
scripts/provision-metrics-server.sh, and is registered with the apiserver's aggregation layer:
a Service without a selector in ``kube-system``, its Endpoints naming the bridge address (the
endpoint-slice mirroring controller copies them), and the ``v1beta1.metrics.k8s.io``
APIService, whose CA bundle is the node's CA. The apiserver reaches it as the front proxy
(``front-proxy-client``, signed by a CA of its own, tests/infra/node.py); it scrapes the
kubelet's ``/metrics/resource`` with a client certificate of the node's CA (the kubelet takes
any, ``AlwaysAllow``).

A test turns it on (`MetricsServer.start`) only where it wants autoscaling: the earlier steps
of the real-node suite count their pods, and an HPA that could read CPU would move those
counts under their load. `stop` unregisters it and stops the process; the node's teardown
stops it too.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import nodeconf as conf
from .pki import Pair, issue
from .process import InfraError, ManagedProcess, free_port, provision, wait_until

if TYPE_CHECKING:
    from .node import RealCluster

API_SERVICE = "v1beta1.metrics.k8s.io"
NAMESPACE = "kube-system"
NAME = "metrics-server"
#: metrics-server's shortest resolution: the kubelet's CPU rate needs two scrapes.
RESOLUTION_S = 10


def _registration(port: int, ca: Path) -> list[dict[str, Any]]:
    """The Service, Endpoints and APIService that make the apiserver proxy
    ``/apis/metrics.k8s.io`` to ``<bridge>:port``."""
    meta = {"name": NAME, "namespace": NAMESPACE}
    return [
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port}]}},
        {"apiVersion": "v1", "kind": "Endpoints", "metadata": meta,
         "subsets": [{"addresses": [{"ip": conf.GATEWAY}],
                      "ports": [{"name": "https", "port": port}]}]},
        {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
         "metadata": {"name": API_SERVICE},
         "spec": {"service": {"name": NAME, "namespace": NAMESPACE, "port": 443},
                  "group": "metrics.k8s.io", "version": "v1beta1",
                  "caBundle": base64.b64encode(ca.read_bytes()).decode(),
                  "groupPriorityMinimum": 100, "versionPriority": 100}},
    ]


class MetricsServer:
    """metrics-server for ``cluster`` (a started `RealCluster`)."""

    def __init__(self, cluster: RealCluster) -> None:
        self.cluster = cluster
        self.binary = provision("metrics-server") / "metrics-server"
        self.proc: ManagedProcess | None = None
        self.port = 0

    def start(self, timeout: float = 180) -> None:
        """Start, register, and wait until the API serves the node's CPU; InfraError naming
        the cause (with the log tail) otherwise."""
        c = self.cluster
        assert c.ca is not None and c.front_proxy_ca is not None
        d = c.workdir / "pki"
        serving = issue(c.ca, d, "metrics-server", f"/CN={NAME}", server=True,
                        ips=(conf.GATEWAY,), dns=(f"{NAME}.{NAMESPACE}.svc",))
        kubelet_client = issue(c.ca, d, "metrics-server-kubelet-client", f"/CN={NAME}",
                               server=False)
        self.port = free_port()
        self.proc = ManagedProcess(NAME, self._argv(serving, kubelet_client, c.front_proxy_ca),
                                   c.workdir / "metrics-server.log")
        c.processes.append(self.proc)
        self.proc.start()
        try:
            self._apply(_registration(self.port, c.ca.cert))
            wait_until(self._serves_node_cpu, timeout, "metrics-server to serve the node's CPU")
        except TimeoutError as e:
            detail = f"{self.proc.log_tail()}\n{self._api_service_status()}"
            self.stop()  # an APIService with nothing behind it breaks API discovery
            raise InfraError(f"metrics-server: {e}\n{detail}") from e
        except BaseException:
            self.stop()
            raise

    def _argv(self, serving: Pair, kubelet_client: Pair, front_proxy_ca: Pair) -> list[str]:
        c = self.cluster
        assert c.ca is not None
        return [
            str(self.binary), f"--secure-port={self.port}", f"--bind-address={conf.GATEWAY}",
            f"--tls-cert-file={serving.cert}", f"--tls-private-key-file={serving.key}",
            f"--cert-dir={c.workdir / 'metrics-server-certs'}",
            f"--kubeconfig={c.kubeconfig}", f"--authentication-kubeconfig={c.kubeconfig}",
            f"--authorization-kubeconfig={c.kubeconfig}",
            f"--requestheader-client-ca-file={front_proxy_ca.cert}",
            "--requestheader-allowed-names=front-proxy-client",
            f"--kubelet-certificate-authority={c.ca.cert}",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP", "--kubelet-use-node-status-port",
            f"--metric-resolution={RESOLUTION_S}s", "--kubelet-request-timeout=5s",
        ]

    def _apply(self, objects: list[dict[str, Any]]) -> None:
        manifest = "\n---\n".join(json.dumps(o) for o in objects)
        proc = self.cluster.kubectl("apply", "-f", "-", check=False, input=manifest)
        if proc.returncode != 0:
            raise InfraError(f"metrics-server: registering it failed: {proc.stderr[-2000:]}")

    def _serves_node_cpu(self) -> bool:
        assert self.proc is not None
        if not self.proc.running:
            raise InfraError(f"metrics-server exited:\n{self.proc.log_tail()}")
        proc = self.cluster.kubectl("get", "--raw", "/apis/metrics.k8s.io/v1beta1/nodes",
                                    check=False)
        if proc.returncode != 0:
            return False
        items = json.loads(proc.stdout).get("items") or []
        return any(i.get("usage", {}).get("cpu") for i in items)

    def _api_service_status(self) -> str:
        proc = self.cluster.kubectl("get", "apiservice", API_SERVICE,
                                    "-o", "jsonpath={.status.conditions}", check=False)
        return f"APIService {API_SERVICE}: {proc.stdout or proc.stderr}"

    def stop(self) -> None:
        """Unregister (HPAs then report that they cannot read metrics) and stop the process;
        InfraError naming what could not be deleted (the process is stopped anyway)."""
        problems: list[str] = []
        try:
            for what in (["apiservice", API_SERVICE],
                         ["service,endpoints", NAME, "-n", NAMESPACE]):
                proc = self.cluster.kubectl("delete", *what, "--ignore-not-found",
                                            "--wait=false", check=False)
                if proc.returncode != 0:
                    problems.append(f"deleting {' '.join(what)}: {proc.stderr[-500:]}")
        finally:
            if self.proc is not None:
                self.proc.stop()
        if problems:
            raise InfraError("metrics-server: " + "; ".join(problems))
