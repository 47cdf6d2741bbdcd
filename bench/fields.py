"""Item fields in lists: what ``fields=title,categories`` adds to a request (http/fields.py).

A model of ``--items`` items with random factors (the cost of the fields does not depend on the
fit) and a catalogue where every item has a record: a title, 1-3 of 20 categories and two
labels. The app is the real one (`create_app`, a real snapshot in a `LocalStore`, its
catalogue taken from the snapshot), called through Flask's test client, one thread. Timed:

- ``helper``: `parse_fields` of ``title,categories`` plus `add_fields` on a top-10 (what a
  route adds before encoding);
- ``encode``: the JSON encoding of a top-10 answer with the two fields, minus without;
- ``request``: ``GET /users/{user}/recommendations?n=10`` without and with
  ``&fields=title,categories``, back to back for the same user (same list), and the added
  cost: the whole of it, parse to bytes. The second request of a pair runs some tens of µs
  faster than the first (caches warmed by the first), so the order alternates and the figure
  is the mean of the two orders' p50 differences, which cancels that bias; a control pair
  (``&exclude_seen=true``, the default spelled out) measured the same way should come out
  near zero.

The target (issue 31) is at most 0.1 ms p50 added for ten items with two fields. Writes
``bench/results/fields.json`` with its headline rows and prints a table. Single-threaded.

    python bench/fields.py [--items 20000] [--calls 3000] [--quick]
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

import numpy as np  # noqa: E402

from catalog import timed  # noqa: E402  (bench/catalog.py's p50/p99 timer)
from serving import build_model  # noqa: E402  (bench/serving.py's random-factor model)
from streamrec.adapters.snapshotfiles import write_snapshot  # noqa: E402
from streamrec.adapters.stores import LocalStore  # noqa: E402
from streamrec.config import Config  # noqa: E402
from streamrec.core.catalog.records import Catalogue, ItemRecord  # noqa: E402
from streamrec.serving.app import create_app  # noqa: E402
from streamrec.serving.http.fields import add_fields, parse_fields  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "fields.json"
CATEGORIES = [f"genre-{k}" for k in range(20)]
FIELDS = "title,categories"
TARGET_MS = 0.1


def build_catalogue(items: int, seed: int = 0) -> Catalogue:
    """A record for each of ``i0``..: a title, 1-3 of 20 categories, two labels."""
    rng = np.random.default_rng(seed)
    return Catalogue(
        ItemRecord(f"i{k}", tuple(str(c) for c in rng.choice(
            CATEGORIES, size=int(rng.integers(1, 4)), replace=False)),
            labels={"year": str(1950 + k % 70), "studio": f"s{k % 40}"},
            title=f"A film called number {k} ({1950 + k % 70})")
        for k in range(items))


def quantiles(us: list[float]) -> dict[str, float]:
    a = np.asarray(us)
    return {"p50_us": round(float(np.percentile(a, 50)), 2),
            "p99_us": round(float(np.percentile(a, 99)), 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--quick", action="store_true", help="5k items, 800 calls")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.items, args.users, args.events, args.calls = 5_000, 1_000, 30_000, 800
    started = time.perf_counter()
    model, window = build_model(args.users, args.items, args.events, args.factors)
    catalogue = build_catalogue(args.items)
    tmp = Path(tempfile.mkdtemp(prefix="bench-fields-"))
    store = LocalStore(tmp / "store")
    write_snapshot(tmp / "build", model, window.contents(), {0: 0}, "000000000001", sync=False,
                   catalog=catalogue.to_arrays({}, model.item_ids))
    store.publish(tmp / "build", "000000000001")
    app = create_app(Config(cache_dir=str(tmp / "cache")), store=store)
    service = app.extensions["streamrec"]
    assert service.reloader.check_once() and len(service.catalogue) == args.items
    client = app.test_client()
    users = [f"u{(k * 7919) % args.users}" for k in range(args.calls)]
    tops = [[{"item": i, "score": s} for i, s in zip(r.items, r.scores, strict=True)]
            for r in (model.recommend(u, n=10) for u in users[:200])]

    def helper(k: int) -> float:
        items = [dict(x) for x in tops[k % len(tops)]]  # the route builds them anyway
        t = time.perf_counter()
        add_fields(items, parse_fields([FIELDS]), service.catalogue)
        return time.perf_counter() - t

    helper_us = [1e6 * helper(k) for k in range(args.calls)]

    def body(k: int, fields: tuple[str, ...]) -> dict[str, Any]:
        items = add_fields([dict(x) for x in tops[k % len(tops)]], fields, service.catalogue)
        return {"user": "u1", "items": items, "model_version": "000000000001",
                "fallback": None, "fresh_events": 0, "recommendation_id": "0123456789abcdef"}

    plain_bodies = [body(k, ()) for k in range(len(tops))]
    rich_bodies = [body(k, ("title", "categories")) for k in range(len(tops))]
    with app.app_context():
        dumps = app.json.dumps
        enc_plain = timed(lambda k: dumps(plain_bodies[k % len(tops)]), args.calls)
        enc_rich = timed(lambda k: dumps(rich_bodies[k % len(tops)]), args.calls)
        size = (len(dumps(plain_bodies[0])), len(dumps(rich_bodies[0])))

    def get(url: str) -> float:
        t = time.perf_counter()
        r = client.get(url)
        took = (time.perf_counter() - t) * 1e6
        assert r.status_code == 200, r.get_data(as_text=True)
        return took

    for u in users[:100]:  # warm: first requests pay for imports and caches
        get(f"/users/{u}/recommendations?n=10&fields={FIELDS}")
    def paired(extra: str) -> tuple[list[float], list[float], float]:
        """(without, with) request times and the order-balanced p50 of their difference."""
        without: list[float] = []
        with_: list[float] = []
        orders: tuple[list[float], list[float]] = ([], [])
        for k, u in enumerate(users):
            url = f"/users/{u}/recommendations?n=10"
            if k % 2 == 0:
                a = get(url)
                b = get(url + extra)
            else:
                b = get(url + extra)
                a = get(url)
            without.append(a)
            with_.append(b)
            orders[k % 2].append(b - a)
        return without, with_, float(np.mean([np.percentile(o, 50) for o in orders]))

    plain, rich, added_us = paired(f"&fields={FIELDS}")
    _, _, control_us = paired("&exclude_seen=true")
    check = client.get(f"/users/{users[0]}/recommendations?n=10&fields={FIELDS}").get_json()
    assert all(x["title"] and x["categories"] for x in check["items"])

    rows = [
        {"path": "helper: parse_fields + add_fields, 10 items", **quantiles(helper_us)},
        {"path": "JSON encoding of a top-10, without fields", **enc_plain},
        {"path": f"JSON encoding of a top-10, fields={FIELDS}", **enc_rich},
        {"path": "GET /users/{u}/recommendations?n=10", **quantiles(plain)},
        {"path": f"GET ...&fields={FIELDS}", **quantiles(rich)},
        {"path": "added per request (order-balanced p50 difference)",
         "p50_us": round(added_us, 2), "p99_us": None},
        {"path": "control: &exclude_seen=true (the default) added",
         "p50_us": round(control_us, 2), "p99_us": None},
    ]
    added_ms = round(added_us / 1000, 4)
    plain_ms = round(float(np.percentile(plain, 50)) / 1000, 4)
    helper_ms = round(float(np.percentile(helper_us, 50)) / 1000, 4)
    headline = [
        {"figure": f"fields={FIELDS} on a top-10: added per request (p50, test client)",
         "value": added_ms, "unit": "ms", "reference": "the request without fields, p50",
         "reference_value": plain_ms, "target": f"<= {TARGET_MS} ms",
         "met": added_ms <= TARGET_MS},
        {"figure": "fields helper alone (parse + add, 10 items, p50)", "value": helper_ms,
         "unit": "ms", "target": f"<= {TARGET_MS} ms", "met": helper_ms <= TARGET_MS},
    ]
    result = {"benchmark": "fields", "quick": args.quick, "items": args.items,
              "users": args.users, "calls": args.calls, "fields": FIELDS,
              "response_bytes_without": size[0], "response_bytes_with": size[1],
              "python": sys.version.split()[0], "platform": platform.platform(),
              "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "seconds": round(time.perf_counter() - started, 1), "rows": rows,
              "headline": headline}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"fields={FIELDS} on a top-10 ({args.items:,} items with records, {args.calls} calls, "
          f"load {result['load_avg_1m']}; {size[0]} -> {size[1]} bytes)\n"
          f"{'path':<52} {'p50 µs':>9} {'p99 µs':>9}")
    for r in rows:
        print(f"{r['path']:<52} {r['p50_us']:>9} {r['p99_us'] or '–':>9}")
    print(f"added p50 {added_ms} ms (target <= {TARGET_MS} ms: "
          f"{'met' if added_ms <= TARGET_MS else 'NOT met'}); (wrote {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
