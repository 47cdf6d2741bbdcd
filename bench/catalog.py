"""Filtered top-n: what the catalogue filter (core/catalog/filters.py) adds to a recommendation.

A model of ``--items`` items with random factors (the filter's cost does not depend on how
the factors were fitted) and a catalogue where each item has 1-3 of 20 categories with Zipf
frequencies, 5% are hidden and 10% expire (half of them already expired). For one known user
at a time, ``Model.recommend(n=10)`` with exclude-seen is timed:

- ``none``: no restriction at all (the baseline, as before the catalogue);
- ``hidden+expired``: the restriction every request gets (no category);
- ``category=<common>`` (~30% of the items), ``category=<rare>`` (~1%), ``any of 3`` and
  ``all of 2``: with the category whitelist;
- ``restrict only``: `CatalogueIndex.restrict` alone (the per-request part of the filter);
- ``after a change``: the first restrict after a record changed (re-resolving hidden and
  expiring ids to model indices; one request per change pays it).

Each row is p50/p99 over ``--calls`` users. Writes ``bench/results/catalog.json`` and prints a
table. Single-threaded.

    python bench/catalog.py [--items 50000] [--calls 2000] [--quick]
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
import scipy.sparse as sp  # noqa: E402

from streamrec.core.catalog.filters import CatalogueIndex, ItemFilter, Restriction  # noqa: E402
from streamrec.core.catalog.records import Catalogue, ItemRecord  # noqa: E402
from streamrec.core.scoring.als import ALS  # noqa: E402
from streamrec.core.scoring.model import ALSParams, Model  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "catalog.json"
CATEGORIES = [f"c{k}" for k in range(20)]


def build(items: int, users: int, factors: int, seed: int = 0) -> tuple[Model, Catalogue]:
    rng = np.random.default_rng(seed)
    seen = sp.random(users, items, density=min(1.0, 30 / items), format="csr", random_state=seed,
                     dtype=np.float32)
    params = ALSParams(factors=factors)
    als = ALS(rng.normal(0, 0.1, (users, factors)).astype(np.float32),
              rng.normal(0, 0.1, (items, factors)).astype(np.float32),
              params.regularization, params.alpha)
    model = Model({"als": als},
                  [f"u{u}" for u in range(users)], [f"i{i}" for i in range(items)], seen,
                  np.asarray(seen.sum(axis=0)).ravel().astype(np.float64),
                  params)
    weights = 1.0 / np.arange(1, len(CATEGORIES) + 1)
    weights /= weights.sum()
    now = time.time()
    catalogue = Catalogue()
    for i in range(items):
        cats = rng.choice(CATEGORIES, size=int(rng.integers(1, 4)), replace=False, p=weights)
        roll = rng.random()
        catalogue.upsert(ItemRecord(
            f"i{i}", tuple(str(c) for c in cats), hidden=roll < 0.05,
            expires_at=(now - 60 if roll < 0.10 else now + 3600) if roll < 0.15 else None))
    return model, catalogue


def timed(run: Callable[[int], object], calls: int) -> dict[str, float]:
    samples = []
    for k in range(calls):
        start = time.perf_counter()
        run(k)
        samples.append(time.perf_counter() - start)
    us = np.asarray(samples) * 1e6
    return {"p50_us": round(float(np.percentile(us, 50)), 1),
            "p99_us": round(float(np.percentile(us, 99)), 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="10k items, 300 calls")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.users, args.calls = 10_000, 1_000, 300
    model, catalogue = build(args.items, args.users, args.factors)
    index = CatalogueIndex(catalogue)
    ids = model.item_ids
    share = {c: len(catalogue.members(c)) / args.items for c in CATEGORIES}
    common, rare = CATEGORIES[0], CATEGORIES[-1]
    filters: list[tuple[str, ItemFilter | None]] = [
        ("hidden+expired", None),
        (f"category={common} ({share[common]:.0%})", ItemFilter((common,))),
        (f"category={rare} ({share[rare]:.1%})", ItemFilter((rare,))),
        ("any of c1,c2,c3", ItemFilter(("c1", "c2", "c3"))),
        ("all of c0,c1", ItemFilter(("c0", "c1"), "all")),
    ]
    index.restrict(ids, None, time.time())  # resolve once, as a served worker has
    rows: list[dict[str, Any]] = []

    def user(k: int) -> str:
        return f"u{(k * 7919) % args.users}"

    rows.append({"path": "none", **timed(lambda k: model.recommend(user(k), n=10), args.calls)})
    for name, flt in filters:
        def run(k: int, flt: ItemFilter | None = flt) -> object:
            restrict: Restriction = index.restrict(ids, flt, time.time())
            got = model.recommend(user(k), n=10, restrict=restrict)
            assert len(got.items) == 10  # filtered inside ranking: still n long
            return got
        rows.append({"path": name, **timed(run, args.calls)})
    rows.append({"path": "restrict only (category=c0)", **timed(
        lambda k: index.restrict(ids, ItemFilter((common,)), time.time()), args.calls)})

    def after_change(k: int) -> object:
        catalogue.upsert(ItemRecord(f"i{k}", ("c0",), hidden=k % 2 == 0))
        return index.restrict(ids, None, time.time())
    rows.append({"path": "restrict after a change (hidden+expired)",
                 **timed(after_change, max(20, args.calls // 20))})

    result = {"benchmark": "filtered top-n", "quick": args.quick, "items": args.items,
              "users": args.users, "factors": args.factors, "calls": args.calls,
              "hidden": len(catalogue.hidden()), "expiring": len(catalogue.expiring()),
              "python": sys.version.split()[0], "platform": platform.platform(),
              "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"top-10 for one user, exclude seen ({args.items:,} items, {args.factors} factors, "
          f"load {result['load_avg_1m']})\n{'path':<44} {'p50 µs':>9} {'p99 µs':>9}")
    for r in rows:
        print(f"{r['path']:<44} {r['p50_us']:>9} {r['p99_us']:>9}")
    print(f"(wrote {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
