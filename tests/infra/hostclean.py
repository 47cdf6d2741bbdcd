"""What the real test node changes on the host, recorded before it starts and undone after.

The node (tests/infra/node.py) adds a bridge, iptables chains (kube-proxy's and the kubelet's
canaries), mounts (the kubelet's root, pod volumes, network namespaces), cgroups (``kubepods``
in every hierarchy) and may set sysctls (the kubelet's kernel defaults). `HostState.capture()`
records all of it; `undo(before)` removes what the node added, touching nothing that was there
before; `differences(before)` names whatever is still different, so the fixture fails loudly.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .nodeconf import BRIDGE

CGROUP_ROOT = Path("/sys/fs/cgroup")
NETNS_DIR = Path("/var/run/netns")
#: sysctls the kubelet or kube-proxy may set; restored to their values from before the node.
SYSCTLS = (
    "vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet", "net/bridge/bridge-nf-call-iptables",
    "net/netfilter/nf_conntrack_max",
)
TABLES = ("filter", "nat", "mangle")
#: Fixed paths containerd 1.6 and the CNI plugins use whatever their configuration says (shim
#: sockets, the CNI result cache, network namespaces): removed after the node if it made them.
RUNTIME_DIRS = (Path("/run/containerd"), Path("/var/lib/cni"), NETNS_DIR)


def _run(*argv: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return proc.stdout if proc.returncode == 0 else ""


def _chains(tool: str, table: str) -> set[str]:
    out = _run(tool, "-t", table, "-S")
    return {line.split()[1] for line in out.splitlines() if line.startswith("-N ")}


def _sysctl(name: str) -> str | None:
    try:
        return (Path("/proc/sys") / name).read_text().strip()
    except OSError:
        return None


def mounts_under(root: Path) -> list[str]:
    """Mount points at or under ``root``, deepest first (from /proc/self/mountinfo)."""
    prefix = str(root)
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(point)
    return sorted(set(points), key=lambda p: p.count("/"), reverse=True)


def _cgroup_dirs(name: str) -> list[Path]:
    return sorted(p / name for p in CGROUP_ROOT.iterdir() if (p / name).is_dir())


@dataclass(frozen=True)
class HostState:
    chains: dict[str, frozenset[str]]  # "iptables/nat" -> chain names
    sysctls: dict[str, str | None]
    netns: frozenset[str]
    bridge: bool
    kubepods: bool
    dirs: frozenset[Path]

    @classmethod
    def capture(cls) -> HostState:
        return cls(
            chains={f"{tool}/{table}": frozenset(_chains(tool, table))
                    for tool in ("iptables", "ip6tables") for table in TABLES},
            sysctls={name: _sysctl(name) for name in SYSCTLS},
            netns=frozenset(os.listdir(NETNS_DIR)) if NETNS_DIR.is_dir() else frozenset(),
            bridge=Path(f"/sys/class/net/{BRIDGE}").exists(),
            kubepods=bool(_cgroup_dirs("kubepods")),
            dirs=frozenset(d for d in RUNTIME_DIRS if d.exists()),
        )


def undo(before: HostState, workdir: Path) -> list[str]:
    """Remove what the node added since ``before``; returns the steps that failed."""
    failed: list[str] = []
    after = HostState.capture()
    for key, chains in after.chains.items():
        tool, table = key.split("/")
        added = sorted(c for c in chains - before.chains[key] if c.startswith("KUBE-"))
        for chain in added:
            _unlink_chain(tool, table, chain)
        for chain in added:
            _run(tool, "-t", table, "-F", chain)
        for chain in added:
            _run(tool, "-t", table, "-X", chain)
    for name, value in before.sysctls.items():
        if value is not None and _sysctl(name) != value:
            try:
                (Path("/proc/sys") / name).write_text(value)
            except OSError as e:
                failed.append(f"sysctl {name}={value}: {e}")
    for ns in sorted(after.netns - before.netns):
        if ns.startswith("cni-"):
            subprocess.run(["umount", "-l", str(NETNS_DIR / ns)], capture_output=True, timeout=30)
            try:
                (NETNS_DIR / ns).unlink()
            except OSError as e:
                failed.append(f"netns {ns}: {e}")
    for point in mounts_under(workdir):
        proc = subprocess.run(["umount", point], capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=30)
    if not before.kubepods:
        failed += remove_cgroup_tree("kubepods")
    for d in RUNTIME_DIRS:
        if d not in before.dirs and d.exists() and not mounts_under(d):
            shutil.rmtree(d, ignore_errors=True)
    if not before.bridge and Path(f"/sys/class/net/{BRIDGE}").exists():
        proc = subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, text=True,
                              timeout=30)
        if proc.returncode != 0:
            failed.append(f"ip link del {BRIDGE}: {proc.stderr.strip()}")
    return failed


def _unlink_chain(tool: str, table: str, chain: str) -> None:
    """Delete every rule of ``table`` that jumps to ``chain`` (so the chain can be removed)."""
    rules = _run(tool, "-t", table, "-S").splitlines()
    for rule in rules:
        if rule.startswith("-A ") and re.search(rf"\s-[jg] {re.escape(chain)}(\s|$)", rule):
            subprocess.run([tool, "-t", table, "-D", *rule.split()[1:]], capture_output=True,
                           timeout=30)


def remove_cgroup_tree(name: str) -> list[str]:
    """Kill what is left in ``/<hierarchy>/<name>`` (only pods of this node live there) and
    remove the directories, leaves first."""
    failed = []
    for top in _cgroup_dirs(name):
        dirs = sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts),
                      reverse=True) + [top]
        for d in dirs:
            for pid in _procs(d):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        for d in dirs:
            try:
                d.rmdir()
            except OSError as e:
                failed.append(f"cgroup {d}: {e}")
    return failed


def _procs(d: Path) -> list[int]:
    try:
        return [int(x) for x in (d / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def differences(before: HostState, workdir: Path) -> list[str]:
    """What still differs from ``before`` (empty when the host is as it was)."""
    after = HostState.capture()
    out = []
    for key, chains in after.chains.items():
        extra = chains - before.chains[key]
        if extra:
            out.append(f"{key}: chains left: {sorted(extra)}")
    out += [f"sysctl {k}: {before.sysctls[k]} -> {v}" for k, v in after.sysctls.items()
            if v != before.sysctls[k]]
    if after.netns - before.netns:
        out.append(f"network namespaces left: {sorted(after.netns - before.netns)}")
    if after.bridge != before.bridge:
        out.append(f"bridge {BRIDGE} left")
    if after.kubepods != before.kubepods:
        out.append(f"kubepods cgroups left: {_cgroup_dirs('kubepods')}")
    made = [str(d) for d in RUNTIME_DIRS if d not in before.dirs and d.exists()]
    if made:
        out.append(f"directories left: {made}")
    if mounts_under(workdir):
        out.append(f"mounts left: {mounts_under(workdir)}")
    return out
