"""Core engine micro-benchmarks: window build, ALS fit against bare implicit, fold-in, top-N.

- ``window``: ``SlidingWindow.build()`` (the user x item CSR the trainer fits on) and
  ``contents()`` (what a snapshot stores) for full windows of each size;
- ``fit``: :func:`streamrec.core.scoring.model.fit` against a bare ``implicit.cpu.als`` fit on the
same
  CSR with the same hyperparameters (one thread each), and their ratio. streamrec hands implicit
  ``1 + alpha * R`` (see ``core/scoring/training.py``); the bare fit gets ``R`` itself: same
  sparsity,
  same work per iteration. streamrec's extra work is that copy, the training loss and the
  model's id indexes;
- ``foldin``: one user's exact least-squares solve against fixed item factors, for users with
  10 and 100 items (p50/p99 over many random users);
- ``topn``: ``Model.recommend`` for one known user and ``Model.recommend_batch`` for 1000, both
  with exclude-seen, and implicit's own batch ``recommend`` on the bare fit for reference.

Synthetic data, generated here with numpy: Zipf item popularity, users in latent clusters that
prefer their own slice of the catalogue, Zipf user activity, ratings 1-5. Single-threaded.
Writes ``bench/results/core.json`` and prints a table.

    python bench/core.py [--sizes 100000,1000000] [--repeat 2] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from streamrec.core.scoring.model import ALSParams, Model  # noqa: E402
from streamrec.core.scoring.training import fit  # noqa: E402
from streamrec.core.window.sliding import SlidingWindow, WindowMatrix  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "core.json"


def synthetic(n: int, seed: int = 0) -> tuple[list[str], list[str], np.ndarray[Any, Any]]:
    """``n`` events as (user ids, item ids, weights), about 20 events per user."""
    rng = np.random.default_rng(seed)
    users, items, clusters = max(100, n // 20), max(500, n // 50), 20
    item_p = 1.0 / np.arange(1, items + 1)
    item_p /= item_p.sum()
    user_p = np.arange(1, users + 1) ** -0.8
    user_p = (user_p / user_p.sum())[rng.permutation(users)]
    global_order = rng.permutation(items)
    cluster_order = np.stack([rng.permutation(items) for _ in range(clusters)])
    user_cluster = rng.integers(0, clusters, users)
    u = rng.choice(users, size=n, p=user_p)
    rank = rng.choice(items, size=n, p=item_p)
    from_cluster = rng.random(n) < 0.7
    i = np.where(from_cluster, cluster_order[user_cluster[u], rank], global_order[rank])
    w = np.where(from_cluster, rng.integers(4, 6, n), rng.integers(1, 6, n)).astype(np.float64)
    return [f"u{x}" for x in u.tolist()], [f"i{x}" for x in i.tolist()], w


def best_of(run: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def percentiles_us(samples: Sequence[float]) -> dict[str, float]:
    us = np.asarray(samples) * 1e6
    return {"p50_us": round(float(np.percentile(us, 50)), 1),
            "p99_us": round(float(np.percentile(us, 99)), 1)}


def bench_window(n: int, repeat: int) -> tuple[dict[str, Any], WindowMatrix]:
    users, items, weights = synthetic(n)
    window = SlidingWindow(n)
    start = time.perf_counter()
    window.extend_columns(users, items, weights)
    extend_s = time.perf_counter() - start
    matrix = window.build()
    row = {"events": n, "users": len(matrix.user_ids), "items": len(matrix.item_ids),
           "nnz": int(matrix.user_items.nnz),
           "extend_events_per_s": round(n / extend_s),
           "build_s": round(best_of(window.build, repeat), 4),
           "contents_s": round(best_of(window.contents, repeat), 4)}
    return row, matrix


def bare_implicit(matrix: WindowMatrix, params: ALSParams) -> Any:
    """implicit's CPU ALS as a user would call it, on the window's own CSR."""
    import implicit.cpu.als

    model = implicit.cpu.als.AlternatingLeastSquares(
        factors=params.factors, regularization=params.regularization, alpha=params.alpha,
        dtype=np.float32, iterations=params.iterations, num_threads=params.num_threads,
        random_state=params.random_state)
    with threadpool_limits(1, "blas"):
        model.fit(matrix.user_items, show_progress=False)
    return model


def bench_fit(matrix: WindowMatrix, params: ALSParams, repeat: int) -> tuple[dict[str, Any],
                                                                           Model, Any]:
    ours: Model | None = None
    bare: Any = None
    ours_s, bare_s = float("inf"), float("inf")
    for _ in range(repeat):  # interleaved, so a noisy neighbour hurts both alike
        start = time.perf_counter()
        ours = fit(matrix, params)
        ours_s = min(ours_s, time.perf_counter() - start)
        start = time.perf_counter()
        bare = bare_implicit(matrix, params)
        bare_s = min(bare_s, time.perf_counter() - start)
    assert ours is not None
    row = {"events": matrix.events, "nnz": int(matrix.user_items.nnz),
           "streamrec_fit_s": round(ours_s, 3), "bare_implicit_fit_s": round(bare_s, 3),
           "ratio": round(ours_s / bare_s, 3)}
    return row, ours, bare


def bench_foldin(model: Model, sizes: Sequence[int], calls: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(1)
    n_items = len(model.item_ids)
    model.als.gram  # noqa: B018 (warm the cached YᵀY + λI, as a replica does after loading)
    rows = []
    for k in sizes:
        k = min(k, n_items)
        times = []
        for _ in range(calls):
            idx = rng.choice(n_items, size=k, replace=False)
            w = rng.integers(1, 6, k).astype(np.float64)
            start = time.perf_counter()
            model.als.fold_in(idx, w)
            times.append(time.perf_counter() - start)
        rows.append({"items_per_user": k, "calls": calls, **percentiles_us(times)})
    return rows


def bench_topn(model: Model, bare: Any, users: int, n: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(2)
    picked = rng.choice(len(model.user_ids), size=min(users, len(model.user_ids)), replace=False)
    ids = [model.user_ids[k] for k in picked.tolist()]
    model.recommend(ids[0], n)  # warm the lazy caches
    times = []
    for user in ids:
        start = time.perf_counter()
        model.recommend(user, n, exclude_seen=True)
        times.append(time.perf_counter() - start)
    rows = [{"path": "Model.recommend, one user", "users": len(ids), **percentiles_us(times),
             "total_s": round(sum(times), 4)}]
    start = time.perf_counter()
    model.recommend_batch(ids, n, exclude_seen=True)
    batch_s = time.perf_counter() - start
    rows.append({"path": f"Model.recommend_batch, {len(ids)} users", "users": len(ids),
                 "per_user_us": round(batch_s / len(ids) * 1e6, 1), "total_s": round(batch_s, 4)})
    rows_idx = np.sort(picked)
    with threadpool_limits(1, "blas"):
        start = time.perf_counter()
        bare.recommend(rows_idx, model.user_items[rows_idx], N=n,
                       filter_already_liked_items=True)
        bare_s = time.perf_counter() - start
    rows.append({"path": f"implicit recommend (bare fit), {len(ids)} users",
                 "users": len(ids), "per_user_us": round(bare_s / len(ids) * 1e6, 1),
                 "total_s": round(bare_s, 4)})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000", help="window sizes (events)")
    parser.add_argument("--repeat", type=int, default=3, help="best of N for build and fit")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--foldin-calls", type=int, default=2000)
    parser.add_argument("--users", type=int, default=1000, help="users for top-N")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: a 20k-event window, 3 iterations, fewer calls")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.repeat, args.iterations = "20000", 1, 3
        args.foldin_calls, args.users = 200, 200
    sizes = [int(s) for s in args.sizes.split(",") if s]
    params = ALSParams(factors=args.factors, iterations=args.iterations, num_threads=1)

    # Warm up: the first fit imports implicit; neither side should pay for that in its time.
    tiny = SlidingWindow(2000)
    tiny.extend_columns(*synthetic(2000))
    fit(tiny.build(), ALSParams(factors=8, iterations=1, num_threads=1))
    bare_implicit(tiny.build(), ALSParams(factors=8, iterations=1, num_threads=1))

    window_rows, fit_rows = [], []
    foldin_rows: list[dict[str, Any]] = []
    topn_rows: list[dict[str, Any]] = []
    for n in sizes:
        row, matrix = bench_window(n, args.repeat)
        window_rows.append(row)
        print(f"window {n:,}: build {row['build_s']} s", flush=True)
        row, model, bare = bench_fit(matrix, params, args.repeat)
        fit_rows.append(row)
        print(f"fit {n:,}: streamrec {row['streamrec_fit_s']} s, bare implicit "
              f"{row['bare_implicit_fit_s']} s", flush=True)
        if n == sizes[-1]:  # the serving-side numbers on the largest model
            foldin_rows = bench_foldin(model, (10, 100), args.foldin_calls)
            topn_rows = bench_topn(model, bare, args.users, 10)
            model_shape = {"events": n, "users": len(model.user_ids),
                           "items": len(model.item_ids), "factors": model.factors}

    result = {
        "benchmark": "core engine",
        "quick": args.quick,
        "params": {"factors": params.factors, "iterations": params.iterations,
                   "regularization": params.regularization, "alpha": params.alpha,
                   "threads": 1},
        "repeat": args.repeat,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "window": window_rows,
        "fit": fit_rows,
        "serving_model": model_shape,
        "foldin": foldin_rows,
        "topn": topn_rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\n{'window':>9} {'users':>8} {'items':>7} {'nnz':>9} {'extend ev/s':>12} "
          f"{'build s':>8} {'contents s':>10}")
    for r in window_rows:
        print(f"{r['events']:>9,} {r['users']:>8,} {r['items']:>7,} {r['nnz']:>9,} "
              f"{r['extend_events_per_s']:>12,} {r['build_s']:>8} {r['contents_s']:>10}")
    print(f"\n{'window':>9} {'streamrec fit s':>16} {'bare implicit s':>16} {'ratio':>6}"
          f"   (factors {params.factors}, {params.iterations} iterations, 1 thread)")
    for r in fit_rows:
        print(f"{r['events']:>9,} {r['streamrec_fit_s']:>16} {r['bare_implicit_fit_s']:>16} "
              f"{r['ratio']:>6}")
    print(f"\nfold-in ({model_shape['items']:,} items, {model_shape['factors']} factors)"
          f"\n{'items/user':>10} {'p50 µs':>9} {'p99 µs':>9}")
    for r in foldin_rows:
        print(f"{r['items_per_user']:>10} {r['p50_us']:>9} {r['p99_us']:>9}")
    print(f"\n{'top-10, exclude seen':<44} {'p50 µs':>9} {'p99 µs':>9} {'µs/user':>9}")
    for r in topn_rows:
        print(f"{r['path']:<44} {r.get('p50_us', ''):>9} {r.get('p99_us', ''):>9} "
              f"{r.get('per_user_us', ''):>9}")
    print(f"(wrote {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
