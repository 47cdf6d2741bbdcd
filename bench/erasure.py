"""Forgetting and negative feedback: what they cost (docs/feedback.md).

Measures, on synthetic ``u<k>:i<k>`` events:

- ``SlidingWindow.erase`` of one user (O(W): the ring is rebuilt) at several window sizes;
- ``SlidingWindow.build`` with and without negative events (a negative event makes the build
  aggregate in arrival order, ``feedback.aggregate``);
- the trainer's per-batch tombstone filter: events/s through ``parse_batch`` alone and with the
  filter against 10 and 10,000 tombstones (keyed hashes: one HMAC-SHA256 per distinct id,
  cached, ``core/events/erasurekey.py``);
- redacting one user from the embedded log (``LocalLogSink.redact`` with the route's predicate:
  every record read, those holding the id's bytes parsed, the segments holding the user
  rewritten).

Prints a table and writes ``bench/results/erasure.json``.

    python bench/erasure.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from streamrec.adapters.locallog import LocalLogSink
from streamrec.core.events import parse_batch
from streamrec.core.events.erasure import Erasure, Tombstones
from streamrec.core.events.erasurekey import ErasureHasher, new_key
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.http import redaction

RESULTS = Path(__file__).parent / "results" / "erasure.json"
USERS, ITEMS = 50_000, 20_000


def _window(n: int, negative_share: float = 0.0) -> SlidingWindow:
    rng = np.random.default_rng(1)
    users = [f"u{k}" for k in rng.integers(0, USERS, n)]
    items = [f"i{k}" for k in rng.integers(0, ITEMS, n)]
    weights = np.where(rng.random(n) < negative_share, -3.0, 1.0)
    window = SlidingWindow(n)
    window.extend_columns(users, items, weights, np.arange(n, dtype=np.float64))
    return window


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def window_rows(sizes: list[int]) -> list[dict[str, object]]:
    rows = []
    for n in sizes:
        plain, signed = _window(n), _window(n, 0.05)
        build_plain = _best(plain.build)
        build_signed = _best(signed.build)
        erase = Tombstones.of([Erasure("user", "u7", float(n))], ErasureHasher(new_key()))
        t0 = time.perf_counter()
        dropped = plain.erase(erase)
        erase_s = time.perf_counter() - t0
        rows.append({"window": n, "erase_one_user_s": round(erase_s, 4), "dropped": dropped,
                     "build_s": round(build_plain, 4),
                     "build_with_5pct_negative_s": round(build_signed, 4),
                     "negative_vs_plain": round(build_signed / build_plain, 2)})
    return rows


def filter_rows(events: int) -> list[dict[str, object]]:
    values = [f"u{k % USERS}:i{k % ITEMS}".encode() for k in range(events)]
    rows = []
    for tombstones in (0, 10, 10_000):
        # A fresh hasher each: its digest cache starts cold, as in a new trainer.
        hasher = ErasureHasher(new_key())
        t = Tombstones.of((Erasure("user", f"gone{k}", 1.0) for k in range(tombstones)), hasher)

        def run(t: Tombstones = t) -> None:
            batch = parse_batch(values, default_ts=2.0)
            if len(t):
                [e for e in batch.events if not t.erased(e.user, e.item, e.ts)]

        seconds = _best(run)
        rows.append({"tombstones": tombstones, "events_per_s": round(events / seconds)})
    base = rows[0]["events_per_s"]
    for row in rows:
        row["vs_no_tombstones"] = round(float(row["events_per_s"]) / float(base), 3)  # type: ignore[arg-type]
    return rows


def redact_rows(sizes: list[int]) -> list[dict[str, object]]:
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-erasure-") as tmp:
            sink = LocalLogSink(tmp, segment_bytes=8 << 20)
            for k in range(n):
                sink.produce("t", f"u{k % USERS}:i{k % ITEMS}".encode())
            sink.flush()
            t0 = time.perf_counter()
            hasher = ErasureHasher(new_key())
            erasure = Erasure("user", "u7", 1e10).keyed(hasher)
            redacted = sink.redact("t", redaction.events(erasure, "auto", hasher))
            seconds = time.perf_counter() - t0
            sink.close()
        rows.append({"log_records": n, "redacted": redacted, "redact_s": round(seconds, 3),
                     "records_per_s": round(n / seconds)})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller windows and logs")
    args = p.parse_args(argv)
    sizes = [100_000, 300_000] if args.quick else [100_000, 1_000_000]
    logs = [50_000] if args.quick else [200_000, 1_000_000]
    result = {
        "benchmark": "forgetting and negative feedback",
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0],
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "window": window_rows(sizes),
        "trainer_filter": filter_rows(100_000 if args.quick else 500_000),
        "locallog_redact": redact_rows(logs),
    }
    biggest, log = result["window"][-1], result["locallog_redact"][-1]  # type: ignore[index]
    result["headline"] = [
        {"figure": f"erase one user from a {biggest['window']:,}-event window",
         "value": biggest["erase_one_user_s"], "unit": "s", "target": None},
        {"figure": f"redact one user from a {log['log_records']:,}-record embedded log",
         "value": log["redact_s"], "unit": "s", "target": None},
        {"figure": "trainer parse+filter with 10,000 tombstones vs none",
         "value": result["trainer_filter"][-1]["vs_no_tombstones"],  # type: ignore[index]
         "unit": "x", "target": None},
    ]
    print(f"{'window':>10} {'erase 1 user s':>15} {'build s':>9} {'build 5% neg s':>15}")
    for r in result["window"]:  # type: ignore[union-attr]
        print(f"{r['window']:>10} {r['erase_one_user_s']:>15} {r['build_s']:>9} "
              f"{r['build_with_5pct_negative_s']:>15}")
    print(f"\n{'tombstones':>10} {'events/s':>12} {'vs none':>8}")
    for r in result["trainer_filter"]:  # type: ignore[union-attr]
        print(f"{r['tombstones']:>10} {r['events_per_s']:>12} {r['vs_no_tombstones']:>8}")
    print(f"\n{'log records':>11} {'redact s':>9} {'records/s':>10}")
    for r in result["locallog_redact"]:  # type: ignore[union-attr]
        print(f"{r['log_records']:>11} {r['redact_s']:>9} {r['records_per_s']:>10}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
