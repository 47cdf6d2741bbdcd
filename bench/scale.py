"""A 10M-user snapshot per serving group: what one pod fetches, maps and keeps resident.

Builds a synthetic snapshot of the serving-groups issue's size (10M users, 1M items, 64
factors, 20 events a user) without a fit: random factors and skewed items, since sizes and
access patterns, not quality, are measured. The user side is what the trainer writes: ids with
their hash table, the user x item CSR, the ordered history (float32 weights and timestamps)
and the ALS user factors; the item side is the item factors, ids and popularity (the item-item
model and the HNSW graph, the same bytes in every group, are left out: ``bench/ann.py``
measures the graph). It is written twice into a `LocalStore`, as the trainer writes it for
one serving group (one user side) and for several (split into 4 partitions, format 9).

Then, for groups = 1, 2 and 4, group 0's replica runs in a process of its own (one pod; the
others would hold the same shares of their own users): the reloader's two calls, a fetch for
its shard (bytes fetched: what it would download from S3) and ``read_snapshot(verify=True,
mmap=True)`` (every fetched file's sha256 checked; with several partitions the merged copy
written once), timed together as the reload; then ``--requests`` recommendations for its own
users through ``Model.recommend``. It reports the bytes it maps (the snapshot files in its
``/proc/self/maps``), and RSS, PSS and USS from ``/proc/self/smaps_rollup``.

Disk: ~2 x 7 GB for the two snapshots plus the merged copy of a 2-group pod (~3.4 GB); peak
memory while building ~17 GB. Writes ``bench/results/scale.{json,md}`` and prints the table.

    python bench/scale.py [--quick] [--users 10000000] [--items 1000000] [--per-user 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _report import run_header  # noqa: E402
from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot  # noqa: E402
from streamrec.adapters.stores import LocalStore  # noqa: E402
from streamrec.core.groups import GroupLayout  # noqa: E402
from streamrec.core.ids import IdIndex, encode_ids, hash_table  # noqa: E402
from streamrec.core.scoring.als import ALS  # noqa: E402
from streamrec.core.scoring.model import ALSParams, Model  # noqa: E402
from streamrec.core.scoring.recency import History  # noqa: E402
from streamrec.core.snapshot.usersides import UserShard  # noqa: E402
from streamrec.core.window.sliding import SlidingWindow  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 4
WHOLE, SPLIT = "000000000001", "000000000002"
_ROLLUP = ("Rss", "Pss", "Private_Clean", "Private_Dirty")


def _ids(prefix: str, count: int) -> IdIndex:
    data, offsets = encode_ids([f"{prefix}{k}" for k in range(count)])
    return IdIndex(data, offsets, hash_table(data, offsets))


def synthetic_model(users: int, items: int, per_user: int, factors: int) -> Model:
    """A model of ``users`` x ``items`` with ``per_user`` events each (items skewed to the
    head), random float32 factors (scale 0.1), a history in arrival order."""
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    nnz = users * per_user
    indptr = np.arange(0, nnz + 1, per_user, dtype=np.int64)
    indices = (rng.random(nnz, dtype=np.float32) ** 2 * items).astype(np.int32)
    weights = rng.integers(1, 5, nnz, dtype=np.int8).astype(np.float32)
    ts = rng.random(nnz, dtype=np.float32) * np.float32(30 * 86400)
    history = History(indptr, indices, weights, ts, 1_700_000_000.0)
    user_items = sp.csr_matrix((weights, indices, indptr.astype(np.int32 if nnz < 2**31 - 1
                                                                 else np.int64)),
                               shape=(users, items), copy=False)
    params = ALSParams(factors=factors)
    scale = np.float32(0.1)
    als = ALS(rng.standard_normal((users, factors), dtype=np.float32) * scale,
              rng.standard_normal((items, factors), dtype=np.float32) * scale,
              params.regularization, params.alpha)
    popularity = np.bincount(indices, minlength=items).astype(np.float64)
    return Model({"als": als}, _ids("user-", users), _ids("item-", items), user_items,
                 popularity, params, history=history)


def build(store: LocalStore, args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    model = synthetic_model(args.users, args.items, args.per_user, args.factors)
    built = time.perf_counter() - started
    window = SlidingWindow(1).contents()  # serving never fetches the window
    out: dict[str, Any] = {"build_seconds": round(built, 1)}
    for version, parts in ((WHOLE, 1), (SPLIT, PARTITIONS)):
        t = time.perf_counter()
        write_snapshot(store.snapshots / version, model, window, {0: 0}, version, sync=False,
                       user_partitions=parts)
        out[f"write_seconds_{parts}"] = round(time.perf_counter() - t, 1)
        out[f"bytes_{parts}"] = _size(store.snapshots / version)
    return out


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*.npy"))


def pod(store_root: str, cache: str, groups: int, requests: int) -> dict[str, Any]:
    """Group 0's replica of ``groups``: fetch, verify and map (the reloader's calls), serve
    ``requests`` of its own users, measure itself."""
    store = LocalStore(Path(store_root))
    version = WHOLE if groups == 1 else SPLIT
    shard = None if groups == 1 else UserShard(
        PARTITIONS, frozenset(GroupLayout(groups, 0, PARTITIONS).owned))
    t = time.perf_counter()
    path = store.fetch(version, Path(cache), window=False, shard=shard)
    fetched = time.perf_counter() - t
    snapshot = read_snapshot(path, verify=True, mmap=True, window=False, shard=shard)
    reload_seconds = time.perf_counter() - t
    model = snapshot.model
    rng = np.random.default_rng(groups)
    rows = rng.integers(0, len(model.user_ids), requests)
    took = []
    for row in rows:
        s = time.perf_counter()
        model.recommend(model.user_ids[int(row)], n=10)
        took.append(time.perf_counter() - s)
    rollup = _rollup()
    mapped, resident = _mapped(Path(cache))
    return {
        "groups": groups, "partitions": sorted(shard.owned) if shard else list(range(PARTITIONS)),
        "users": len(model.user_ids), "fetched_bytes": _size(path) - _size_views(path),
        "fetch_seconds": round(fetched, 2), "reload_seconds": round(reload_seconds, 2),
        "mapped_bytes": mapped, "mapped_resident_bytes": resident,
        "rss": rollup["Rss"], "pss": rollup["Pss"],
        "uss": rollup["Private_Clean"] + rollup["Private_Dirty"],
        "recommend_p50_ms": round(float(np.percentile(took, 50)) * 1e3, 2),
        "requests": requests,
    }


def _size_views(path: Path) -> int:
    return sum(p.stat().st_size for v in path.glob(".users-*") for p in v.glob("*.npy"))


def _rollup() -> dict[str, int]:
    out = dict.fromkeys(_ROLLUP, 0)
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in out:
            out[key] = int(rest.split()[0]) * 1024
    return out


def _mapped(cache: Path) -> tuple[int, int]:
    """Bytes of this process's mappings of files under ``cache`` (the snapshot it serves), and
    how many of them are resident (``/proc/self/smaps``)."""
    size = rss = 0
    inside, root = False, str(cache.resolve())
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", head[0]):
            inside = len(head) == 6 and head[5].startswith(root)
            if inside:
                start, end = (int(x, 16) for x in head[0].split("-"))
                size += end - start
        elif inside and head[0] == "Rss:":
            rss += int(head[1]) * 1024
    return size, rss


def _gb(n: float) -> str:
    return f"{n / 1e9:.2f}"


def table(report: dict[str, Any]) -> str:
    m, b = report["model"], report["build"]
    lines = [
        f"Synthetic snapshot: {m['users']:,} users x {m['items']:,} items, {m['factors']} "
        f"factors, {m['per_user']} events a user; {report['partitions']} partitions. Built in "
        f"{b['build_seconds']} s; written whole ({_gb(b['bytes_1'])} GB, "
        f"{b['write_seconds_1']} s) and split ({_gb(b[f'bytes_{PARTITIONS}'])} GB, "
        f"{b[f'write_seconds_{PARTITIONS}']} s).",
        "",
        "| groups | group 0's partitions | users | fetched GB | reload s | mapped GB | "
        "of it resident GB | RSS GB | PSS GB | USS GB | recommend p50 ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in report["pods"]:
        lines.append(
            f"| {p['groups']} | {', '.join(map(str, p['partitions']))} | {p['users']:,} | "
            f"{_gb(p['fetched_bytes'])} | {p['reload_seconds']} | {_gb(p['mapped_bytes'])} | "
            f"{_gb(p['mapped_resident_bytes'])} | {_gb(p['rss'])} | {_gb(p['pss'])} | "
            f"{_gb(p['uss'])} | {p['recommend_p50_ms']} |")
    lines += ["", "Reload: fetch (hard links from a LocalStore: S3 would add the download) "
              "+ sha256 of every fetched file + mapping + building the model (+ the merged "
              "copy of several partitions, written once per pod). Resident: the pages of the "
              "mapped snapshot the pod touched (the load's checks read every id table, CSR "
              "index and history item once). RSS/PSS/USS after the "
              f"reload and {report['pods'][0]['requests']} recommendations of the pod's own "
              "users (exact scoring over every item), the pod alone on the machine."]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200k users x 20k items")
    ap.add_argument("--users", type=int, default=10_000_000)
    ap.add_argument("--items", type=int, default=1_000_000)
    ap.add_argument("--per-user", type=int, default=20)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--pod", nargs=3, metavar=("STORE", "CACHE", "GROUPS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pod:
        print(json.dumps(pod(args.pod[0], args.pod[1], int(args.pod[2]), args.requests)))
        return 0
    if args.quick:
        args.users, args.items = 200_000, 20_000
    started = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    try:
        store = LocalStore(tmp / "store")
        built = build(store, args)
        pods = []
        for groups in (1, 2, 4):
            run = subprocess.run(
                [sys.executable, __file__, "--requests", str(args.requests), "--pod",
                 str(store.root), str(tmp / f"cache-{groups}"), str(groups)],
                capture_output=True, text=True, check=True, timeout=1800)
            pods.append(json.loads(run.stdout.strip().splitlines()[-1]))
            shutil.rmtree(tmp / f"cache-{groups}", ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        **run_header("scale", args.quick, started, load_before),
        "model": {"users": args.users, "items": args.items, "per_user": args.per_user,
                  "factors": args.factors},
        "partitions": PARTITIONS, "build": built, "pods": pods,
    }
    text = table(report)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "scale.md").write_text(
        "# A 10M-user snapshot per serving group\n\n" + re.sub(r"\n{3,}", "\n\n", text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
