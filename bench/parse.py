"""Event parsing throughput: events per second for the batch and single-message paths.

Generates synthetic interactions (text ``user:item[:weight]`` and MovieLens-style JSON), parses
them the way the consumers do (``parse_batch`` on poll-sized batches, with the Kafka timestamp
as the default), and writes ``bench/results/parse.json``. Single-threaded; best of N repeats.

    python bench/parse.py [--events 200000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from streamrec.core.events import parse_batch, parse_event

RESULTS = Path(__file__).parent / "results" / "parse.json"


def make_text(n: int, rng: random.Random) -> list[bytes]:
    """Half ``user:item``, half ``user:item:weight``, ids like real catalogue keys."""
    out = []
    for k in range(n):
        user, item = f"user-{rng.randrange(100_000)}", f"item-{rng.randrange(20_000)}"
        if k % 2:
            out.append(f"{user}:{item}".encode())
        else:
            out.append(f"{user}:{item}:{rng.choice(('1', '2', '3', '4', '5', '0.5'))}".encode())
    return out


def make_json(n: int, rng: random.Random) -> list[bytes]:
    return [
        json.dumps(
            {
                "user": rng.randrange(100_000),
                "item": f"item-{rng.randrange(20_000)}",
                "rating": rng.randrange(1, 6),
                "timestamp": 978_300_000 + rng.randrange(10_000_000),
            }
        ).encode()
        for _ in range(n)
    ]


def best_rate(run: Callable[[], int], n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        accepted = run()
        best = min(best, time.perf_counter() - start)
        assert accepted > 0
    return n / best


def batched(values: Sequence[bytes], size: int, min_weight: float | None = None) -> int:
    accepted = 0
    for start in range(0, len(values), size):
        chunk = values[start : start + size]
        accepted += len(parse_batch(chunk, "auto", min_weight, 1_700_000_000.0).events)
    return accepted


def one_by_one(values: Sequence[bytes]) -> int:
    return sum(1 for v in values if parse_event(v, "auto", 1_700_000_000.0))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):  # measure one core, as the target says
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    rng = random.Random(42)
    n = args.events
    text, js = make_text(n, rng), make_json(n, rng)
    mixed = [t if k % 10 else j for k, (t, j) in enumerate(zip(text, js, strict=True))]
    dirty = [b"user-1:item-1:not-a-number" if k % 100 == 0 else t for k, t in enumerate(text)]
    cases = [
        ("text", "parse_batch, batches of 500", lambda: batched(text, 500)),
        ("text", "parse_batch, batches of 10000", lambda: batched(text, 10_000)),
        ("text", "parse_batch, 500, min_weight=2", lambda: batched(text, 500, 2.0)),
        ("text", "parse_batch, 500, 1% invalid", lambda: batched(dirty, 500)),
        ("text+json", "parse_batch, 500, 10% JSON", lambda: batched(mixed, 500)),
        ("json", "parse_batch, batches of 500", lambda: batched(js, 500)),
        ("text", "parse_event, one at a time", lambda: one_by_one(text)),
        ("json", "parse_event, one at a time", lambda: one_by_one(js)),
    ]
    rows = []
    for fmt, how, run in cases:
        rate = best_rate(run, n, args.repeat)
        rows.append({"format": fmt, "path": how, "events_per_s": round(rate)})

    result = {
        "benchmark": "event parsing",
        "events": n,
        "repeat": args.repeat,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "target_text_events_per_s": 500_000,
        "results": rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")

    print(f"{'format':<10} {'path':<34} {'events/s':>12}")
    for row in rows:
        print(f"{row['format']:<10} {row['path']:<34} {row['events_per_s']:>12,}")
    print(f"(best of {args.repeat}, {n} events, Python {result['python']}; wrote {args.output})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
