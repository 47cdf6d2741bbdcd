"""Training engines: implicit in-process against Spark MLlib's ALS (pyspark, local master).

For each engine, one child process builds the same synthetic window (zipf users and items,
seeded) and fits it once with the same hyperparameters; the parent samples the resident memory
of the child's whole process tree (the Python driver plus Spark's JVM) every 0.2 s and keeps
the peak. Reported per engine: window build, session start (Spark), fit seconds, peak RSS;
for Spark also the fold-in check (the largest difference between Spark's user factors and
our fold-in with λ·n⁺ against Spark's item factors, over 500 users).

Writes ``bench/results/engines.json`` (with its own ``headline`` rows) and prints a table.

    python bench/engines.py                 # 1M events, 64 factors, 15 iterations, local[2]
    python bench/engines.py --quick         # 100k events, 32 factors, 5 iterations
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

RESULTS = Path(__file__).parent / "results" / "engines.json"


def _tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(children.get(p, []))
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _window(events: int, seed: int) -> Any:
    import numpy as np

    from streamrec.core.window.sliding import SlidingWindow

    rng = np.random.default_rng(seed)
    users = rng.zipf(1.2, events) % max(1, events // 10)
    items = rng.zipf(1.3, events) % max(1, events // 50)
    weights = rng.choice(np.array([1.0, 1.0, 2.0, 3.0, -1.0]), events)
    window = SlidingWindow(events)
    window.extend_columns([f"u{u}" for u in users.tolist()], [f"i{i}" for i in items.tolist()],
                          weights)
    return window.build()


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One engine's run, in this (child) process; prints its JSON."""
    import numpy as np

    from streamrec.core.scoring.model import ALSParams

    started = time.perf_counter()
    matrix = _window(args.events, args.seed)
    out: dict[str, Any] = {"engine": args.child, "build_s": round(time.perf_counter() - started, 2),
                           "users": len(matrix.user_ids), "items": len(matrix.item_ids),
                           "cells": int(matrix.user_items.nnz)}
    params = ALSParams(factors=args.factors, iterations=args.iterations,
                       regularization=args.regularization, num_threads=args.threads)
    if args.child == "implicit":
        from streamrec.core.scoring.training import fit

        started = time.perf_counter()
        fit(matrix, params)
        out["fit_s"] = round(time.perf_counter() - started, 2)
        return out
    from streamrec.adapters.spark import SparkEngine, SparkSettings

    engine = SparkEngine(SparkSettings(master=args.master, driver_memory=args.driver_memory))
    try:
        started = time.perf_counter()
        engine.session()
        out["session_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        model = engine.fit(matrix, params)
        out["fit_s"] = round(time.perf_counter() - started, 2)
    finally:
        engine.close()
    als, ui = model.als, matrix.user_items
    worst = 0.0
    for u in np.linspace(0, ui.shape[0] - 1, min(500, ui.shape[0])).astype(int).tolist():
        row = ui.getrow(u)
        worst = max(worst, float(np.abs(als.fold_in(row.indices, row.data)
                                        - als.user_factors[u]).max()))
    out["foldin_max_abs_error"] = worst
    return out


def measure(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", engine, "--events", str(args.events),
           "--factors", str(args.factors), "--iterations", str(args.iterations),
           "--regularization", str(args.regularization), "--threads", str(args.threads),
           "--master", args.master, "--driver-memory", args.driver_memory]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _tree_rss(proc.pid))
        time.sleep(0.2)
    stdout = proc.stdout.read() if proc.stdout else ""
    if proc.returncode != 0:
        return {"engine": engine, "error": f"exit {proc.returncode}"}
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["peak_rss_mb"] = round(peak / 2**20)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--factors", type=int, default=64)
    p.add_argument("--iterations", type=int, default=15)
    p.add_argument("--regularization", type=float, default=0.05)
    p.add_argument("--threads", type=int, default=2, help="implicit's threads (Spark: --master)")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--driver-memory", default="2g")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--quick", action="store_true", help="100k events, 32 factors, 5 iterations")
    p.add_argument("--child", choices=("implicit", "spark"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.quick:
        args.events, args.factors, args.iterations = 100_000, 32, 5
    if args.child:
        print(json.dumps(child(args)))
        return 0
    rows = [measure(e, args) for e in ("implicit", "spark")]
    by = {r["engine"]: r for r in rows}
    impl, spark = by["implicit"].get("fit_s"), by["spark"].get("fit_s")
    report = {
        "benchmark": "training engines: implicit vs Spark MLlib ALS",
        "events": args.events, "factors": args.factors, "iterations": args.iterations,
        "master": args.master, "implicit_threads": args.threads, "results": rows,
        "headline": [{"figure": f"Spark ALS fit, {args.events:,} events ({args.master})",
                      "value": spark, "unit": "s", "reference": "implicit fit, same window",
                      "reference_value": impl,
                      "ratio": round(spark / impl, 2) if spark and impl else None,
                      "target": None, "met": None}],
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "quick": bool(args.quick),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print("| engine | users | items | cells | build s | session s | fit s | peak RSS MB |"
          " fold-in max err |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['engine']} | {r.get('users', '–')} | {r.get('items', '–')} | "
              f"{r.get('cells', '–')} | {r.get('build_s', '–')} | {r.get('session_s', '–')} | "
              f"{r.get('fit_s', r.get('error', '–'))} | {r.get('peak_rss_mb', '–')} | "
              f"{r.get('foldin_max_abs_error', '–')} |")
    print(f"(wrote {RESULTS})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
