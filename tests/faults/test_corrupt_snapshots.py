"""Corrupt snapshots reach a running server: each is refused, counted, logged; serving goes on.

`streamrec serve` (gunicorn, 2 workers, polling LATEST every 0.3 s) serves a good snapshot from
a `LocalStore`. Then, in turn, LATEST moves to: a snapshot with a truncated ``.npy``, one with a
flipped byte, one without ``manifest.json``, and a version that does not exist. Each time both
workers refuse it (``streamrec_snapshot_reloads_total{result="refused"}`` grows by 2), the log
names the version and why, and a client hammering the API throughout sees only 200s naming the
good version. Last, a good new snapshot is published and picked up.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families
from tests.support.serving import Served, build_snapshot, serve, version_name, wait_for

from streamrec.adapters.stores import LocalStore

GOOD, NEXT_GOOD = version_name(1), version_name(9)
PATHS = ("/users/u1/recommendations?n=5", "/popular?n=3", "/items/i2/similar?n=3",
         "/recommendations/batch?users=u1,u2", "/model", "/readyz")


def _reloads(base: str, result: str) -> float:
    r = wait_for(lambda: (r := requests.get(f"{base}/metrics", timeout=5)).ok and r, 10)
    assert r, "no /metrics answer"
    text = r.text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (sample.name == "streamrec_snapshot_reloads_total"
                    and sample.labels.get("result") == result):
                return float(sample.value)
    return 0.0


def _write_latest(store: LocalStore, version: str) -> None:
    tmp = store.root / f".LATEST.{uuid.uuid4().hex}"
    tmp.write_text(version + "\n", encoding="ascii")
    os.replace(tmp, store.root / "LATEST")


def _truncated(store: LocalStore, work: Path, version: str) -> None:
    path = build_snapshot(work, version, seed=2)
    npy = path / "als.user_factors.npy"
    npy.write_bytes(npy.read_bytes()[: npy.stat().st_size // 2])
    store.publish(path, version)


def _flipped_byte(store: LocalStore, work: Path, version: str) -> None:
    path = build_snapshot(work, version, seed=3)
    npy = path / "als.item_factors.npy"
    data = bytearray(npy.read_bytes())
    data[len(data) - 5] ^= 0x40  # in the float data, past the .npy header: same size, new sha
    npy.write_bytes(bytes(data))
    store.publish(path, version)


def _missing_manifest(store: LocalStore, work: Path, version: str) -> None:
    path = build_snapshot(work, version, seed=4)
    (path / "manifest.json").unlink()
    target = store.snapshots / version  # publish() itself refuses a snapshot without manifest
    target.mkdir(parents=True)
    for f in path.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    _write_latest(store, version)


def _missing_version(store: LocalStore, work: Path, version: str) -> None:
    _write_latest(store, version)  # nothing under snapshots/<version>


FAULTS: list[tuple[str, Callable[[LocalStore, Path, str], None]]] = [
    ("truncated .npy", _truncated),
    ("flipped byte", _flipped_byte),
    ("missing manifest.json", _missing_manifest),
    ("LATEST names a missing version", _missing_version),
]


class Hammer:
    """A client calling the API in a loop from a thread; every non-200 is kept."""

    def __init__(self, base: str) -> None:
        self.base, self.stop = base, threading.Event()
        self.done, self.failures = 0, []  # type: ignore[var-annotated]
        self.versions: set[str] = set()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                for path in PATHS:
                    try:
                        r = session.get(f"{self.base}{path}", timeout=10)
                    except requests.RequestException as e:
                        self.failures.append((path, repr(e)))
                        continue
                    self.done += 1
                    if r.status_code != 200:
                        self.failures.append((path, r.status_code, r.text[:200]))
                    elif path == "/model":
                        self.versions.add(r.json()["version"])


def _all_answer(served: Served, version: str) -> bool:
    for path in PATHS[:4]:
        r = requests.get(f"{served.base}{path}", timeout=5)
        if r.status_code != 200 or r.json()["model_version"] != version:
            return False
    return True


def test_corrupt_snapshots_are_refused_counted_logged_and_serving_carries_on(kafka, tmp_path):
    store = LocalStore(tmp_path / "store")
    work = tmp_path / "build"
    store.publish(build_snapshot(work, GOOD, seed=1), GOOD)
    topic = kafka.create_topic(f"corrupt-{uuid.uuid4().hex[:8]}")
    with serve(tmp_path, store.root, bootstrap=kafka.bootstrap, topic=topic,
               reload_interval=0.3) as served:
        hammer = Hammer(served.base)
        hammer.thread.start()
        try:
            assert wait_for(lambda: _reloads(served.base, "loaded") == 2, 30)  # both workers
            for k, (what, corrupt) in enumerate(FAULTS, start=1):
                version = version_name(1 + k)
                corrupt(store, work, version)
                refused = wait_for(lambda k=k: _reloads(served.base, "refused") >= 2 * k, 30)
                assert refused, f"{what}: not refused by both workers\n{served.log_text()[-3000:]}"
                assert _reloads(served.base, "refused") == 2 * k, what
                lines = [line for line in served.log_text().splitlines()
                         if re.search(rf"refusing snapshot {version}\b", line)]
                assert len(lines) == 2, f"{what}: {lines}"
                assert f"still serving {GOOD}" in lines[0], lines[0]
                assert _all_answer(served, GOOD), what
                assert not hammer.failures, (what, hammer.failures[:5])

            store.publish(build_snapshot(work, NEXT_GOOD, seed=9), NEXT_GOOD)
            assert wait_for(lambda: _all_answer(served, NEXT_GOOD)
                            and _reloads(served.base, "loaded") == 4, 30)
        finally:
            hammer.stop.set()
            hammer.thread.join(30)
        assert hammer.done > 0 and not hammer.failures, hammer.failures[:5]
        assert hammer.versions <= {GOOD, NEXT_GOOD}
        assert _reloads(served.base, "unavailable") == 0
        assert "unhandled error" not in served.log_text()
        print(f"\ncorrupt snapshots: {len(FAULTS)} refused by 2 workers each, "
              f"{hammer.done} requests during the faults, 0 failed")
        for line in served.log_text().splitlines():
            if "refusing snapshot" in line:
                print("  " + line.split(": ", 1)[-1][:200])
