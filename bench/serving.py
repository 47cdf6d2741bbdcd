"""Serving benchmark: `streamrec serve` (gunicorn, gthread) on 127.0.0.1 with a real Kafka.

Measures, against the real server process:
- latency (p50/p95/p99) and throughput of ``GET /users/<u>/recommendations`` at concurrency
  1, 8 and 32 (a fixed number of requests each; the load generator shares the machine, so
  throughput is a floor, not the server's ceiling);
- event-to-recommendation freshness: ``POST /interactions`` until the user's answer counts it;
- requests failed while 3 new snapshots are hot-reloaded under load;
- RSS and PSS (shared pages split between sharers) per gunicorn worker.

Writes ``bench/results/serving.json`` and prints a table.

    python bench/serving.py [--users 20000] [--items 4000] [--events 300000] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import requests

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.infra.kafka import KafkaBroker  # noqa: E402

from streamrec.adapters.stores import LocalStore  # noqa: E402
from streamrec.core.model import ALSParams, fit  # noqa: E402
from streamrec.core.snapshot import write_snapshot  # noqa: E402
from streamrec.core.window import SlidingWindow  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "serving.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_window(users: int, items: int, events: int, seed: int = 0) -> SlidingWindow:
    rng = np.random.default_rng(seed)
    window = SlidingWindow(events)
    u = rng.zipf(1.3, events) % users
    i = rng.zipf(1.2, events) % items
    window.extend_columns([f"u{x}" for x in u], [f"i{x}" for x in i],
                          rng.integers(1, 5, events).astype(np.float64))
    return window


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def load(base: str, users: list[str], concurrency: int, total: int) -> dict[str, float]:
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()
    per_thread = total // concurrency

    def worker(k: int) -> None:
        session = requests.Session()
        mine: list[float] = []
        bad = 0
        for j in range(per_thread):
            user = users[(k * per_thread + j) % len(users)]
            start = time.perf_counter()
            try:
                r = session.get(f"{base}/users/{user}/recommendations?n=10", timeout=30)
                ok = r.status_code == 200
            except requests.RequestException:
                ok = False
            mine.append(time.perf_counter() - start)
            bad += not ok
        with lock:
            latencies.extend(mine)
            failures[0] += bad

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = [x * 1000 for x in latencies]
    return {"concurrency": concurrency, "requests": len(ms), "failed": failures[0],
            "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
            "p99_ms": percentile(ms, 99), "throughput_rps": len(ms) / wall}


def freshness(base: str, rounds: int) -> dict[str, float]:
    """Seconds from POST /interactions to an answer that counts the event (any worker)."""
    got: list[float] = []
    for _ in range(rounds):
        user = f"fresh-{uuid.uuid4().hex[:8]}"
        start = time.perf_counter()
        r = requests.post(f"{base}/interactions", json={"user": user, "item": "i1"}, timeout=10)
        r.raise_for_status()
        deadline = start + 20
        while time.perf_counter() < deadline:
            body = requests.get(f"{base}/users/{user}/recommendations", timeout=5).json()
            if body["fresh_events"] >= 1:
                got.append(time.perf_counter() - start)
                break
            time.sleep(0.002)
    ms = [x * 1000 for x in got]
    return {"rounds": rounds, "seen": len(ms), "p50_ms": percentile(ms, 50),
            "max_ms": max(ms) if ms else float("nan")}


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def memory(pid: int) -> dict[str, float]:
    out = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("Rss", "Pss"):
            out[key.lower() + "_mb"] = int(rest.split()[0]) / 1024
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--items", type=int, default=4_000)
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--requests", type=int, default=2000, help="per concurrency level")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    broker = KafkaBroker(tmp / "kafka")
    broker.start()
    proc = None
    try:
        topic = broker.create_topic("interactions")
        window = build_window(args.users, args.items, args.events)
        started = time.perf_counter()
        model = fit(window.build(), ALSParams(factors=args.factors, iterations=5, num_threads=1))
        fit_s = time.perf_counter() - started
        store = LocalStore(tmp / "store")
        contents = window.contents()

        def publish(version: str) -> None:
            write_snapshot(tmp / "build" / version, model, contents, {0: 0}, version)
            store.publish(tmp / "build" / version, version)

        publish("000000000001")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamrec.cli", "serve", "--bind", f"127.0.0.1:{port}",
             "--workers", str(args.workers), "--threads", str(args.threads),
             "--store", str(tmp / "store"), "--bootstrap-servers", broker.bootstrap,
             "--topic", topic, "--notify-topic", "", "--reload-interval", "0.5",
             "--cache-dir", str(tmp / "cache")],
            env=env, stdout=(tmp / "serve.log").open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.2)
        time.sleep(1.0)  # let every worker load the snapshot
        users = list(model.user_ids)
        load(base, users, 4, 200)  # warm-up
        levels = [load(base, users, c, max(args.requests // 4, 100) if c == 1 else args.requests)
                  for c in (1, 8, 32)]
        fresh = freshness(base, 20)

        # 3 hot reloads under load at concurrency 8.
        result: dict[str, float] = {}
        runner = threading.Thread(target=lambda: result.update(
            load(base, users, 8, args.requests * 2)))
        runner.start()
        seen = []
        for v in (2, 3, 4):
            version = f"{v:012d}"
            publish(version)
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < 30:
                if requests.get(f"{base}/model", timeout=5).json()["version"] == version:
                    seen.append(time.perf_counter() - t0)
                    break
                time.sleep(0.05)
        runner.join()
        reloads = {"reloads": 3, "observed": len(seen), "requests": result.get("requests", 0),
                   "failed": result.get("failed", -1),
                   "publish_to_served_s_max": max(seen) if seen else float("nan")}
        workers = {str(pid): memory(pid) for pid in children(proc.pid)}
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
        broker.stop()

    out = {
        "benchmark": "serving", "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "model": {"users": len(model.user_ids), "items": len(model.item_ids),
                  "nnz": int(model.user_items.nnz), "factors": args.factors,
                  "fit_seconds": fit_s},
        "server": {"workers": args.workers, "threads": args.threads, "worker_class": "gthread"},
        "latency": levels, "freshness": fresh, "hot_reload": reloads, "worker_memory": workers,
        "note": "client and server share the machine; throughput is a floor",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(f"model: {out['model']}")
    print(f"{'concurrency':>11} {'requests':>8} {'failed':>6} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'req/s':>7}")
    for r in levels:
        print(f"{r['concurrency']:>11} {r['requests']:>8} {r['failed']:>6} {r['p50_ms']:>7.2f} "
              f"{r['p95_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['throughput_rps']:>7.0f}")
    print(f"freshness (POST -> counted): p50 {fresh['p50_ms']:.1f} ms, "
          f"max {fresh['max_ms']:.1f} ms ({fresh['seen']}/{fresh['rounds']})")
    print(f"hot reloads: {reloads['observed']}/3 served, {reloads['failed']} of "
          f"{reloads['requests']} requests failed")
    for pid, mem in workers.items():
        print(f"worker {pid}: RSS {mem.get('rss_mb', 0):.1f} MB, PSS {mem.get('pss_mb', 0):.1f} MB")
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
