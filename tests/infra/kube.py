"""A real Kubernetes control plane on 127.0.0.1, envtest style, plus the parts that make it act.

etcd + kube-apiserver give a real API (CRDs, RBAC, admission, dry-run). kube-controller-manager
turns Deployments into ReplicaSets and Pods and runs owner-reference garbage collection;
kube-scheduler binds Pods to a node; kwok plays the kubelet for a fake node, so Pods turn
Running/Ready without containers. All are built from source by scripts/provision-kube.sh.
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from .process import InfraError, ManagedProcess, free_port, provision, wait_until

NODE_NAME = "kwok-node-0"

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: streamrec-test
  cluster:
    server: {server}
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: {token}
contexts:
- name: streamrec-test
  context: {{cluster: streamrec-test, user: admin}}
current-context: streamrec-test
"""


class KubeCluster:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok, started in order."""

    def __init__(self, workdir: Path) -> None:
        home = provision("kube")
        self.bin = home / "bin"
        self.stages = home / "kwok-stages"
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        self.secure_port = free_port()
        self.server = f"https://127.0.0.1:{self.secure_port}"
        self.kubeconfig = str(workdir / "kubeconfig")
        Path(self.kubeconfig).write_text(KUBECONFIG.format(server=self.server, token=self.token))
        (workdir / "tokens.csv").write_text(f'{self.token},admin,admin,"system:masters"\n')
        self._make_service_account_keys()
        self.processes: list[ManagedProcess] = []

    def _make_service_account_keys(self) -> None:
        key, pub = self.workdir / "sa.key", self.workdir / "sa.pub"
        if key.exists():
            return
        for argv in (["openssl", "genrsa", "-out", str(key), "2048"],
                     ["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)]):
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            if proc.returncode != 0:
                raise InfraError(f"kube: cannot create service-account keys: {proc.stderr}")

    def _proc(self, name: str, *argv: str) -> ManagedProcess:
        p = ManagedProcess(name, [str(self.bin / name), *argv], self.workdir / f"{name}.log")
        self.processes.append(p)
        p.start()
        return p

    def start(self) -> None:
        w = self.workdir
        etcd_port = self._start_etcd()
        self._start_apiserver(
            etcd_port, f"--cert-dir={w / 'certs'}", "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1", "--service-cluster-ip-range=10.96.0.0/16",
            "--disable-admission-plugins=ServiceAccount", "--authorization-mode=RBAC",
            f"--service-account-issuer=https://127.0.0.1:{self.secure_port}",
        )
        # kwok renews the fake node's lease; on a loaded 2-core machine (the real-node e2e session
        # beside this one) a renewal can come later than the default 50 s grace period. The node
        # lifecycle controller then marks the node NotReady and sets every pod on it Ready=False,
        # and kwok, whose stages already ran, never sets them Ready again: Deployments stay
        # unavailable for good (the cause of the SIGKILL operator test's "not Ready within
        # 240 s", seen in kube-controller-manager.log as "all Nodes are not-Ready"). The fake
        # node's health is not under test, so the grace period is an hour.
        self._start_controllers("--node-monitor-grace-period=1h")
        stage_args = [a for f in sorted(self.stages.glob("*.yaml")) for a in ("--config", str(f))]
        self._proc(
            "kwok", f"--kubeconfig={self.kubeconfig}", "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            f"--server-address=127.0.0.1:{free_port()}", "--cidr=10.244.0.0/16",
            "--node-ip=127.0.0.1", *stage_args,
        )
        self._create_node()
        for p in self.processes:
            if not p.running:
                raise InfraError(f"{p.name} exited during start-up:\n{p.log_tail()}")

    def _start_etcd(self) -> int:
        """etcd on 127.0.0.1 (no fsync: test data); its client port once healthy."""
        etcd_port, peer_port = free_port(), free_port()
        etcd = self._proc(
            "etcd", "--data-dir", str(self.workdir / "etcd"), "--name", "default",
            "--listen-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_port}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
            "--initial-cluster", f"default=http://127.0.0.1:{peer_port}",
            "--unsafe-no-fsync", "--log-level", "warn",
        )
        etcd.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{etcd_port}/health"), 60)
        return etcd_port

    def _start_apiserver(self, etcd_port: int, *args: str) -> None:
        """kube-apiserver with token auth and service-account keys, plus ``args``."""
        w = self.workdir
        api = self._proc(
            "kube-apiserver", f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            f"--secure-port={self.secure_port}", "--allow-privileged=true",
            f"--token-auth-file={w / 'tokens.csv'}",
            f"--service-account-key-file={w / 'sa.pub'}",
            f"--service-account-signing-key-file={w / 'sa.key'}", *args,
        )
        api.wait_ready(lambda: _http_ok(f"{self.server}/readyz", self.token), 180)

    def _start_controllers(self, *kcm_args: str) -> None:
        """kube-controller-manager (plus ``kcm_args``) and kube-scheduler, admin kubeconfig."""
        w = self.workdir
        auth = (f"--kubeconfig={self.kubeconfig}", f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}", "--leader-elect=false",
                "--bind-address=127.0.0.1")
        self._proc(
            "kube-controller-manager", *auth, f"--secure-port={free_port()}",
            f"--service-account-private-key-file={w / 'sa.key'}",
            "--use-service-account-credentials=false", "--concurrent-gc-syncs=5",
            f"--cert-dir={w / 'kcm-certs'}", *kcm_args,
        )
        self._proc("kube-scheduler", *auth, f"--secure-port={free_port()}",
                   f"--cert-dir={w / 'sched-certs'}")

    def _create_node(self) -> None:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        node = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": NODE_NAME, "labels": {"type": "kwok", "kubernetes.io/os": "linux"},
                         "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "status": {"allocatable": {"cpu": "64", "memory": "256Gi", "pods": "250"},
                       "capacity": {"cpu": "64", "memory": "256Gi", "pods": "250"}},
        }
        core.create_node(node)

        def node_ready() -> bool:
            n = core.read_node(NODE_NAME)
            return any(c.type == "Ready" and c.status == "True"
                       for c in (n.status.conditions or []))

        try:
            wait_until(node_ready, 60, "the kwok node to turn Ready")
        except TimeoutError as e:
            raise InfraError(f"kube: {e}\n{self.log_tail('kwok')}") from e

    def api_client(self) -> Any:
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=self.kubeconfig, client_configuration=cfg)
        return client.ApiClient(cfg)

    def kubectl(self, *args: str, check: bool = True,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            check=check, text=True, capture_output=True, timeout=120, input=input,
        )

    def namespace(self) -> str:
        from kubernetes import client

        name = f"t-{uuid.uuid4().hex[:10]}"
        client.CoreV1Api(self.api_client()).create_namespace({"metadata": {"name": name}})
        return name

    def stop(self) -> None:
        for p in reversed(self.processes):
            p.stop()

    def log_tail(self, name: str | None = None) -> str:
        return "\n".join(p.log_tail() for p in self.processes if name in (None, p.name))


def _http_ok(url: str, token: str | None = None) -> bool:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    ctx = ssl._create_unverified_context()  # the apiserver's self-signed test certificate
    with urllib.request.urlopen(req, timeout=2, context=ctx) as r:
        return bool(r.status == 200)
