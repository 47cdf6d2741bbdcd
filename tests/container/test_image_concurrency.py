"""Two image builds at once, as `make test` makes them: both succeed, with the real podman.

`make test` runs two pytest sessions at the same time (scripts/test.sh), and each builds the
image through scripts/image.sh, which re-runs scripts/provision-containers.sh. On a fresh CI
machine one session's build failed with "The storage 'driver' option must be set" and
"runroot must be set": the other session was rewriting podman's configuration under it. Now
the configuration is written atomically and only when it changes, and the build itself runs
under the image lock; these tests build twice at once (plus provisioning and podman commands
running beside them) and require every one to succeed.
"""

from __future__ import annotations

import subprocess
import uuid
from pathlib import Path

from tests.infra.containers import Podman
from tests.infra.process import REPO

IMAGE_SH = str(REPO / "scripts" / "image.sh")
PROVISION = str(REPO / "scripts" / "provision-containers.sh")


def _start(*argv: str, log: Path) -> tuple[subprocess.Popen[bytes], Path]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT), log


def _finish(procs: list[tuple[subprocess.Popen[bytes], Path]]) -> list[tuple[int, str]]:
    results = []
    for proc, log in procs:
        try:
            proc.wait(1800)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        results.append((proc.returncode, log.read_text(errors="replace")))
    return results


def test_two_image_builds_at_once_both_succeed_while_podman_is_provisioned_beside_them(
    podman: Podman, tmp_path: Path
) -> None:
    tag = f"concurrent-{uuid.uuid4().hex[:8]}"
    procs = [
        _start("bash", IMAGE_SH, log=tmp_path / "default.log"),  # the `image` fixture's build
        _start("bash", IMAGE_SH, "--tag", tag, log=tmp_path / "tagged.log"),  # skaffold's kind
    ]
    # Meanwhile: provisioning again and again (every test's Podman() runs it) and podman reading
    # its configuration, as the other session's container tests do.
    side = [_start("bash", PROVISION, "--env", log=tmp_path / f"provision-{k}.log")
            for k in range(3)]
    infos = [podman("info", "--format", "{{.Store.GraphDriverName}}", check=False)
             for _ in range(5)]
    try:
        builds = _finish(procs)
        provisions = _finish(side)
        for code, text in builds + provisions:
            assert code == 0, text[-4000:]
            assert "must be set" not in text, text[-4000:]
        assert builds[0][1].strip().splitlines()[-1].startswith("streamrec:")
        assert builds[1][1].strip().splitlines()[-1] == f"streamrec:{tag}"
        for info in infos:
            assert info.returncode == 0, info.stderr
            assert info.stdout.strip() == "overlay"
        for ref in (builds[0][1].strip().splitlines()[-1], f"streamrec:{tag}"):
            assert podman("image", "exists", ref, check=False).returncode == 0, ref
    finally:
        podman("untag", f"localhost/streamrec:{tag}", check=False)


def test_provisioning_again_leaves_podmans_configuration_files_untouched(
    podman: Podman
) -> None:
    conf = Path(podman.env["CONTAINERS_STORAGE_CONF"]).parent
    files = [conf / name for name in ("containers.conf", "storage.conf", "registries.conf")]
    before = {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files}
    proc = subprocess.run(["bash", PROVISION, "--env"], capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert {f: (f.stat().st_ino, f.stat().st_mtime_ns) for f in files} == before
