"""scripts/lib.sh's `write_file`: configuration that concurrent readers may read at any moment.

`make test` runs two pytest sessions at once; both run scripts/provision-containers.sh, which
writes podman's storage.conf and containers.conf while the other session's podman reads them.
A plain ``cat > file`` truncates first, and a reader of the empty file fails ("The storage
'driver' option must be set"). `write_file` replaces a file by rename, and only when its text
changes. These run the real script function under bash; the podman side is
tests/container/test_image_concurrency.py.
"""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

from tests.infra.process import REPO

LIB = REPO / "scripts" / "lib.sh"


def _bash(script: str, cache: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", f"source {LIB}; {script}"], capture_output=True,
                          text=True, timeout=timeout, env={**os.environ,
                                                           "STREAMREC_CACHE": str(cache)})


def test_a_reader_never_sees_a_half_written_configuration_while_it_is_rewritten(
    tmp_path: Path
) -> None:
    target = tmp_path / "storage.conf"
    # Two full versions of a file, big enough that a non-atomic write is seen part-way.
    versions = [f'[storage]\ndriver = "overlay"\nrunroot = "/run/{k}"\n' + "# pad\n" * 2000
                for k in ("a", "b")]
    target.write_text(versions[0])
    seen: list[str] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(target.read_text())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        proc = subprocess.run(
            ["bash", "-c", f"source {LIB}; for k in $(seq 1 150); do "
                           "if ((k % 2)); then printf '%s' \"$V1\"; else printf '%s' \"$V0\"; fi"
                           f" | write_file {target}; done"],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "STREAMREC_CACHE": str(tmp_path), "V0": versions[0],
                 "V1": versions[1]})
    finally:
        done.set()
        reader.join(10)
    assert proc.returncode == 0, proc.stderr
    assert len(seen) > 50  # the reader really read while the writer wrote
    partial = [text[:80] for text in seen if text not in versions]
    assert not partial, f"{len(partial)} of {len(seen)} reads saw a partial file: {partial[:3]}"
    assert target.read_text() == versions[0]  # 150 writes: the last one is version 0
    assert not list(tmp_path.glob("*.tmp")), "temp files were left behind"


def test_an_unchanged_configuration_is_not_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "containers.conf"
    first = _bash(f"echo 'netns = \"host\"' | write_file {target}", tmp_path)
    assert first.returncode == 0, first.stderr
    before = target.stat()
    again = _bash(f"echo 'netns = \"host\"' | write_file {target}", tmp_path)
    assert again.returncode == 0, again.stderr
    after = target.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    changed = _bash(f"echo 'netns = \"private\"' | write_file {target}", tmp_path)
    assert changed.returncode == 0, changed.stderr
    assert target.read_text() == 'netns = "private"\n'
    assert target.stat().st_ino != before.st_ino  # replaced by rename, not truncated in place
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)  # readable as before
