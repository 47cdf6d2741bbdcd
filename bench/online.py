"""Online evaluation's cost: memory per tracked user and the time per list served or event judged.

Fills an `OnlineTracker` (serving/online/tracker.py) the way a serving worker does: ``serve()`` of a
10-item list per request (ids decoded afresh per request, as the model returns them), then
``observe()`` of events. Memory is the tracemalloc growth per tracked user at the LRU bound, with
one and with two lists held per user (the tracker keeps the previous list too); times are the
mean of many calls. The end-to-end cost on request latency (tracking on vs off in the same run)
is measured by bench/serving.py. Writes ``bench/results/online.json``.

    python bench/online.py [--users 50000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from streamrec.serving.online.tracker import OnlineTracker  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "online.json"
ITEMS = 50_000


def fresh_ids(k: int, n: int) -> list[str]:
    # New str objects per call, like a model decoding its id map for each response.
    return [f"item-{(k * 7919 + j * 104729) % ITEMS}" for j in range(n)]


def bytes_per_user(users: int, lists_per_user: int, n: int) -> float:
    tracker = OnlineTracker(max_users=users)
    names = [f"user-{u}" for u in range(users)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for round_ in range(lists_per_user):
        for u, name in enumerate(names):
            tracker.serve(f"{name}", "000000000042", fresh_ids(u + round_, n), now=float(u))
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(tracker) == users
    return (after - before) / users


def timings(calls: int, n: int) -> dict[str, float]:
    tracker = OnlineTracker(max_users=calls // 2)
    lists = [fresh_ids(k, n) for k in range(1000)]
    started = time.perf_counter()
    for k in range(calls):
        tracker.serve(f"user-{k % (calls // 2)}", "v1", lists[k % 1000], now=float(k))
    serve_us = 1e6 * (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for k in range(calls):
        tracker.observe(f"user-{k % (calls // 2)}", lists[k % 1000][k % n], 1.0,
                        None, float(k), float(k))
    observe_us = 1e6 * (time.perf_counter() - started) / calls
    return {"serve_us": serve_us, "observe_us": observe_us}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--users", type=int, default=50_000,
                   help="the LRU bound (default 50000, the config default)")
    p.add_argument("--n", type=int, default=10, help="list length (default 10)")
    p.add_argument("--quick", action="store_true", help="20,000 users")
    args = p.parse_args(argv)
    if args.quick:
        args.users = 20_000
    one = bytes_per_user(args.users, 1, args.n)
    two = bytes_per_user(args.users, 2, args.n)
    times = timings(2 * args.users, args.n)
    result = {"users": args.users, "list_length": args.n, "bytes_per_user_one_list": one,
              "bytes_per_user_two_lists": two,
              "mb_at_bound": two * args.users / 1e6, **times,
              "python": platform.python_version()}
    print(f"{'tracked users (LRU bound)':34} {args.users:>10,}")
    print(f"{'bytes per user, one list':34} {one:>10.0f}")
    print(f"{'bytes per user, two lists (held)':34} {two:>10.0f}")
    print(f"{'MB per worker at the bound':34} {result['mb_at_bound']:>10.1f}")
    print(f"{'us per serve() (list recorded)':34} {times['serve_us']:>10.2f}")
    print(f"{'us per observe() (event judged)':34} {times['observe_us']:>10.2f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
