"""Item search past brute force: exact top-10 against the HNSW graph (core/scoring/ann.py).

For each catalogue size, synthetic item factors (64 dims) with the shape of fitted ALS ones:
low-rank (16 latent dimensions plus noise, as collaborative signal is) with log-normal norms
(a few items several times longer than most, which breaks L2-reduction tricks), and users
drawn from the same latent space. The graph is faiss's ``IndexHNSWFlat`` (inner product,
``AnnParams``'s M and efConstruction), built with ``--threads`` threads. Per request
(``rules.rank_vector`` exact, ``annrank.rank_vector_ann`` through the graph at each
``--ef`` efSearch), p50/p99 over ``--queries`` users and the recall@10 against exact search
under the same restriction, for three requests:

- ``plain``: nothing banned;
- ``exclude_seen``: 50 of the user's true top 200 and 50 random items banned (a history);
- ``category 10%``: a 10% whitelist (selective: scanned exactly by both paths) plus the
  history.

Then: exact vs graph at smaller sizes (where the graph starts to pay: ``ann_min_items``), the
recall@10 of the graph against exact on real ALS factors fitted on MovieLens-100K (1,682
items: small, but real), with ``--prequential`` the prequential recall@10 of the fold-in
view with the graph off vs on (docs/evaluation.md), and a *hard* synthetic set (40
clusters with isotropic noise, queries from no cluster), where HNSW's recall is far
lower: recall depends on the data, so it is measured per deployment, not assumed.
Writes ``bench/results/ann.json``.

    python bench/ann.py [--sizes 200000] [--ef 64,128] [--queries 300] [--quick]
                        [--prequential]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from streamrec.core.scoring.ann import AnnParams, ItemIndex  # noqa: E402
from streamrec.core.scoring.annrank import rank_vector_ann  # noqa: E402
from streamrec.core.scoring.rules import rank_vector  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "ann.json"
F = 64
Ranker = Callable[[np.ndarray, np.ndarray, np.ndarray | None], np.ndarray]


def low_rank_factors(items: int, users: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(item factors, user vectors), float32 ``(n, 64)``: ALS-like, see the module doc."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=(16, F)) / 4.0
    y = rng.normal(size=(items, 16)) @ w + 0.5 * rng.normal(size=(items, F)) / np.sqrt(F)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    y *= rng.lognormal(0.0, 0.6, size=(items, 1))
    x = rng.normal(size=(users, 16)) @ w + 0.5 * rng.normal(size=(users, F)) / np.sqrt(F)
    return y.astype(np.float32), x.astype(np.float32)


def hard_factors(items: int, users: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Clusters drowned in isotropic noise, log-normal norms, isotropic queries."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, F))
    y = centres[rng.integers(0, 40, items)] + 0.7 * rng.normal(size=(items, F))
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    y *= rng.lognormal(0.0, 0.6, size=(items, 1))
    return y.astype(np.float32), rng.normal(size=(users, F)).astype(np.float32)


def _pct(ts: list[float]) -> dict[str, float]:
    a = np.asarray(ts) * 1e3
    return {"p50_ms": round(float(np.percentile(a, 50)), 4),
            "p99_ms": round(float(np.percentile(a, 99)), 4)}


def requests(y: np.ndarray, x: np.ndarray) -> dict[str, list[tuple[np.ndarray, np.ndarray | None]]]:
    """Per scenario, (banned, candidates) of each user."""
    rng = np.random.default_rng(1)
    items = len(y)
    category = np.sort(rng.choice(items, items // 10, replace=False)).astype(np.intp)
    none = np.empty(0, dtype=np.intp)
    out: dict[str, list[tuple[np.ndarray, np.ndarray | None]]] = {
        "plain": [], "exclude_seen": [], "category 10%": []}
    for u in x:
        top = rank_vector(y, u, 200, none, None)[0]
        seen = np.concatenate((rng.choice(top, 50, replace=False),
                               rng.choice(items, 50, replace=False))).astype(np.intp)
        out["plain"].append((none, None))
        out["exclude_seen"].append((seen, None))
        out["category 10%"].append((seen, category))
    return out


def measure(y: np.ndarray, x: np.ndarray, index: ItemIndex | None, efs: list[int],
            scenarios: dict[str, list[tuple[np.ndarray, np.ndarray | None]]]
            ) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name, reqs in scenarios.items():
        exact_ids, ts = [], []
        for u, (banned, cand) in zip(x, reqs, strict=True):
            t = time.perf_counter()
            ids = rank_vector(y, u, 10, banned, cand)[0]
            ts.append(time.perf_counter() - t)
            exact_ids.append(set(ids.tolist()))
        rows.append({"request": name, "search": "exact", **_pct(ts), "recall_at_10": 1.0})
        if index is None:
            continue
        for ef in efs:
            index.ef_search = ef
            ts, hits = [], 0
            for k, (u, (banned, cand)) in enumerate(zip(x, reqs, strict=True)):
                t = time.perf_counter()
                ids = rank_vector_ann(index, y, u, 10, banned, cand)[0]
                ts.append(time.perf_counter() - t)
                assert len(ids) == 10 and not set(ids.tolist()) & set(banned.tolist())
                hits += len(exact_ids[k] & set(ids.tolist()))
            rows.append({"request": name, "search": f"hnsw ef={ef}", **_pct(ts),
                         "recall_at_10": round(hits / (10 * len(x)), 4)})
    return rows


def build(y: np.ndarray, params: AnnParams, threads: int) -> tuple[ItemIndex, float]:
    t = time.perf_counter()
    index = ItemIndex.build(y, params, threads)
    return index, round(time.perf_counter() - t, 2)


def movielens_recall(efs: list[int], params: AnnParams) -> dict[str, Any]:
    """Recall@10 of the graph vs exact on ALS factors fitted on MovieLens-100K."""
    from streamrec.core.events import Event
    from streamrec.core.scoring.model import ALSParams
    from streamrec.core.scoring.training import fit
    from streamrec.core.window.sliding import SlidingWindow
    from streamrec.data import movielens

    ratings, _ = movielens.load()
    window = SlidingWindow(len(ratings))
    window.extend(Event(r.user, r.item, r.rating, r.timestamp) for r in ratings)
    model = fit(window.build(), ALSParams(factors=F, iterations=15, num_threads=1))
    y = np.asarray(model.als.item_factors, dtype=np.float32)
    x = np.asarray(model.als.user_factors, dtype=np.float32)
    index = ItemIndex.build(y, params, 1)
    scen = {"plain": [(np.empty(0, dtype=np.intp), None)] * len(x)}
    norms = np.linalg.norm(y, axis=1)
    return {"items": len(y), "users": len(x), "factors": F,
            "item_norm_p99_over_p50": round(float(np.percentile(norms, 99) /
                                                  np.percentile(norms, 50)), 2),
            "rows": measure(y, x, index, efs, scen)}


def prequential(ef: int) -> dict[str, Any]:
    """Prequential recall@10 (test-then-train, docs/evaluation.md) on MovieLens-100K of the
    fold-in view, the graph off vs on (built at every retrain, ``min_items`` 1)."""
    from streamrec.core.events import Event
    from streamrec.core.scoring.model import ALSParams
    from streamrec.data import movielens
    from streamrec.evaluation.prequential import Protocol, in_time_order, replay
    from streamrec.evaluation.strategies import ALSView, RetrainedALS

    ratings, _ = movielens.load()
    events = in_time_order(Event(r.user, r.item, r.rating, r.timestamp) for r in ratings)
    params = ALSParams(factors=F, iterations=8, num_threads=1)
    views = []
    for ann in (None, AnnParams(min_items=1, ef_search=ef)):
        core = RetrainedALS(params, 5000, 100_000, ann=ann)
        view = ALSView(core, "fold-in")
        view.name = f"fold-in, {'exact' if ann is None else f'hnsw ef={ef}'}"
        views.append(view)
    started = time.perf_counter()
    result = replay(events, views, Protocol())
    return {"seconds": round(time.perf_counter() - started, 1), "retrain_every": 5000,
            "window": 100_000, "strategies": [
                {"name": s.name, "warm": s.warm, "cold": s.cold,
                 "us_per_recommend": s.us_per_recommend} for s in result.strategies]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="200000",
                        help="catalogue sizes; 1000000 adds ~7 min of build on 2 loaded cores")
    parser.add_argument("--ef", default="64,128")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--threads", type=int, default=2, help="threads of each build")
    parser.add_argument("--quick", action="store_true",
                        help="200k items only, 100 queries, no threshold sweep")
    parser.add_argument("--prequential", action="store_true",
                        help="also the prequential replay, graph off vs on (~8 min loaded)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    efs = [int(e) for e in args.ef.split(",")]
    if args.quick:
        sizes, args.queries = [200_000], 100
    params = AnnParams(min_items=1)
    result: dict[str, Any] = {
        "benchmark": "item search: exact vs HNSW", "quick": args.quick, "factors": F,
        "m": params.m, "ef_construction": params.ef_construction, "queries": args.queries,
        "build_threads": args.threads, "sizes": []}
    for items in sizes:
        y, x = low_rank_factors(items, args.queries)
        index, seconds = build(y, params, args.threads)
        result["sizes"].append({
            "items": items, "build_s": seconds, "index_bytes": int(index.to_array().nbytes),
            "factor_bytes": int(y.nbytes),
            "rows": measure(y, x, index, efs, requests(y, x))})
        print(f"{items:,} items: built in {seconds} s", flush=True)
        del index, y, x
    if not args.quick:
        sweep = []
        for items in (20_000, 50_000, 100_000):
            y, x = low_rank_factors(items, args.queries, seed=2)
            index, _ = build(y, params, args.threads)
            plain = {"plain": [(np.empty(0, dtype=np.intp), None)] * len(x)}
            sweep.append({"items": items, "rows": measure(y, x, index, [128], plain)})
        result["threshold_sweep"] = sweep
        y, x = hard_factors(200_000, args.queries)
        index, seconds = build(y, params, args.threads)
        plain = {"plain": [(np.empty(0, dtype=np.intp), None)] * len(x)}
        result["hard_200k"] = {"build_s": seconds,
                               "rows": measure(y, x, index, [*efs, 512], plain)}
    result["movielens_100k"] = movielens_recall(efs, params)
    if args.prequential:
        result["prequential_movielens_100k"] = prequential(efs[0])
    result.update({"python": sys.version.split()[0], "platform": platform.platform(),
                   "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
                   "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    result["headline"] = headline(result)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    return 0


def headline(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The biggest size's plain request: the graph at the highest efSearch against exact."""
    from _headlines import row
    size = result["sizes"][-1]
    rows = [r for r in size["rows"] if r["request"] == "plain"]
    exact, best = rows[0], rows[-1]
    return [
        row(f"top-10 p50 at {size['items']:,} items, {best['search']}", best["p50_ms"], "ms",
            "exact (score every item)", exact["p50_ms"]),
        row(f"recall@10 at {size['items']:,} items, {best['search']} (synthetic ALS-like)",
            best["recall_at_10"], "", target=">= 0.95", met=best["recall_at_10"] >= 0.95),
    ]


def print_table(result: dict[str, Any]) -> None:
    print(f"\n{'items':>9} {'request':<14} {'search':<13} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'recall@10':>9}")
    for size in result["sizes"]:
        for r in size["rows"]:
            print(f"{size['items']:>9,} {r['request']:<14} {r['search']:<13} {r['p50_ms']:>8} "
                  f"{r['p99_ms']:>8} {r['recall_at_10']:>9}")
    for s in result.get("threshold_sweep", []):
        for r in s["rows"]:
            print(f"{s['items']:>9,} {'sweep':<14} {r['search']:<13} {r['p50_ms']:>8} "
                  f"{r['p99_ms']:>8} {r['recall_at_10']:>9}")
    for s in result.get("prequential_movielens_100k", {}).get("strategies", []):
        print(f"prequential {s['name']}: warm {s['warm']}, {s['us_per_recommend']} µs/rec")
    for name in ("hard_200k", "movielens_100k"):
        if name in result:
            for r in result[name]["rows"]:
                print(f"{name:>9} {r['request']:<14} {r['search']:<13} {r['p50_ms']:>8} "
                      f"{r['p99_ms']:>8} {r['recall_at_10']:>9}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
