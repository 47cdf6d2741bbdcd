"""Client event ids: what de-duplicating retries costs (docs/reliability.md, "Delivery").

Measures, on synthetic events in batches of 1,000 (the trainer's poll size order):

- ``SlidingWindow.extend`` in events/s without ids, with 36-byte ids (a UUID) and with 128-byte
  ids (the limit), over three window lengths, so the ring wraps and ids leave with their events;
- the same for a batch that is entirely a retry (every id already in the window);
- the memory of a full window with and without ids (``tracemalloc``), hence bytes per id;
- ``contents()`` (what a snapshot stores) with and without ids.

Prints a table and writes ``bench/results/eventids.json``.

    python bench/eventids.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import tracemalloc
from pathlib import Path
from typing import Any

from streamrec.core.events import Event
from streamrec.core.window.sliding import SlidingWindow

RESULTS = Path(__file__).parent / "results" / "eventids.json"
BATCH = 1_000


def _events(n: int, id_bytes: int) -> list[Event]:
    return [Event(f"u{k % 50_000}", f"i{(k * 7) % 20_000}", 1.0, 1.7e9 + k,
                  event_id=f"{k:0{id_bytes}d}" if id_bytes else None) for k in range(n)]


def _extend(window: SlidingWindow, events: list[Event]) -> float:
    start = time.perf_counter()
    for s in range(0, len(events), BATCH):
        window.extend(events[s:s + BATCH])
    return len(events) / (time.perf_counter() - start)


def bench(size: int, id_bytes: int) -> dict[str, Any]:
    events = _events(3 * size, id_bytes)
    window = SlidingWindow(size)
    rate = _extend(window, events)
    retry_rate = _extend(window, events[-size:])  # all still in the window: all dropped
    assert window.duplicates == (size if id_bytes else 0)
    start = time.perf_counter()
    window.contents()
    contents_s = time.perf_counter() - start
    tracemalloc.start()
    fresh = SlidingWindow(size)
    _extend(fresh, _events(size, id_bytes))
    memory, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {"window": size, "id_bytes": id_bytes, "extend_ev_per_s": round(rate),
            "retry_ev_per_s": round(retry_rate), "contents_s": round(contents_s, 4),
            "memory_mb": round(memory / 1e6, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one 50k-event window")
    args = parser.parse_args()
    sizes = [50_000] if args.quick else [50_000, 200_000]
    rows = [bench(size, b) for size in sizes for b in (0, 36, 128)]
    for size in sizes:
        base = next(r for r in rows if r["window"] == size and r["id_bytes"] == 0)
        for r in rows:
            if r["window"] == size and r["id_bytes"]:
                r["bytes_per_id"] = round((r["memory_mb"] - base["memory_mb"]) * 1e6 / size)
    print(f"{'window':>8} {'id bytes':>8} {'extend ev/s':>12} {'retry ev/s':>11} "
          f"{'contents s':>10} {'memory MB':>9} {'B/id':>5}")
    for r in rows:
        print(f"{r['window']:>8,} {r['id_bytes']:>8} {r['extend_ev_per_s']:>12,} "
              f"{r['retry_ev_per_s']:>11,} {r['contents_s']:>10} {r['memory_mb']:>9} "
              f"{r.get('bytes_per_id', ''):>5}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"rows": rows, "batch": BATCH, "cpus": os.cpu_count(),
                                   "python": platform.python_version()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
