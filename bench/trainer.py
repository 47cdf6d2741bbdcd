"""Trainer throughput: ingest events/s (in-process and from a real Kafka), retrain time vs window.

- ``ingest``: poll-sized batches through ``ingest`` (parse + DLQ split) and the sliding window;
- ``step``: the whole ``Trainer.step`` over an in-memory log (no retrains);
- ``kafka`` (``--kafka``): a real KRaft broker from ``tests/infra``; the trainer consumes N
  pre-produced events with ``KafkaSource`` end to end;
- ``retrain``: ``window.build()`` + ``fit`` + ``write_snapshot`` for Zipf-distributed synthetic
  windows of each size.

Writes ``bench/results/trainer.json`` and prints a table.

    python bench/trainer.py [--events 500000] [--windows 10000,100000,1000000] [--kafka]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.infra

import numpy as np  # noqa: E402

from streamrec.adapters.source import SourceMessage  # noqa: E402
from streamrec.adapters.stores import LocalStore  # noqa: E402
from streamrec.config import Config  # noqa: E402
from streamrec.core.model import fit  # noqa: E402
from streamrec.core.snapshot import write_snapshot  # noqa: E402
from streamrec.core.window import SlidingWindow  # noqa: E402
from streamrec.trainer.ingest import ingest  # noqa: E402
from streamrec.trainer.service import Trainer  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "trainer.json"
BATCH = 10_000


def zipf_values(n: int, users: int, items: int, seed: int = 7) -> list[bytes]:
    rng = np.random.default_rng(seed)
    u = (rng.zipf(1.3, n) - 1) % users
    i = (rng.zipf(1.2, n) - 1) % items
    return [f"user-{a}:item-{b}".encode() for a, b in zip(u.tolist(), i.tolist(), strict=True)]


def messages(values: Sequence[bytes]) -> list[SourceMessage]:
    return [SourceMessage(0, k, v, timestamp=1.7e9) for k, v in enumerate(values)]


class MemorySource:
    """The smallest EventSource: one partition, all in memory."""

    def __init__(self, msgs: list[SourceMessage]) -> None:
        self.msgs, self.next = msgs, 0

    def partitions(self) -> list[int]:
        return [0]

    def seek(self, offsets: Mapping[int, int]) -> None:
        self.next = offsets.get(0, 0)

    def poll(self, max_messages: int, timeout: float) -> list[SourceMessage]:
        out = self.msgs[self.next:self.next + max_messages]
        self.next += len(out)
        return out

    def positions(self) -> dict[int, int]:
        return {0: self.next}

    def lag(self) -> int | None:
        return len(self.msgs) - self.next

    def close(self) -> None:
        pass


def bench_ingest(msgs: list[SourceMessage], window_size: int) -> float:
    window = SlidingWindow(window_size)
    start = time.perf_counter()
    for k in range(0, len(msgs), BATCH):
        window.extend(ingest(msgs[k:k + BATCH]).events)
    return len(msgs) / (time.perf_counter() - start)


def bench_step(msgs: list[SourceMessage], cfg: Config, tmp: Path) -> float:
    trainer = Trainer(cfg, MemorySource(msgs), None, LocalStore(tmp / "store"),
                      workdir=tmp / "work", max_batch=BATCH)
    trainer.resume()
    start = time.perf_counter()
    while trainer.window.total_appended < len(msgs):
        trainer.step(timeout=0.0)
    rate = len(msgs) / (time.perf_counter() - start)
    trainer.shutdown()
    return rate


def bench_kafka(values: list[bytes], cfg: Config, tmp: Path) -> float:
    from tests.infra.kafka import KafkaBroker

    from streamrec.adapters.kafka import KafkaSink, KafkaSource

    broker = KafkaBroker(tmp / "kafka")
    broker.start()
    try:
        topic = broker.create_topic("bench", partitions=4)
        cfg = Config(**{**cfg.__dict__, "bootstrap_servers": broker.bootstrap, "topic": topic})
        sink = KafkaSink(cfg, linger_ms=20)
        for k, v in enumerate(values):
            sink.produce(topic, v, key=str(k % 1000).encode())
        sink.flush(120)
        trainer = Trainer(cfg, KafkaSource(cfg, topic), None, LocalStore(tmp / "kstore"),
                          workdir=tmp / "kwork", max_batch=BATCH)
        trainer.resume()
        start = time.perf_counter()
        deadline = time.monotonic() + 600
        while trainer.window.total_appended < len(values) and time.monotonic() < deadline:
            trainer.step(timeout=0.5)
        rate = trainer.window.total_appended / (time.perf_counter() - start)
        trainer.shutdown()
        return rate
    finally:
        broker.stop()


def bench_retrain(size: int, cfg: Config, tmp: Path) -> dict[str, float | int]:
    window = SlidingWindow(size)
    window.extend(ingest(messages(zipf_values(size, max(1000, size // 10),
                                              max(500, size // 50)))).events)
    t0 = time.perf_counter()
    matrix = window.build()
    contents = window.contents()
    t1 = time.perf_counter()
    model = fit(matrix, cfg.als)
    t2 = time.perf_counter()
    write_snapshot(tmp / f"snap-{size}", model, contents, {0: size}, "000000000001")
    t3 = time.perf_counter()
    return {"window": size, "users": len(matrix.user_ids), "items": len(matrix.item_ids),
            "nnz": int(matrix.user_items.nnz), "copy_s": round(t1 - t0, 3),
            "fit_s": round(t2 - t1, 3), "snapshot_s": round(t3 - t2, 3)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--windows", default="10000,100000,1000000")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--kafka", action="store_true", help="also measure from a real broker")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    cfg = Config(window_size=1_000_000, retrain_every=10**9, retrain_interval=1e9,
                 factors=args.factors, iterations=args.iterations, from_beginning=True)
    values = zipf_values(args.events, 100_000, 20_000)
    msgs = messages(values)
    ingest_rows = [{"path": "ingest + window.extend (in-process)",
                    "events_per_s": round(bench_ingest(msgs, cfg.window_size))}]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ingest_rows.append({"path": "Trainer.step, in-memory source",
                            "events_per_s": round(bench_step(msgs, cfg, tmp))})
        if args.kafka:
            ingest_rows.append({"path": "Trainer.step, KafkaSource (4 partitions)",
                                "events_per_s": round(bench_kafka(values, cfg, tmp))})
        retrain_rows = [bench_retrain(int(s), cfg, tmp) for s in args.windows.split(",")]
    result = {
        "benchmark": "trainer",
        "events": args.events,
        "params": {"factors": args.factors, "iterations": args.iterations},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ingest": ingest_rows,
        "retrain": retrain_rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'ingest path':<44} {'events/s':>12}")
    for row in ingest_rows:
        print(f"{row['path']:<44} {row['events_per_s']:>12,}")
    print(f"\n{'window':>9} {'users':>8} {'items':>7} {'nnz':>9} {'copy s':>7} {'fit s':>7} "
          f"{'snap s':>7}")
    for r in retrain_rows:
        print(f"{r['window']:>9,} {r['users']:>8,} {r['items']:>7,} {r['nnz']:>9,} "
              f"{r['copy_s']:>7} {r['fit_s']:>7} {r['snapshot_s']:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
