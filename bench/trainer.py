"""Trainer throughput: ingest events/s (in-process and from a real Kafka), retrain time vs window.

- ``ingest``: poll-sized batches through ``ingest`` (parse + DLQ split) and the sliding window;
- ``step``: the whole ``Trainer.step`` over an in-memory log (no retrains);
- ``kafka`` (unless ``--no-kafka``): a real KRaft broker from ``tests/infra`` with N events
  produced up front; in the same run, alternately, a raw confluent-kafka loop
  (``consume(num_messages=...)`` in batches, nothing parsed) and the trainer (``Trainer.step``
  with ``KafkaSource``) read the whole topic; best of each and their ratio. Target >= 200k ev/s;
- ``retrain``: what one retrain costs the trainer (``window.build()`` + ``contents()`` on the
  consume thread, then ``FitJob.run``'s fit and ``write_snapshot``) against a bare
  ``implicit.cpu.als`` fit on the same window CSR with the same hyperparameters and threads,
  and their ratio. Target <= 1.1x at a 1M-event window. The job also publishes to a local
  store and prunes; that store I/O (an S3 upload in a cluster) is reported on its own.

Writes ``bench/results/trainer.json`` and prints a table. If the Kafka infrastructure cannot
start (binaries not provisioned by ``scripts/provision.sh``), the Kafka rows say why.

    python bench/trainer.py [--events 500000] [--windows 10000,100000,1000000] [--no-kafka]
    python bench/trainer.py --quick      # seconds: 50k events, small windows
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for tests.infra

import numpy as np  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from streamrec.adapters.source import SourceMessage  # noqa: E402
from streamrec.adapters.stores import LocalStore  # noqa: E402
from streamrec.config import Config  # noqa: E402
from streamrec.core.scoring.model import ALSParams  # noqa: E402
from streamrec.core.window.sliding import SlidingWindow, WindowMatrix  # noqa: E402
from streamrec.trainer.ingest import ingest  # noqa: E402
from streamrec.trainer.job import FitJob  # noqa: E402
from streamrec.trainer.metrics import TrainerMetrics  # noqa: E402
from streamrec.trainer.service import Trainer  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "trainer.json"
BATCH = 10_000
INGEST_TARGET = 200_000  # events/s through the real broker
RETRAIN_TARGET = 1.1  # retrain wall time / bare implicit fit, 1M-event window


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


def raw_consume(bootstrap: str, topic: str, partitions: int, expected: int) -> float:
    """Events/s of the plainest confluent-kafka loop: assign, consume in batches, count."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{time.time_ns()}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        seen = 0
        start = time.perf_counter()
        deadline = time.monotonic() + 300
        while seen < expected and time.monotonic() < deadline:
            seen += len(consumer.consume(num_messages=BATCH, timeout=0.5))
        return seen / (time.perf_counter() - start)
    finally:
        consumer.close()


def trainer_consume(cfg: Config, topic: str, tmp: Path, expected: int) -> float:
    """Events/s of the trainer's loop (``KafkaSource`` + ``Trainer.step``) over the topic."""
    from streamrec.adapters.kafka import KafkaSource

    work = Path(tempfile.mkdtemp(dir=tmp))
    trainer = Trainer(cfg, KafkaSource(cfg.kafka, topic), None, LocalStore(work / "store"),
                      workdir=work / "work", max_batch=BATCH)
    trainer.resume()
    start = time.perf_counter()
    deadline = time.monotonic() + 300
    while trainer.window.total_appended < expected and time.monotonic() < deadline:
        trainer.step(timeout=0.5)
    rate = trainer.window.total_appended / (time.perf_counter() - start)
    trainer.shutdown()
    return rate


def bench_kafka(values: list[bytes], cfg: Config, tmp: Path,
                rounds: int) -> list[dict[str, Any]]:
    """Raw loop and trainer over one topic, alternating ``rounds`` times; best of each."""
    from tests.infra.kafka import KafkaBroker

    from streamrec.adapters.kafka import KafkaSink

    partitions = 4
    where = f"real broker, {partitions} partitions, {len(values):,} events"
    try:
        broker = KafkaBroker(tmp / "kafka")
        broker.start()
    except Exception as e:  # noqa: BLE001 (no broker here: say so in the results, go on)
        why = f"skipped: the broker did not start ({type(e).__name__}: {str(e)[:200]})"
        return [{"path": f"Kafka ingest ({where})", "events_per_s": why}]
    try:
        topic = broker.create_topic("bench", partitions=partitions)
        cfg = Config(**{**cfg.__dict__, "bootstrap_servers": broker.bootstrap, "topic": topic})
        sink = KafkaSink(cfg.kafka, linger_ms=20)
        for v in values:
            sink.produce(topic, v, key=v.split(b":", 1)[0])  # keyed by its user
        if sink.flush(120):
            raise RuntimeError("kafka: could not produce the benchmark's events")
        del sink  # its producer would keep reconnecting once the broker is gone
        raw, ours = 0.0, 0.0
        for _ in range(rounds):  # alternate, so a noisy neighbour hurts both alike
            raw = max(raw, raw_consume(broker.bootstrap, topic, partitions, len(values)))
            ours = max(ours, trainer_consume(cfg, topic, tmp, len(values)))
    finally:
        broker.stop()
    return [{"path": f"raw confluent-kafka consume loop ({where})", "events_per_s": round(raw)},
            {"path": f"Trainer.step, KafkaSource ({where})", "events_per_s": round(ours),
             "vs_raw": round(ours / raw, 3)}]


def bare_fit_seconds(matrix: WindowMatrix, params: ALSParams) -> float:
    """A bare implicit CPU fit on the window's own CSR, as a user of implicit would call it."""
    import implicit.cpu.als

    model = implicit.cpu.als.AlternatingLeastSquares(
        factors=params.factors, regularization=params.regularization, alpha=params.alpha,
        dtype=np.float32, iterations=params.iterations, num_threads=params.num_threads,
        random_state=params.random_state)
    start = time.perf_counter()
    with threadpool_limits(1, "blas"):
        model.fit(matrix.user_items, show_progress=False)
    return time.perf_counter() - start


class TimedStore(LocalStore):
    """A local store that adds up the time spent publishing and pruning (store I/O, which is
    an upload to S3 in a cluster: reported apart from the retrain itself)."""

    seconds = 0.0

    def publish(self, local_dir: Path, version: str) -> None:
        start = time.perf_counter()
        super().publish(local_dir, version)
        self.seconds += time.perf_counter() - start

    def prune(self, keep: int) -> list[str]:
        start = time.perf_counter()
        try:
            return super().prune(keep)
        finally:
            self.seconds += time.perf_counter() - start


def retrain_once(window: SlidingWindow, cfg: Config, tmp: Path, version: str) -> dict[str, float]:
    """One retrain as the trainer runs it: the copy under its lock, then ``FitJob.run`` (fit,
    snapshot write, publish, prune). ``retrain_s`` is the copy + fit + snapshot write."""
    t0 = time.perf_counter()
    matrix = window.build()
    contents = window.contents()
    t1 = time.perf_counter()
    store = TimedStore(tmp / "store")
    job = FitJob(cfg, store, None, TrainerMetrics(), threading.Event(), tmp / "work", matrix,
                 contents, {0: window.total_appended}, version, len(window))
    outcome = job.run()
    t2 = time.perf_counter()
    if not outcome.published:
        raise RuntimeError(f"retrain {version} failed: {outcome.error}")
    fit_s = float(outcome.record["fit_seconds"])  # type: ignore[arg-type]
    return {"copy_s": t1 - t0, "fit_s": fit_s, "snapshot_s": t2 - t1 - fit_s - store.seconds,
            "retrain_s": t2 - t0 - store.seconds, "publish_s": store.seconds}


def bench_retrain(size: int, cfg: Config, tmp: Path, repeat: int) -> dict[str, Any]:
    window = SlidingWindow(size)
    window.extend(ingest(messages(zipf_values(size, max(1000, size // 10),
                                              max(500, size // 50)))).events)
    matrix = window.build()
    ours: dict[str, float] = {}
    bare = float("inf")
    for k in range(repeat):  # interleaved; best of each
        run = retrain_once(window, cfg, tmp, f"{size:09d}{k:03d}")
        if not ours or run["retrain_s"] < ours["retrain_s"]:
            ours = run
        bare = min(bare, bare_fit_seconds(matrix, cfg.als))
    return {"window": size, "users": len(matrix.user_ids), "items": len(matrix.item_ids),
            "nnz": int(matrix.user_items.nnz),
            **{k: round(v, 3) for k, v in ours.items()},
            "bare_fit_s": round(bare, 3), "fit_vs_bare": round(ours["fit_s"] / bare, 3),
            "retrain_vs_bare": round(ours["retrain_s"] / bare, 3)}


def warm_up(cfg: Config, tmp: Path) -> None:
    """Import implicit and run each path once, so that no timed run pays for it."""
    window = SlidingWindow(2000)
    window.extend(ingest(messages(zipf_values(2000, 200, 100))).events)
    small = Config(**{**cfg.__dict__, "iterations": 1, "factors": 8})
    retrain_once(window, small, tmp / "warm", "000000000001")
    bare_fit_seconds(window.build(), small.als)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=500_000)
    parser.add_argument("--windows", default="10000,100000,1000000")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--fit-threads", type=int, default=1,
                        help="threads for both fits (0: all cores, the trainer's default)")
    parser.add_argument("--repeat", type=int, default=2,
                        help="rounds of the Kafka and retrain comparisons (best of each)")
    parser.add_argument("--no-kafka", action="store_true", help="skip the real-broker rows")
    parser.add_argument("--quick", action="store_true",
                        help="seconds: 50k events, 10k and 50k windows, one round")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.windows, args.repeat = 50_000, "10000,50000", 1
    cfg = Config(window_size=max(args.events, 1_000_000), retrain_every=10**9,
                 retrain_interval=1e9, factors=args.factors, iterations=args.iterations,
                 fit_threads=args.fit_threads, from_beginning=True, keep=2)
    values = zipf_values(args.events, 100_000, 20_000)
    msgs = messages(values)
    ingest_rows: list[dict[str, Any]] = [
        {"path": "ingest + window.extend (in-process)",
         "events_per_s": round(bench_ingest(msgs, cfg.window_size))}]
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ingest_rows.append({"path": "Trainer.step, in-memory source",
                            "events_per_s": round(bench_step(msgs, cfg, tmp))})
        warm_up(cfg, tmp)
        retrain_rows = [bench_retrain(int(s), cfg, tmp, args.repeat)
                        for s in args.windows.split(",") if s]
        if not args.no_kafka:  # last: the broker helper's clients log reconnects once it stops
            ingest_rows += bench_kafka(values, cfg, tmp, args.repeat)
    result = {
        "benchmark": "trainer",
        "quick": args.quick,
        "events": args.events,
        "params": {"factors": args.factors, "iterations": args.iterations,
                   "fit_threads": args.fit_threads},
        "targets": {"kafka_events_per_s": INGEST_TARGET, "retrain_vs_bare": RETRAIN_TARGET},
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "ingest": ingest_rows,
        "retrain": retrain_rows,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'ingest path':<76} {'events/s':>12} {'vs raw':>7}")
    for row in ingest_rows:
        rate = row["events_per_s"]
        shown = f"{rate:>12,}" if isinstance(rate, int) else f" {rate}"
        print(f"{row['path']:<76} {shown} {row.get('vs_raw', ''):>7}")
    print(f"\n{'window':>9} {'users':>8} {'items':>7} {'nnz':>9} {'copy s':>7} {'fit s':>7} "
          f"{'snap s':>7} {'retrain s':>9} {'bare s':>7} {'fit x':>6} {'retrain x':>9} "
          f"{'publish s':>9}")
    for r in retrain_rows:
        print(f"{r['window']:>9,} {r['users']:>8,} {r['items']:>7,} {r['nnz']:>9,} "
              f"{r['copy_s']:>7} {r['fit_s']:>7} {r['snapshot_s']:>7} {r['retrain_s']:>9} "
              f"{r['bare_fit_s']:>7} {r['fit_vs_bare']:>6} {r['retrain_vs_bare']:>9} "
              f"{r['publish_s']:>9}")
    print(f"(factors {args.factors}, {args.iterations} iterations, {args.fit_threads} fit "
          f"thread(s); targets: >= {INGEST_TARGET:,} ev/s from Kafka, retrain <= "
          f"{RETRAIN_TARGET}x bare implicit; wrote {args.output})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
