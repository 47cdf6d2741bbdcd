"""Real containers for the image tests: podman, the streamrec image and a local registry.

podman and its configuration come from scripts/provision-containers.sh, the image from
scripts/image.sh (the same `make image` users run), the registry server (`distribution`) from
scripts/provision-registry.sh. Every container a test starts carries a label naming this pytest
session, so the session can prove at its end that none survived.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path

from .process import REPO, InfraError, ManagedProcess, free_port, provision

SESSION_LABEL = f"io.streamrec.test-session={uuid.uuid4().hex[:12]}"

#: How the operator's Deployments run every streamrec container (operator/builders.py):
#: uid 10001, a read-only root filesystem with an emptyDir-like tmpfs on /tmp, every capability
#: dropped, no privilege escalation; host network, so 127.0.0.1 services are reachable.
POD_SECURITY = (
    "--user", "10001:10001", "--read-only", "--read-only-tmpfs=false",
    "--tmpfs", "/tmp:rw,size=512m,mode=1777", "--cap-drop", "ALL",
    "--security-opt", "no-new-privileges", "--network", "host",
)


def _script_env() -> dict[str, str]:
    proc = subprocess.run(["bash", str(REPO / "scripts" / "provision-containers.sh"), "--env"],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise InfraError(f"podman: provisioning failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-4000:]}")
    env: dict[str, str] = {}
    for word in shlex.split(proc.stdout.strip().splitlines()[-1]):
        if "=" in word:
            key, value = word.split("=", 1)
            env[key] = value
    return env


class Podman:
    """The project's podman (its own containers.conf and storage), as a command."""

    def __init__(self) -> None:
        self.env = {**os.environ, **_script_env()}

    def __call__(self, *args: str, timeout: float = 300,
                 check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(["podman", *args], capture_output=True, text=True, env=self.env,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise InfraError(f"podman {' '.join(args[:3])}... failed ({proc.returncode}):\n"
                             f"{proc.stderr[-3000:]}")
        return proc

    def leftovers(self) -> list[str]:
        """Names of this session's containers that still exist."""
        out = self("ps", "-a", "--filter", f"label={SESSION_LABEL}", "--format", "{{.Names}}")
        return out.stdout.split()


def build_image(*args: str) -> str:
    """`scripts/image.sh ARGS`: the image reference; InfraError with the build's tail on failure.

    The script sets up podman's configuration itself (scripts/provision-containers.sh)."""
    proc = subprocess.run(["bash", str(REPO / "scripts" / "image.sh"), *args], capture_output=True,
                          text=True, timeout=3600)
    if proc.returncode != 0:
        raise InfraError(f"image: scripts/image.sh failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


class Container:
    """One detached container of the image, run as the pods run it; removed by `remove()`."""

    def __init__(self, podman: Podman, image: str, args: Sequence[str], *,
                 env: dict[str, str] | None = None, volumes: Sequence[str] = ()) -> None:
        self.podman, self.image, self.args = podman, image, list(args)
        self.name = f"streamrec-test-{uuid.uuid4().hex[:10]}"
        self.env = env or {}
        self.volumes = list(volumes)

    def start(self) -> Container:
        argv = ["run", "-d", "--name", self.name, "--label", SESSION_LABEL, *POD_SECURITY]
        for key, value in self.env.items():
            argv += ["--env", f"{key}={value}"]
        for volume in self.volumes:
            argv += ["--volume", volume]
        self.podman(*argv, self.image, *self.args)
        return self

    def running(self) -> bool:
        out = self.podman("inspect", "-f", "{{.State.Running}}", self.name, check=False)
        return out.stdout.strip() == "true"

    def logs(self) -> str:
        out = self.podman("logs", self.name, check=False)
        return out.stdout + out.stderr

    def remove(self) -> None:
        self.podman("rm", "-f", "-t", "5", self.name, check=False)


class Registry:
    """`distribution`'s registry server on 127.0.0.1 with its storage in a temp dir."""

    def __init__(self, workdir: Path) -> None:
        self.binary = provision("registry") / "bin" / "registry"
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "config.yml"
        config.write_text(json.dumps({  # YAML is a superset of JSON
            "version": 0.1,
            "log": {"level": "warn"},
            "storage": {"filesystem": {"rootdirectory": str(workdir / "data")},
                        "delete": {"enabled": True}},
            "http": {"addr": self.address, "debug": {"addr": ""}},
        }))
        self.process = ManagedProcess("registry", [str(self.binary), "serve", str(config)],
                                      workdir / "registry.log")

    def start(self, timeout: float = 30) -> None:
        self.process.start()
        self.process.wait_ready(self._ready, timeout)

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=2) as r:
            return bool(r.status == 200)

    def manifest(self, repository: str, tag: str) -> dict[str, object]:
        req = urllib.request.Request(
            f"http://{self.address}/v2/{repository}/manifests/{tag}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                               "application/vnd.docker.distribution.manifest.v2+json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return dict(json.loads(r.read()))

    def copy(self, repository: str, tag: str, to_repository: str) -> str:
        """Make ``repository:tag`` also ``to_repository:tag`` inside this registry, by blob
        mounts (no data moves; distribution API "cross repository blob mount"); the new ref."""
        accept = ("application/vnd.oci.image.manifest.v1+json, "
                  "application/vnd.docker.distribution.manifest.v2+json")
        base = f"http://{self.address}/v2"
        req = urllib.request.Request(f"{base}/{repository}/manifests/{tag}",
                                     headers={"Accept": accept})
        with urllib.request.urlopen(req, timeout=30) as r:
            body, media_type = r.read(), r.headers["Content-Type"]
        manifest = json.loads(body)
        for blob in [manifest["config"], *manifest["layers"]]:
            mount = urllib.request.Request(
                f"{base}/{to_repository}/blobs/uploads/?mount={blob['digest']}&from={repository}",
                method="POST", data=b"")
            with urllib.request.urlopen(mount, timeout=30) as r:
                if r.status != 201:
                    raise InfraError(f"registry: mounting {blob['digest']} answered {r.status}")
        put = urllib.request.Request(f"{base}/{to_repository}/manifests/{tag}", data=body,
                                     method="PUT", headers={"Content-Type": media_type})
        with urllib.request.urlopen(put, timeout=30):
            pass
        return f"{self.address}/{to_repository}:{tag}"

    def stop(self) -> None:
        self.process.stop()

    def log_tail(self) -> str:
        return self.process.log_tail()


def wait_http(url: str, seconds: float, container: Container) -> bytes:
    """GET ``url`` until it answers 200; fail with the container's log if it exits or stalls."""
    deadline = time.monotonic() + seconds
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return bytes(r.read())
        except OSError as e:
            last = e
        if not container.running():
            raise AssertionError(f"{container.name} exited:\n{container.logs()[-4000:]}")
        time.sleep(0.5)
    raise AssertionError(f"{url} not 200 after {seconds:.0f}s ({last!r}):\n"
                         f"{container.logs()[-4000:]}")
