"""A real single-node Kubernetes cluster on this machine: real pods, Services, DNS.

`RealCluster` starts, in order, each failing loudly with its name and log tail:

1. the bridge ``streamrec0`` with the node's own test subnet (tests/infra/nodeconf.py);
2. etcd, kube-apiserver (Node + RBAC authorization, ServiceAccount tokens, serving and
   kubelet-client certificates from tests/infra/pki.py), kube-controller-manager, kube-scheduler;
3. containerd (its own config, socket, root and state), with the local pause image imported;
4. the kubelet and kube-proxy (iptables mode), then CoreDNS on the bridge address as cluster DNS.

Images named without a registry (``streamrec:0.1.0`` = ``docker.io/library/streamrec:0.1.0``)
are pulled from the local test registry: containerd's hosts.toml makes it docker.io's only
server (`RealCluster(registry=...)`; the caller pushes to ``<registry>/library/...``).

`stop()` leaves the host as it was: every pod is deleted through the API (so the kubelet tears
sandboxes and CNI down itself), then the daemons stop, ``kube-proxy --cleanup`` removes its
rules, and tests/infra/hostclean.py unmounts, removes the ``kubepods`` cgroups, the kubelet's
iptables canaries and the bridge; whatever still differs is an error naming it. One node runs at
a time on a machine (an flock): a second waits up to 20 minutes, then fails naming the lock.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from . import nodeconf as conf
from .hostclean import HostState, differences, undo
from .kube import KubeCluster, _http_ok
from .metrics import MetricsServer
from .pki import Pair, issue, make_ca
from .process import InfraError, ManagedProcess, free_port, provision, wait_until

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: streamrec-node
  cluster: {{server: "{server}", certificate-authority: "{ca}"}}
users:
- name: {user}
  user: {{token: "{token}"}}
contexts:
- name: streamrec-node
  context: {{cluster: streamrec-node, user: {user}}}
current-context: streamrec-node
"""

LOCK_TIMEOUT_S = 1200


def node_image(registry: Any, pushed: str) -> str:
    """Make the pushed ``<registry>/streamrec:<tag>`` also ``<registry>/library/streamrec:<tag>``,
    which is where the node finds what the manifests call ``streamrec:<tag>``
    (docker.io/library/streamrec). Returns that reference."""
    repository, tag = pushed.split("/", 1)[1].rsplit(":", 1)
    return str(registry.copy(repository, tag, f"library/{repository}"))


class RealCluster(KubeCluster):
    """The control plane of `KubeCluster` plus a real node instead of kwok's fake one."""

    def __init__(self, workdir: Path, registry: str | None = None) -> None:
        super().__init__(workdir)
        self.registry = registry
        self.paths = conf.NodePaths(workdir / "node")
        self.coredns_bin = provision("coredns") / "bin" / "coredns"
        pause = provision("node")
        self.pause_tar = pause / "pause.tar"
        self.pause_ref = (pause / "pause.ref").read_text().strip()
        self.server = f"https://{conf.GATEWAY}:{self.secure_port}"
        self.node_name = conf.NODE_NAME
        self._lock_fd: int | None = None
        self._before: HostState | None = None
        self.ca: Pair | None = None
        #: Signs the apiserver's identity as the aggregation layer's front proxy
        #: (``front-proxy-client``), what an aggregated API such as metrics-server trusts.
        self.front_proxy_ca: Pair | None = None
        self.timings: dict[str, float] = {}

    # -- start ------------------------------------------------------------------------------

    def start(self) -> None:
        t0 = time.monotonic()
        self._lock()
        self._before = HostState.capture()
        if self._before.bridge:
            raise InfraError(f"node: the bridge {conf.BRIDGE} already exists (another node, or "
                             f"one a killed session left: `ip link del {conf.BRIDGE}`)")
        self._bridge()
        self._pki()
        self._control_plane()
        self._containerd()
        self._kubelet()
        self._kube_proxy()
        self._coredns()
        self.timings["cluster_start_s"] = time.monotonic() - t0

    def _lock(self) -> None:
        cache = Path(os.environ.get("STREAMREC_CACHE", Path.home() / ".cache/streamrec"))
        cache.mkdir(parents=True, exist_ok=True)
        fd = os.open(cache / ".node.run.lock", os.O_CREAT | os.O_RDWR, 0o644)
        deadline = time.monotonic() + LOCK_TIMEOUT_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise InfraError(f"node: another test node holds {cache}/.node.run.lock "
                                     f"for over {LOCK_TIMEOUT_S}s") from None
                time.sleep(2)
        self._lock_fd = fd

    def _sh(self, what: str, *argv: str, timeout: float = 120) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise InfraError(f"node: {what} failed ({' '.join(argv)}): {proc.stderr[-2000:]}")
        return proc.stdout

    def _bridge(self) -> None:
        self._sh("bridge", "ip", "link", "add", conf.BRIDGE, "type", "bridge")
        self._sh("bridge", "ip", "addr", "add", f"{conf.GATEWAY}/24", "dev", conf.BRIDGE)
        self._sh("bridge", "ip", "link", "set", conf.BRIDGE, "up")

    def _pki(self) -> None:
        d = self.workdir / "pki"
        self.ca = ca = make_ca(d)
        self.apiserver_cert = issue(
            ca, d, "apiserver", "/CN=kube-apiserver", server=True,
            ips=(conf.GATEWAY, "127.0.0.1", conf.KUBERNETES_SERVICE_IP),
            dns=("kubernetes", "kubernetes.default", "kubernetes.default.svc",
                 f"kubernetes.default.svc.{conf.CLUSTER_DOMAIN}", "localhost"))
        self.kubelet_cert = issue(ca, d, "kubelet", f"/CN={self.node_name}", server=True,
                                  ips=(conf.GATEWAY,), dns=(self.node_name,))
        # The apiserver's identity towards the kubelet (logs, exec, port-forward).
        self.kubelet_client = issue(ca, d, "apiserver-kubelet-client",
                                    "/O=system:masters/CN=kube-apiserver-kubelet-client",
                                    server=False)
        # The aggregation layer (tests/infra/metrics.py): a CA of its own, as Kubernetes asks.
        self.front_proxy_ca = make_ca(d / "front-proxy")
        self.front_proxy_client = issue(self.front_proxy_ca, d, "front-proxy-client",
                                        "/CN=front-proxy-client", server=False)
        self.tokens = {user: os.urandom(16).hex() for user in ("kubelet", "proxy")}
        with open(self.workdir / "tokens.csv", "a") as f:
            f.write(f'{self.tokens["kubelet"]},system:node:{self.node_name},node,"system:nodes"\n')
            f.write(f'{self.tokens["proxy"]},system:kube-proxy,kube-proxy\n')
        self.kubeconfigs = {
            "admin": self._kubeconfig("admin", self.token),
            "kubelet": self._kubeconfig("kubelet", self.tokens["kubelet"]),
            "proxy": self._kubeconfig("proxy", self.tokens["proxy"]),
        }
        self.kubeconfig = str(self.kubeconfigs["admin"])

    def _kubeconfig(self, user: str, token: str) -> Path:
        assert self.ca is not None
        path = self.workdir / f"kubeconfig-{user}"
        path.write_text(KUBECONFIG.format(server=self.server, ca=self.ca.cert, user=user,
                                          token=token))
        return path

    def _control_plane(self) -> None:
        assert self.ca is not None and self.front_proxy_ca is not None
        etcd_port = self._start_etcd()
        self._start_apiserver(
            etcd_port, f"--bind-address={conf.GATEWAY}", f"--advertise-address={conf.GATEWAY}",
            f"--tls-cert-file={self.apiserver_cert.cert}",
            f"--tls-private-key-file={self.apiserver_cert.key}",
            f"--client-ca-file={self.ca.cert}",
            f"--kubelet-client-certificate={self.kubelet_client.cert}",
            f"--kubelet-client-key={self.kubelet_client.key}",
            f"--kubelet-certificate-authority={self.ca.cert}",
            "--kubelet-preferred-address-types=InternalIP",
            f"--service-cluster-ip-range={conf.SERVICE_RANGE}",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            "--service-account-issuer=https://kubernetes.default.svc",
            "--endpoint-reconciler-type=lease",
            # The aggregation layer, for metrics-server (tests/infra/metrics.py): the
            # apiserver proxies /apis/metrics.k8s.io to the endpoint's address itself.
            f"--requestheader-client-ca-file={self.front_proxy_ca.cert}",
            "--requestheader-allowed-names=front-proxy-client",
            "--requestheader-username-headers=X-Remote-User",
            "--requestheader-group-headers=X-Remote-Group",
            "--requestheader-extra-headers-prefix=X-Remote-Extra-",
            f"--proxy-client-cert-file={self.front_proxy_client.cert}",
            f"--proxy-client-key-file={self.front_proxy_client.key}",
            "--enable-aggregator-routing=true",
        )
        # the CA pods trust for the API (kube-root-ca.crt); a slow node is not a dead one here;
        # HPAs look every 5 s (15 s by default) and trust a pod's CPU 30 s after it starts
        # (5 min by default), so a test sees autoscaling within a minute or two.
        self._start_controllers(f"--root-ca-file={self.ca.cert}",
                                "--node-monitor-grace-period=120s",
                                "--horizontal-pod-autoscaler-sync-period=5s",
                                "--horizontal-pod-autoscaler-cpu-initialization-period=30s")

    def _containerd(self) -> None:
        p = self.paths
        for d in (p.containerd, p.cni_conf, p.cni_ipam, p.kubelet, p.pod_logs):
            d.mkdir(parents=True, exist_ok=True)
        config = p.containerd / "config.toml"
        config.write_text(conf.containerd_config(p, self.pause_ref))
        (p.cni_conf / "10-streamrec.conflist").write_text(conf.cni_conflist(p))
        if self.registry:
            hosts = p.certs_d / "docker.io" / "hosts.toml"
            hosts.parent.mkdir(parents=True, exist_ok=True)
            hosts.write_text(conf.registry_hosts(self.registry))
        proc = ManagedProcess("containerd", ["containerd", "--config", str(config)],
                              self.workdir / "containerd.log")
        self.processes.append(proc)
        proc.start()
        proc.wait_ready(lambda: self.ctr("version", check=False).returncode == 0, 60)
        out = self.ctr("-n", "k8s.io", "images", "import", str(self.pause_tar), check=False)
        if out.returncode != 0:
            raise InfraError(f"containerd: importing the pause image failed: {out.stderr}\n"
                             f"{proc.log_tail()}")

    def ctr(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["ctr", "--address", str(self.paths.socket), *args], check=check,
                              capture_output=True, text=True, timeout=300)

    def _kubelet(self) -> None:
        p = self.paths
        assert self.ca is not None
        (p.root / "resolv.conf").write_text("")  # pods get only the cluster DNS
        config = p.root / "kubelet.json"
        port, healthz = free_port(), free_port()
        config.write_text(conf.kubelet_config(p, port=port, healthz_port=healthz, ca=self.ca.cert,
                                              cert=self.kubelet_cert.cert,
                                              key=self.kubelet_cert.key))
        kubelet = self._proc(
            "kubelet", f"--config={config}", f"--kubeconfig={self.kubeconfigs['kubelet']}",
            f"--hostname-override={self.node_name}", f"--node-ip={conf.GATEWAY}",
            f"--root-dir={p.kubelet}", f"--cert-dir={p.root / 'kubelet-pki'}", "--v=1",
        )
        kubelet.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{healthz}/healthz"), 120)
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())

        def node_ready() -> bool:
            if not kubelet.running:
                raise InfraError(f"kubelet exited:\n{kubelet.log_tail()}")
            try:
                n = core.read_node(self.node_name)
            except client.ApiException:
                return False
            return any(c.type == "Ready" and c.status == "True"
                       for c in (n.status.conditions or []))

        t0 = time.monotonic()
        try:
            wait_until(node_ready, 180, f"node {self.node_name} to turn Ready")
        except TimeoutError as e:
            raise InfraError(f"kubelet: {e}\n{kubelet.log_tail()}\n"
                             f"{self.log_tail('containerd')}") from e
        self.timings["node_ready_s"] = time.monotonic() - t0

    def _kube_proxy(self) -> None:
        healthz = free_port()
        config = self.paths.root / "kube-proxy.json"
        config.write_text(conf.kube_proxy_config(self.kubeconfigs["proxy"], healthz_port=healthz,
                                                 metrics_port=free_port()))
        self._proxy_config = config
        proxy = self._proc("kube-proxy", f"--config={config}", "--v=1")
        proxy.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{healthz}/healthz"), 120)

    def _coredns(self) -> None:
        health, ready = free_port(), free_port()
        corefile = self.paths.root / "Corefile"
        corefile.write_text(conf.corefile(kubeconfig=Path(self.kubeconfig), health_port=health,
                                          ready_port=ready))
        proc = ManagedProcess("coredns", [str(self.coredns_bin), "-conf", str(corefile)],
                              self.workdir / "coredns.log")
        self.processes.append(proc)
        proc.start()
        proc.wait_ready(lambda: _http_ok(f"http://127.0.0.1:{ready}/ready"), 120)

    # -- use --------------------------------------------------------------------------------

    def metrics_server(self) -> MetricsServer:
        """metrics-server for this node, not yet started (tests/infra/metrics.py)."""
        return MetricsServer(self)

    def pods(self, namespace: str | None = None) -> list[Any]:
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        if namespace:
            return list(core.list_namespaced_pod(namespace).items)
        return list(core.list_pod_for_all_namespaces().items)

    # -- stop -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Tear down in the order that lets each part clean up after itself; raise InfraError
        naming whatever is left on the host."""
        problems: list[str] = []
        try:
            problems += self._delete_pods()
        except Exception as e:  # a dead apiserver must not stop the rest of the teardown
            problems.append(f"deleting pods via the API: {e!r}")
        by_name = {p.name: p for p in self.processes}
        for name in ("coredns", "kube-proxy", "kubelet"):
            if name in by_name:
                by_name[name].stop()
        problems += self._remove_containers()
        if "containerd" in by_name:
            by_name["containerd"].stop()
        if getattr(self, "_proxy_config", None):
            cleanup = subprocess.run(
                [str(self.bin / "kube-proxy"), f"--config={self._proxy_config}", "--cleanup"],
                capture_output=True, text=True, timeout=120)
            if cleanup.returncode != 0:
                problems.append(f"kube-proxy --cleanup: {cleanup.stderr[-1000:]}")
        for p in reversed(self.processes):
            p.stop()
        if self._before is not None:
            problems += undo(self._before, self.workdir)
            problems += differences(self._before, self.workdir)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
        if problems:
            raise InfraError("node: the host is not as it was after teardown:\n  "
                             + "\n  ".join(problems))

    def _delete_pods(self, timeout: float = 120) -> list[str]:
        kubelet = next((p for p in self.processes if p.name == "kubelet"), None)
        if kubelet is None or not kubelet.running:
            return []
        from kubernetes import client

        core = client.CoreV1Api(self.api_client())
        # Controllers would replace deleted pods: delete their owners first.
        apps = client.AppsV1Api(self.api_client())
        for ns in core.list_namespace().items:
            name = ns.metadata.name
            if name in ("kube-system", "kube-public", "kube-node-lease", "default"):
                continue
            core.delete_namespace(name)
        for dep in apps.list_deployment_for_all_namespaces().items:
            apps.delete_namespaced_deployment(dep.metadata.name, dep.metadata.namespace)
        for pod in core.list_pod_for_all_namespaces().items:
            core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                       grace_period_seconds=5)
        try:
            wait_until(lambda: not core.list_pod_for_all_namespaces().items, timeout,
                       "every pod to be deleted by the kubelet", interval=1)
        except TimeoutError as e:
            left = [f"{p.metadata.namespace}/{p.metadata.name}"
                    for p in core.list_pod_for_all_namespaces().items]
            return [f"{e}: {left}\n{kubelet.log_tail()}"]
        return []

    def _remove_containers(self) -> list[str]:
        """Whatever the kubelet left (it should be nothing): kill and remove it in containerd."""
        containerd = next((p for p in self.processes if p.name == "containerd"), None)
        if containerd is None or not containerd.running:
            return []
        left = self.ctr("-n", "k8s.io", "tasks", "ls", "-q", check=False).stdout.split()
        for task in left:
            self.ctr("-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", task, check=False)
        for _ in range(50):
            if not self.ctr("-n", "k8s.io", "tasks", "ls", "-q", check=False).stdout.split():
                break
            time.sleep(0.2)
        for task in left:
            self.ctr("-n", "k8s.io", "tasks", "rm", "-f", task, check=False)
        for c in self.ctr("-n", "k8s.io", "containers", "ls", "-q", check=False).stdout.split():
            self.ctr("-n", "k8s.io", "containers", "rm", c, check=False)
        return [f"containers the kubelet left running: {left}"] if left else []
