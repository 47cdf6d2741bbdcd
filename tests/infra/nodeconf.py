"""The real test node's configuration files, as pure functions of its addresses and paths.

Everything here is text (TOML, JSON, YAML); tests/infra/node.py writes it and starts the
daemons. Why each setting is there (docs/kubernetes.md, "What we run in CI"):

- containerd: config v2, runc with ``SystemdCgroup = false`` (no systemd), the locally built
  pause image as ``sandbox_image``, ``restrict_oom_score_adj = true`` (the machine lacks
  CAP_SYS_RESOURCE: without it every sandbox fails "can't get final child's PID from pipe"),
  CNI binaries from Debian's ``/usr/lib/cni``, and registry hosts in ``certs.d``: docker.io is
  served by the local registry over plain HTTP and by nothing else.
- CNI: one bridge with its own test subnet; pods get a route to the Service range and no
  default route, so the only addresses a pod can reach are the bridge's subnet (the host is its
  gateway) and the Services kube-proxy translates into it.
- kubelet: cgroupfs, swap and cgroup v1 tolerated, every port, directory and plugin path its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

#: The node's private test network: pods on the bridge, Services (virtual IPs) next to it.
POD_SUBNET = "10.213.0.0/24"
GATEWAY = "10.213.0.1"  # the bridge's address on the host: apiserver, kubelet, DNS, Kafka, MinIO
SERVICE_RANGE = "10.213.1.0/24"
KUBERNETES_SERVICE_IP = "10.213.1.1"  # the first address of SERVICE_RANGE
BRIDGE = "streamrec0"
NODE_NAME = "streamrec-node"
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class NodePaths:
    """Where one node keeps its state: all under one work directory, removed with it."""

    root: Path

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def socket(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def cni_conf(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def certs_d(self) -> Path:
        return self.containerd / "certs.d"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"


def containerd_config(paths: NodePaths, sandbox_image: str) -> str:
    c = paths.containerd
    return f"""\
# Written by tests/infra/nodeconf.py for the streamrec test node.
version = 2
root = "{c / 'root'}"
state = "{c / 'state'}"
oom_score = 0

[grpc]
  address = "{paths.socket}"

[ttrpc]
  address = "{c / 'containerd.ttrpc.sock'}"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{c / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "{c / 'runc'}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{paths.cni_conf}"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{paths.certs_d}"
"""


def registry_hosts(registry: str) -> str:
    """certs.d/docker.io/hosts.toml: docker.io (where a bare ``streamrec:0.1.0`` resolves) is
    the local registry. It is the ``server`` itself, not a mirror in front of Docker Hub, so a
    missing image fails at once instead of trying the internet."""
    return f"""\
# Written by tests/infra/nodeconf.py: docker.io/* is pulled from the local test registry only.
server = "http://{registry}"

[host."http://{registry}"]
  capabilities = ["pull", "resolve"]
"""


def cni_conflist(paths: NodePaths) -> str:
    return json.dumps({
        "cniVersion": "1.0.0",
        "name": "streamrec-test",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": True,
            "isDefaultGateway": False,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "dataDir": str(paths.cni_ipam),
                "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY,
                             "rangeStart": "10.213.0.10", "rangeEnd": "10.213.0.250"}]],
                # The Services' virtual IPs go to the host, where kube-proxy translates them;
                # no default route: nothing beyond the host is reachable from a pod.
                "routes": [{"dst": SERVICE_RANGE, "gw": GATEWAY}],
            },
        }, {"type": "portmap", "capabilities": {"portMappings": True}}],
    }, indent=2)


def kubelet_config(paths: NodePaths, *, port: int, healthz_port: int, ca: Path, cert: Path,
                   key: Path) -> str:
    return json.dumps({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": GATEWAY,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(cert),
        "tlsPrivateKeyFile": str(key),
        # `kubectl logs/exec` reach the kubelet with the apiserver's client certificate,
        # signed by the node's CA; nobody else gets in.
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                           "x509": {"clientCAFile": str(ca)}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "failSwapOn": False,
        "failCgroupV1": False,
        "protectKernelDefaults": False,
        "containerRuntimeEndpoint": f"unix://{paths.socket}",
        "clusterDNS": [GATEWAY],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(paths.root / "resolv.conf"),
        "volumePluginDir": str(paths.root / "volume-plugins"),
        "podLogsDir": str(paths.pod_logs),
        "serializeImagePulls": False,
        # Mounted ConfigMaps (serving's watched placements) refresh at each pod sync: 10 s
        # here, where the tests wait for them, against the default 1 m.
        "syncFrequency": "10s",
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A shared, busy machine: evict only when it is nearly out of memory or disk.
        "evictionHard": {"memory.available": "200Mi", "nodefs.available": "2%",
                         "imagefs.available": "2%", "nodefs.inodesFree": "2%"},
        "maxPods": 30,
        "registerNode": True,
        "shutdownGracePeriod": "0s",
    }, indent=2)


def kube_proxy_config(kubeconfig: Path, *, healthz_port: int, metrics_port: int) -> str:
    return json.dumps({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "bindAddress": GATEWAY,
        "clusterCIDR": POD_SUBNET,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # NodePorts only on the bridge address: no route_localnet sysctl, nothing on eth0.
        "nodePortAddresses": [f"{GATEWAY}/32"],
        # Zeros leave the host's conntrack sysctls as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
    }, indent=2)


def corefile(*, kubeconfig: Path, health_port: int, ready_port: int) -> str:
    """CoreDNS answers the cluster domain from the API and refuses everything else: there is
    no ``forward``, so no query ever leaves the host."""
    return f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    bind {GATEWAY}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
    }}
    cache 5
    loadbalance
}}
"""
