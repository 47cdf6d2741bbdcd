"""Hot reloads under load: failed requests, latency and worker RSS while snapshots change.

Runs the soak of ``tests/faults/test_soak.py`` (the same code, ``tests/support/soak.py``):
`streamrec serve` under gunicorn (2 workers × 4 threads) on a real snapshot, a real Kafka broker
for fold-in traffic, 32 client threads on the read API, one thread posting events, and three
new snapshots published during the run. The test asserts the invariants (0 failures, flat
RSS); this benchmark records the figures in ``bench/results/soak.json``.

    python bench/soak.py [--seconds 30] [--quick]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.infra, tests.support

from tests.infra.kafka import KafkaBroker  # noqa: E402
from tests.support.soak import CONCURRENCY, run_soak  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "soak.json"


def headline(run: dict[str, Any]) -> list[dict[str, Any]]:
    worst = max((r["growth"] or 0.0) for r in run["rss"].values())
    return [
        {"figure": f"failed requests over {run['reloads']} hot reloads (c{CONCURRENCY})",
         "value": run["failed"], "unit": "requests", "reference": "requests made",
         "reference_value": run["requests"], "target": "0"},
        {"figure": "request latency p99 during reloads", "value": run["p99_ms"], "unit": "ms",
         "reference": "p50", "reference_value": run["p50_ms"],
         "ratio": round(run["p99_ms"] / run["p50_ms"], 2) if run["p50_ms"] else None},
        {"figure": "worker RSS growth after warm-up", "value": round(100 * worst, 1),
         "unit": "%", "target": f"<= {100 * run['rss_tolerance']:.0f}%"},
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--quick", action="store_true", help="a 12 s soak")
    p.add_argument("--output", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    seconds = 12.0 if args.quick else args.seconds
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        broker = KafkaBroker(Path(tmp) / "kafka")
        broker.start()
        try:
            run = run_soak(broker, Path(tmp), seconds)
        finally:
            broker.stop()
    run.pop("rss_timeline_mb", None)
    result = {"benchmark": "hot reloads under load (soak)", "python": run.pop("python"),
              "machine": run.pop("machine"),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "headline": headline(run), **run}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'figure':<52} {'value':>10}")
    for row in result["headline"]:
        print(f"{row['figure']:<52} {row['value']:>10} {row['unit']}")
    print(f"{run['requests']} requests in {run['duration_s']} s ({run['req_per_s']} req/s), "
          f"versions {run['versions_seen']}; wrote {args.output}")
    return 0 if run["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
