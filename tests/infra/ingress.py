"""Traefik v3 as the real node's ingress controller, on the host with a kubeconfig.

Why on the host and not as a pod: the node's pods sit on the bridge ``streamrec0``
(tests/infra/nodeconf.py) and the host reaches their IPs directly, which is all Traefik's
Kubernetes Ingress provider needs (it routes to the EndpointSlices' pod IPs, not to ClusterIPs).
A pod would need an image built and pushed per cold cache (Traefik ships no image we can pull
here) and a hostPort or NodePort to reach it from the tests; on the host it is one process on a
free 127.0.0.1 port, started and ended like Kafka and MinIO. It watches the cluster through
``KUBECONFIG`` (Traefik's cluster-external client) with the admin credentials of the test
cluster; in a real cluster Traefik runs in-cluster with its chart's ClusterRole.

It serves Ingresses of the IngressClass ``traefik`` (controller ``traefik.io/ingress-controller``),
which :meth:`TraefikIngress.start` creates as Traefik's Helm chart does, and writes
``127.0.0.1`` into each served Ingress's status (``kubectl get ingress`` shows the ADDRESS).
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from .node import RealCluster
from .process import InfraError, ManagedProcess, free_port, provision

CLASS_NAME = "traefik"
CONTROLLER = "traefik.io/ingress-controller"


class TraefikIngress:
    """Start/stop Traefik for ``cluster``; requests go to ``http://127.0.0.1:<port>``."""

    def __init__(self, workdir: Path, cluster: RealCluster) -> None:
        self.binary = provision("traefik") / "bin" / "traefik"
        self.cluster = cluster
        self.port, self.ping_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        self.process = ManagedProcess(
            "traefik",
            [str(self.binary),
             "--global.checkNewVersion=false", "--global.sendAnonymousUsage=false",
             f"--entryPoints.web.address=127.0.0.1:{self.port}",
             # ping on its own entry point (Traefik's "traefik" one), never on the public one
             f"--entryPoints.traefik.address=127.0.0.1:{self.ping_port}", "--ping=true",
             "--providers.kubernetesIngress=true",
             f"--providers.kubernetesIngress.ingressClass={CLASS_NAME}",
             "--providers.kubernetesIngress.ingressEndpoint.ip=127.0.0.1",
             "--log.level=INFO", "--accessLog=false"],
            workdir / "traefik.log",
            env={"KUBECONFIG": str(cluster.kubeconfig)},
        )

    def start(self, timeout: float = 60.0) -> None:
        self._ingress_class()
        self.process.start()
        self.process.wait_ready(self._ready, timeout)

    def _ingress_class(self) -> None:
        doc = ('{"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", '
               f'"metadata": {{"name": "{CLASS_NAME}"}}, '
               f'"spec": {{"controller": "{CONTROLLER}"}}}}')
        out = self.cluster.kubectl("apply", "-f", "-", input=doc, check=False)
        if out.returncode != 0:
            raise InfraError(f"traefik: creating IngressClass {CLASS_NAME}: {out.stderr}")

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ping_port}/ping", timeout=2) as r:
            return bool(r.status == 200)

    def stop(self) -> None:
        self.process.stop()

    def log_tail(self) -> str:
        return self.process.log_tail()
