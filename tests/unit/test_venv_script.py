"""scripts/venv.sh: the virtualenv step of `make venv` survives one broken download.

A fresh-clone CI run failed after 47 s when pip read an index page cut short
("Connection broken: IncompleteRead"), which pip does not retry itself. The script runs each pip
step up to three times. These run the real script with a stand-in interpreter that records its
arguments and fails as told, so no package index is touched.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from tests.infra.process import REPO

SCRIPT = REPO / "scripts" / "venv.sh"


def _fake_python(tmp_path: Path, failures: int) -> Path:
    """An executable that fails its first `failures` calls to `pip install`, logging each call."""
    exe = tmp_path / "python"
    exe.write_text(f"""#!/usr/bin/env bash
echo "$*" >> {tmp_path}/calls
if [[ $3 == install ]]; then
  n=$(cat {tmp_path}/failed 2>/dev/null || echo 0)
  if (( n < {failures} )); then echo $((n + 1)) > {tmp_path}/failed
    echo "ERROR: Connection broken: IncompleteRead" >&2; exit 1; fi
fi
exit 0
""")
    exe.chmod(0o755)
    return exe


def _run(tmp_path: Path, failures: int) -> subprocess.CompletedProcess[str]:
    exe = _fake_python(tmp_path, failures)
    return subprocess.run(["bash", str(SCRIPT), str(exe)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path,
                          env={**os.environ, "STREAMREC_PIP_PAUSE_S": "0"})


def _calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "calls").read_text().splitlines()


def test_a_broken_download_is_retried_and_the_install_completes(tmp_path: Path) -> None:
    done = _run(tmp_path, failures=2)
    assert done.returncode == 0, done.stderr
    calls = _calls(tmp_path)
    assert calls[:3] == ["-m pip install -q --upgrade pip"] * 3
    assert calls[3:] == ["-m pip install -q -e .[dev]", "-m pip check"]
    assert "attempt 1 of 3" in done.stderr and "attempt 2 of 3" in done.stderr


def test_an_install_that_fails_every_attempt_ends_the_run_with_pips_message(
    tmp_path: Path
) -> None:
    done = _run(tmp_path, failures=99)
    assert done.returncode != 0
    assert _calls(tmp_path) == ["-m pip install -q --upgrade pip"] * 3
    assert "IncompleteRead" in done.stderr
    assert "FAILED: pip install -q --upgrade pip failed 3 times" in done.stderr
