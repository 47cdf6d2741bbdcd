"""What recency and the item-item blend cost (issue 19), on the 1M-event serving benchmark model.

On the window of ``bench/serving.py`` (1M events, ~100k users x 50k items, 64 random factors:
cost does not depend on the values) it measures:

- **fit**: the trainer's extra work per retrain: the ordered history (``blend.history_for``) and
  the item-item model. 50k items is beyond the dense EASE limit, so this is the sparse cosine
  kNN fallback; dense EASE is measured on a second 1M-event window over ``--dense-items``
  (default 5,000: the dense limit) items;
- **snapshot**: bytes of the new files (``history.*``, ``item_item.*``) against the rest;
- **serving**: ``Model.recommend`` latency p50/p99 at concurrency 1, in a fresh process that
  memory-maps the snapshot as a worker does, for users with 3 fresh events each: ALS fold-in
  as before (``scoring=PLAIN``), recency-weighted fold-in, and the blend; plus that process's
  memory (RSS, PSS, USS) after the run: what a worker holds.

HTTP adds a constant ~0.5-1 ms on top (``bench/serving.py`` measures the stack). Writes
``bench/results/scoring.json`` and prints a table.

    python bench/scoring.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving import build_model, pct  # noqa: E402  (the same 1M-event model)
from streamrec.adapters.snapshotfiles import write_snapshot  # noqa: E402
from streamrec.core.scoring.blend import ScoringParams, history_for  # noqa: E402
from streamrec.core.scoring.itemitem import ItemItemParams, fit_item_item  # noqa: E402

RESULTS = Path(__file__).parent / "results"
TARGET_P99_MS = 5.0

# Runs in a fresh interpreter: what one serving worker maps and spends per request.
CHILD = r"""
import json, sys, time
import numpy as np
from streamrec.core.scoring.blend import PLAIN, ScoringParams
from streamrec.adapters.snapshotfiles import read_snapshot
path, calls, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
model = read_snapshot(path, verify=False, mmap=True, window=False).model
scoring = {"plain": PLAIN, "recency": ScoringParams(item_item_weight=0.0),
           "blend": model.scoring}[mode]
rng = np.random.default_rng(3)
users = [model.user_ids[int(k)] for k in rng.integers(0, len(model.user_ids), calls)]
items = [model.item_ids[int(k)] for k in rng.integers(0, len(model.item_ids), 3 * calls)]
model.als.gram  # warm, as a replica does after a swap
took = []
for k, user in enumerate(users):
    extra = [(items[3 * k + j], 1.0, None) for j in range(3)]
    t = time.perf_counter()
    model.recommend(user, n=10, extra=extra, scoring=scoring)
    took.append(time.perf_counter() - t)
kb = {}
for line in open("/proc/self/smaps_rollup").read().splitlines()[1:]:
    key, _, rest = line.partition(":")
    kb[key] = int(rest.split()[0])
print(json.dumps({"ms": [1e3 * x for x in took[calls // 10:]],
                  "rss_mb": kb["Rss"] / 1024, "pss_mb": kb["Pss"] / 1024,
                  "uss_mb": (kb["Private_Clean"] + kb["Private_Dirty"]) / 1024}))
"""


def serving_costs(path: Path, calls: int, mode: str) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(calls), mode],
                         check=True, capture_output=True, text=True, timeout=600)
    got = json.loads(out.stdout)
    ms = got.pop("ms")
    return {"calls": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99), **got}


def fit_costs(users: int, items: int, events: int, factors: int,
              scoring: ScoringParams, params: ItemItemParams, tmp: Path) -> dict[str, Any]:
    model, window = build_model(users, items, events, factors)
    contents = window.contents()
    t = time.perf_counter()
    history = history_for(contents, model.user_ids, model.item_ids, scoring.history_cap)
    history_s = time.perf_counter() - t
    ii = fit_item_item(model.user_items, params, threads=1)
    model = model.derive(scorers={ii.name: ii}, history=history, scoring=scoring)
    write_snapshot(tmp, model, contents, {0: events}, "000000000001", sync=False)
    size = {f.name.removesuffix(".npy"): f.stat().st_size for f in tmp.glob("*.npy")}
    group = {"history": 0, "item_item": 0, "window": 0, "model (as before)": 0}
    for name, n in size.items():
        key = name.split(".")[0]
        group[key if key in group else "model (as before)"] += n
    return {"users": len(model.user_ids), "items": len(model.item_ids), "events": events,
            "item_item_kind": ii.kind, "item_item_fit_s": ii.seconds,
            "history_s": history_s, "snapshot_mb": {k: v / 2**20 for k, v in group.items()}}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small model and short runs")
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--dense-items", type=int, default=ItemItemParams().max_dense_items)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--calls", type=int, default=3000)
    args = ap.parse_args()
    if args.quick:
        args.users, args.items, args.dense_items, args.events = 5_000, 2_000, 1_000, 50_000
        args.calls = 500
    started = time.perf_counter()
    scoring, params = ScoringParams(), ItemItemParams()
    tmp = Path(tempfile.mkdtemp(prefix="bench-scoring-"))
    runs: dict[str, Any] = {}
    try:
        for name, items in (("knn", args.items), ("ease", args.dense_items)):
            # The kNN run needs the catalogue above the dense limit, EASE at (or below) it.
            p = params if name == "ease" else ItemItemParams(
                l2=params.l2, max_dense_items=min(params.max_dense_items, args.items - 1),
                neighbours=params.neighbours)
            snap = tmp / name
            run = fit_costs(args.users, items, args.events, args.factors, scoring, p, snap)
            modes = ("plain", "recency", "blend") if name == "knn" else ("blend",)
            run["serving"] = {m: serving_costs(snap, args.calls, m) for m in modes}
            runs[name] = run
            shutil.rmtree(snap, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    worst = max(s["p99_ms"] for r in runs.values() for s in r["serving"].values())
    out = {
        "benchmark": "cost of recency and the item-item blend",
        "quick": args.quick,
        "scoring": scoring.to_dict(),
        "item_item": params.to_dict(),
        "runs": runs,
        "targets": [{"target": f"recommend p99 <= {TARGET_P99_MS} ms at c1 (in-process)",
                     "measured": worst, "met": worst <= TARGET_P99_MS}],
        "seconds": round(time.perf_counter() - started, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scoring.json").write_text(json.dumps(out, indent=2) + "\n")
    print("| model | items | fit (s) | history (s) | item_item MB | history MB | rest MB "
          "| mode | p50 ms | p99 ms | worker PSS MB | USS MB |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in runs.values():
        mb = r["snapshot_mb"]
        for mode, s in r["serving"].items():
            print(f"| {r['item_item_kind']} | {r['items']} | {r['item_item_fit_s']:.2f} "
                  f"| {r['history_s']:.2f} | {mb['item_item']:.1f} | {mb['history']:.1f} "
                  f"| {mb['model (as before)']:.1f} | {mode} | {s['p50_ms']:.2f} "
                  f"| {s['p99_ms']:.2f} | {s['pss_mb']:.0f} | {s['uss_mb']:.0f} |")
    print(f"({out['seconds']} s; wrote {RESULTS / 'scoring.json'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
