"""What a placement adds to a request, and how fast a rule change is live (issue 28).

The default configuration's model (``_default_model.py``: ALS + item-item + sequential rules,
recency-weighted history) over a 1M-event window (~100k users x 50k items, 64 random ALS
factors) and a catalogue (1-3 of 20 categories and two labels per item), served in-process by
one worker's Flask app. For ``--calls`` known users, each asks ``GET
/users/{u}/recommendations?n=10`` twice in a row, once plain and once with a placement (the
order alternates), so both sides see the same machine; p50/p99 of each and of the difference.

Placements timed (each alone, then all together):

- ``rules``: a CEL filter, a boost, rotation (impressions kept per user) and a per-category
  diversity cap: the combination the issue bounds (<= 0.5 ms p50 over the plain request);
- ``promotions``, ``exploration``, ``mmr``: each of the other rule kinds alone.

Also: the time to evaluate one expression for every item (a full rebuild of the per-item
arrays: a new placement set or a new model), and a rule change's time to be live: the file is
rewritten and a request is polled every 2 ms until its answer follows the new rule (the
worker's watch thread looks every 0.25 s, then rebuilds the changed placement's arrays).
Every worker does this on its own, so this is the time for each of them.

Writes ``bench/results/placements.json`` and prints a table.

    python bench/placements.py [--events 1000000] [--calls 400] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from tests.support.randommodel import random_model  # noqa: E402

from _default_model import default_catalogue, default_model  # noqa: E402
from streamrec.adapters.snapshotfiles import write_snapshot  # noqa: E402
from streamrec.adapters.stores import LocalStore  # noqa: E402
from streamrec.config import Config  # noqa: E402
from streamrec.core.placements.spec import parse_placements  # noqa: E402
from streamrec.serving.app import create_app  # noqa: E402
from streamrec.settings.placements import Placements  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "placements.json"
TARGET_MS = 0.5
RULES = {"name": "rules", "filter": "!('genre-3' in categories)",
         "boosts": [{"when": "labels.studio == 's1'", "multiply": 1.5}],
         "rotation": {"seconds": 3600, "factor": 0.5},
         "diversity": {"maxPerCategory": 3}}
PLACEMENTS = [
    RULES,
    {"name": "promotions", "promotions": {"filter": "labels.studio == 's2'", "share": 0.2}},
    {"name": "exploration", "exploration": {"share": 0.1, "maxInteractions": 3}},
    {"name": "mmr", "diversity": {"mmrLambda": 0.7}},
    {**RULES, "name": "everything",
     "promotions": {"filter": "labels.studio == 's2'", "share": 0.2},
     "exploration": {"share": 0.1, "maxInteractions": 3}},
]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def timed_pairs(client: Any, users: list[str], name: str) -> dict[str, float]:
    plain: list[float] = []
    placed: list[float] = []
    for k, u in enumerate(users):
        order = (None, name) if k % 2 == 0 else (name, None)
        for which in order:
            url = f"/users/{u}/recommendations?n=10" + (f"&placement={which}" if which else "")
            t = time.perf_counter()
            r = client.get(url)
            ms = (time.perf_counter() - t) * 1e3
            assert r.status_code == 200, r.get_data(as_text=True)
            (placed if which else plain).append(ms)
    diff = [b - a for a, b in zip(plain, placed, strict=True)]
    return {"plain_p50_ms": pct(plain, 50), "plain_p99_ms": pct(plain, 99),
            "placed_p50_ms": pct(placed, 50), "placed_p99_ms": pct(placed, 99),
            "added_p50_ms": pct(placed, 50) - pct(plain, 50), "paired_diff_p50_ms": pct(diff, 50)}


def live_times(client: Any, path: Path, changes: int) -> list[float]:
    """Seconds from rewriting the file to the first answer that follows the new rule."""
    out = []
    for k in range(changes):
        banned = f"genre-{k % 20}"
        body = [*PLACEMENTS, {"name": "live", "filter": f"!('{banned}' in categories)"}]
        t = time.perf_counter()
        path.write_text(json.dumps(body))
        for _ in range(5000):  # at most ~10 s
            r = client.get("/popular?n=50&placement=live&fields=categories")
            if r.status_code == 200 and all(banned not in x["categories"]
                                            for x in r.get_json()["items"]):
                break
            time.sleep(0.002)
        out.append(time.perf_counter() - t)
        time.sleep(0.3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--quick", action="store_true", help="200k events, 10k items, 100 calls")
    args = ap.parse_args()
    if args.quick:
        args.events, args.users, args.items, args.calls = 200_000, 20_000, 10_000, 100
    tmp = Path(tempfile.mkdtemp(prefix="bench-placements-"))
    t = time.perf_counter()
    model, window = random_model(args.users, args.items, args.events, args.factors, 0)
    model, _ = default_model(model, window)
    catalogue = default_catalogue(list(model.item_ids))
    store = LocalStore(tmp / "store")
    write_snapshot(tmp / "build" / "v1", model, window.contents(), {0: 0}, "000000000001",
                   catalog=catalogue.to_arrays({}, model.item_ids))
    store.publish(tmp / "build" / "v1", "000000000001")
    build_s = time.perf_counter() - t
    path = tmp / "placements.json"
    path.write_text(json.dumps(PLACEMENTS))
    app = create_app(Config(cache_dir=str(tmp / "cache"),
                            placements=Placements().parse(str(path))), store=store)
    service = app.extensions["streamrec"]
    t = time.perf_counter()
    assert service.reloader.check_once()
    load_s = time.perf_counter() - t
    client = app.test_client()
    rng = np.random.default_rng(1)
    users = [model.user_ids[int(i)] for i in rng.integers(0, len(model.user_ids), args.calls)]
    for u in users[:20]:  # warm up both paths
        client.get(f"/users/{u}/recommendations?n=10")
        client.get(f"/users/{u}/recommendations?n=10&placement=rules")
    (one,) = parse_placements([{"name": "one", "filter": "labels.year == '1990'"}])
    t = time.perf_counter()
    service.placer.masks.refresh(model.item_ids, model.user_items, (one,), time.time())
    eval_s = time.perf_counter() - t
    rows = {p["name"]: timed_pairs(client, users, p["name"]) for p in PLACEMENTS}
    service.placer.start()  # the watch thread, as a worker runs it
    try:
        live = live_times(client, path, 3 if args.quick else 8)
    finally:
        service.placer.stop()
    out = {"events": args.events, "users": args.users, "items": len(model.item_ids),
           "calls": args.calls, "build_s": round(build_s, 1),
           "load_with_placements_s": round(load_s, 2),
           "expression_full_eval_s": round(eval_s, 3),
           "expression_eval_us_per_item": round(eval_s / len(model.item_ids) * 1e6, 2),
           "placements": rows, "target_added_p50_ms": TARGET_MS,
           "rules_within_target": rows["rules"]["added_p50_ms"] <= TARGET_MS,
           "live_s": {"p50": round(pct(live, 50), 3), "max": round(max(live), 3),
                      "runs": [round(x, 3) for x in live]},
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                       "load_average": os.getloadavg()}}
    print(f"{'placement':<12} {'plain p50':>10} {'placed p50':>11} {'added p50':>10} "
          f"{'placed p99':>11}  (ms, n=10, {args.calls} users, {len(model.item_ids)} items)")
    for name, r in rows.items():
        print(f"{name:<12} {r['plain_p50_ms']:>10.3f} {r['placed_p50_ms']:>11.3f} "
              f"{r['added_p50_ms']:>10.3f} {r['placed_p99_ms']:>11.3f}")
    print(f"one expression for every item: {eval_s:.3f} s "
          f"({out['expression_eval_us_per_item']} µs an item)")
    print(f"rule change live: p50 {out['live_s']['p50']} s, max {out['live_s']['max']} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
