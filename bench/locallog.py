"""The embedded event log: append and read throughput, and append-to-visible latency.

Appends synthetic ``user:item`` records through `LocalLogSink` (batched fsync: the defaults of
`streamrec run`), reads them back with `LocalLogSource`, and measures how long a single appended
record takes to become visible to a reader waiting in the same process (bounded by the fsync
interval, as readers never see past the durable high watermark). Writes
``bench/results/locallog.json``.

    python bench/locallog.py [--records 200000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from streamrec.adapters.locallog import LocalLogSink, LocalLogSource

RESULTS = Path(__file__).parent / "results" / "locallog.json"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--latency-samples", type=int, default=200)
    p.add_argument("--quick", action="store_true", help="20,000 records, 50 latency samples")
    args = p.parse_args(argv)
    if args.quick:
        args.records, args.latency_samples = 20_000, 50
    values = [f"user-{i % 5000}:item-{i % 1700}".encode() for i in range(args.records)]
    with tempfile.TemporaryDirectory(prefix="bench-locallog-") as tmp:
        sink = LocalLogSink(tmp)
        t0 = time.perf_counter()
        for v in values:
            sink.produce("interactions", v)
        sink.flush()
        append_s = time.perf_counter() - t0
        src = LocalLogSource(tmp, "interactions")
        t0 = time.perf_counter()
        n = 0
        while n < args.records:
            n += len(src.poll(10_000, 1.0))
        read_s = time.perf_counter() - t0

        lat: list[float] = []
        for _ in range(args.latency_samples):
            sent = [0.0]

            def later(sent: list[float] = sent) -> None:
                sent[0] = time.perf_counter()
                sink.produce("interactions", b"late:one")

            timer = threading.Timer(0.001, later)
            timer.start()
            while not src.poll(10, 1.0):
                pass
            lat.append((time.perf_counter() - sent[0]) * 1000)
            timer.join()
        sink.close()
        size = sum(f.stat().st_size for f in (Path(tmp) / "interactions").glob("*.log"))
    result = {
        "benchmark": "embedded local log", "records": args.records,
        "python": platform.python_version(), "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "fsync": "every 1000 records or 20 ms (defaults)",
        "append_records_per_s": round(args.records / append_s),
        "read_records_per_s": round(args.records / read_s),
        "bytes_per_record": round(size / (args.records + args.latency_samples), 1),
        "visible_latency_ms_p50": round(statistics.median(lat), 2),
        "visible_latency_ms_p99": round(sorted(lat)[int(len(lat) * 0.99) - 1], 2),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
