"""The soak run, shared by tests/faults/test_soak.py (invariants) and bench/soak.py (figures).

`streamrec serve` (2 gunicorn workers × 4 threads) on a real snapshot in a `LocalStore` and a
real Kafka topic; 32 reader threads, one ingest thread (fold-in traffic), three hot reloads,
the workers' RSS sampled every second. Returns every figure; asserts nothing.
"""

from __future__ import annotations

import platform
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import requests

from streamrec.adapters.stores import LocalStore
from tests.support.serving import build_snapshot, rss_bytes, serve, version_name, wait_for

CONCURRENCY = 32
WARMUP_S = 10.0
RSS_TOLERANCE = 0.10
USERS, ITEMS = 1000, 300
RELOADS = 3


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    failures: list[Any] = field(default_factory=list)
    posted: dict[str, int] = field(default_factory=dict)
    versions: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _reader(base: str, stop: threading.Event, tally: Tally, seed: int) -> None:
    rng = random.Random(seed)
    with requests.Session() as session:
        while not stop.is_set():
            u, i = rng.randrange(USERS), rng.randrange(ITEMS)
            path = rng.choice(
                (
                    f"/users/u{u}/recommendations?n=10",
                    f"/users/u{u}/recommendations?n=10",
                    f"/recommendations?user=new-{u}&n=5",
                    f"/recommendations/batch?users=u{u},u{(u + 1) % USERS},u{(u + 2) % USERS}&n=5",
                    f"/items/i{i}/similar?n=10",
                    "/popular?n=10",
                    f"/?userId=u{u}&recommendationsNumber=5",
                )
            )
            started = time.perf_counter()
            try:
                r = session.get(base + path, timeout=30)
                ok = r.status_code == 200
                version = r.json().get("model_version") if ok else None
            except (requests.RequestException, ValueError) as e:
                ok, r, version = False, e, None
            elapsed = time.perf_counter() - started
            with tally.lock:
                tally.latencies.append(elapsed)
                if not ok:
                    tally.failures.append((path, getattr(r, "status_code", repr(r))))
                if version:
                    tally.versions.add(version)


def _ingester(base: str, stop: threading.Event, tally: Tally) -> None:
    """Fold-in traffic: 5 events every 50 ms, for users new and known."""
    rng, k = random.Random(7), 0
    with requests.Session() as session:
        while not stop.is_set():
            user = f"soak-{k % 50}" if k % 2 else f"u{rng.randrange(USERS)}"
            events = [
                {"user": user, "item": f"i{rng.randrange(ITEMS)}", "weight": 1 + j}
                for j in range(5)
            ]
            k += 1
            started = time.perf_counter()
            try:
                r = session.post(f"{base}/interactions", json=events, timeout=30)
                ok = r.status_code == 202
            except requests.RequestException as e:
                ok, r = False, e  # type: ignore[assignment]
            with tally.lock:
                tally.latencies.append(time.perf_counter() - started)
                if ok:
                    tally.posted[user] = tally.posted.get(user, 0) + len(events)
                else:
                    tally.failures.append(
                        ("POST /interactions", getattr(r, "status_code", repr(r)))
                    )
            stop.wait(0.05)


def _sample_rss(
    pids: list[int], stop: threading.Event, samples: list[tuple[float, dict]], t0: float
) -> None:
    while not stop.wait(1.0):
        samples.append((time.monotonic() - t0, {pid: rss_bytes(pid) for pid in pids}))


def run_soak(kafka, tmp: Path, duration: float) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    store = LocalStore(tmp / "store")
    work = tmp / "build"
    versions = [version_name(k) for k in range(1, RELOADS + 2)]
    built = [
        build_snapshot(work, v, users=USERS, items=ITEMS, factors=16, seed=k)
        for k, v in enumerate(versions)
    ]  # all fitted before the clock starts
    store.publish(built[0], versions[0])
    topic = kafka.create_topic(f"soak-{uuid.uuid4().hex[:8]}")
    with serve(
        tmp,
        store.root,
        bootstrap=kafka.bootstrap,
        topic=topic,
        workers=2,
        threads=4,
        reload_interval=0.5,
    ) as served:
        pids = served.worker_pids()
        assert len(pids) == 2, pids
        tally, stop, samples = Tally(), threading.Event(), []  # type: ignore[var-annotated]
        t0 = time.monotonic()
        threads = [
            threading.Thread(target=_reader, args=(served.base, stop, tally, s), daemon=True)
            for s in range(CONCURRENCY)
        ]
        threads.append(
            threading.Thread(target=_ingester, args=(served.base, stop, tally), daemon=True)
        )
        threads.append(
            threading.Thread(target=_sample_rss, args=(pids, stop, samples, t0), daemon=True)
        )
        for t in threads:
            t.start()
        reload_at = [duration * (k + 1) / (RELOADS + 1) for k in range(RELOADS)]
        for at, (path, version) in zip(
            reload_at, zip(built[1:], versions[1:], strict=True), strict=True
        ):
            time.sleep(max(0.0, t0 + at - time.monotonic()))
            store.publish(path, version)
        time.sleep(max(0.0, t0 + duration - time.monotonic()))
        stop.set()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - t0

        def folded_in() -> bool:  # every posted user, on answers from both workers
            for user, count in sorted(tally.posted.items())[:10]:
                for _ in range(4):
                    r = requests.get(f"{served.base}/recommendations?user={user}", timeout=10)
                    if r.json()["fresh_events"] != count:
                        return False
            return True

        folded = bool(wait_for(folded_in, 30))
        workers_after = served.worker_pids()
        final = requests.get(f"{served.base}/model", timeout=10).json()["version"]

    lat = np.array(tally.latencies) * 1000.0
    after = [(t, s) for t, s in samples if t >= WARMUP_S]
    rss: dict[str, Any] = {}
    for pid in pids:
        values = [s[pid] for _, s in after if s.get(pid) is not None]
        rss[str(pid)] = {
            "samples": len(values),
            "first_mb": round(values[0] / 2**20, 1) if values else None,
            "min_mb": round(min(values) / 2**20, 1) if values else None,
            "max_mb": round(max(values) / 2**20, 1) if values else None,
            "growth": round(max(values) / min(values) - 1, 4) if values else None,
        }
    return {
        "note": "client and server on the same machine: latency is a ceiling",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "duration_s": round(elapsed, 1),
        "concurrency": CONCURRENCY,
        "server": {"workers": 2, "threads": 4, "worker_class": "gthread"},
        "model": {"users": USERS, "items": ITEMS, "factors": 16},
        "requests": int(lat.size),
        "failed": len(tally.failures),
        "failures": [list(map(str, f)) for f in tally.failures[:20]],
        "req_per_s": round(lat.size / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p95_ms": round(float(np.percentile(lat, 95)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2),
        "reloads": RELOADS,
        "versions_seen": sorted(tally.versions),
        "final_version": final,
        "expected_versions": versions,
        "events_posted": sum(tally.posted.values()),
        "folded_in": folded,
        "workers_before": pids,
        "workers_after": workers_after,
        "rss_warmup_s": WARMUP_S,
        "rss_tolerance": RSS_TOLERANCE,
        "rss": rss,
        "rss_timeline_mb": [
            [round(t, 1), *[round((s.get(p) or 0) / 2**20, 1) for p in pids]] for t, s in samples
        ],
    }
