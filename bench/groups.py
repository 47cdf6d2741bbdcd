"""Serving groups benchmark: the forwarding hop, fold-in per group and freshness, 2 groups vs 1.

On the default configuration's snapshot (``bench/serving.py``'s: the default blend, the
catalogue, online tracking on; 1M events, 100k users x 50k items), a real Kafka topic of 4
partitions and `streamrec serve` under gunicorn (one worker of 4 threads per server, so a
group is one worker), it measures:

- **forwarded vs owned**: ``GET /users/<u>/recommendations?n=10`` asked of group 0 for its own
  users and for group 1's (one hop through ``serving/groups/forward.py``), and of one
  unsharded server for the same users, at concurrency 1 and 8 (p50/p99, req/s, failures);
  the hop's own time from ``streamrec_group_forward_seconds``;
- **fold-in**: how fast one worker's fold-in (the app a worker builds, in this process, its
  consumer stepped until the end of its partitions) catches up on a backlog of the whole topic
  (``--backlog`` events over every user, plus the freshness trials'), unsharded (it reads all
  4 partitions) and as group 0 (it reads its 2): the messages it reads per second, and the
  topic's messages per second of catch-up (what a topology of such groups absorbs);
- **freshness**: produce of an event for a new user until the first GET that counts it, asked
  of group 0 (half the users are group 1's: their GET is forwarded and their event folded in
  by group 1) and of the unsharded server.

Each measurement runs its servers alone (a 2-core box: servers measured side by side would
share it). Writes ``bench/results/groups.{json,md}`` and prints the tables.

    python bench/groups.py [--quick] [--seconds 6] [--backlog 200000] [--trials 100]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from confluent_kafka import Producer  # noqa: E402
from tests.infra.kafka import KafkaBroker  # noqa: E402

import serving as sv  # noqa: E402
from _report import run_header  # noqa: E402
from streamrec.adapters.kafka import BOUNDED_PREFETCH, PARTITIONER, KafkaSource  # noqa: E402
from streamrec.adapters.snapshotfiles import read_snapshot  # noqa: E402
from streamrec.adapters.stores import LocalStore  # noqa: E402
from streamrec.config import Config  # noqa: E402
from streamrec.core.groups import GroupLayout  # noqa: E402
from streamrec.serving.app import create_app  # noqa: E402
from streamrec.settings.sections import KafkaSettings  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PARTITIONS = 4
LEVELS = (1, 8)
WARMUP = 10  # untimed freshness trials before the timed ones


@contextmanager
def server(tmp: Path, store: Path, broker: KafkaBroker, topic: str, port: int,
           group: int | None, urls: str) -> Iterator[subprocess.Popen[bytes]]:
    """``streamrec serve`` (1 worker x 4 threads) on ``port``; ``group``: serving group
    ``group`` of 2 (``urls``: both groups' base URLs), None: unsharded."""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    name = "plain" if group is None else f"group{group}"
    argv = [sys.executable, "-m", "streamrec.cli", "serve", "--bind", f"127.0.0.1:{port}",
            "--workers", "1", "--threads", "4", "--store", str(store),
            "--bootstrap-servers", broker.bootstrap, "--topic", topic, "--notify-topic", "",
            "--reload-interval", "1", "--cache-dir", str(tmp / f"cache-{name}")]
    if group is not None:
        argv += ["--serving-groups", "2", "--serving-group", str(group),
                 "--topic-partitions", str(PARTITIONS), "--group-urls", urls]
    log = (tmp / f"{name}.log").open("w")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not sv.all_ready(port, 1):
            if time.monotonic() > deadline or proc.poll() is not None:
                said = (tmp / f"{name}.log").read_text()[-3000:]
                raise RuntimeError(f"{name} not ready:\n{said}")
            time.sleep(0.2)
        yield proc
    finally:
        sv.stop(proc, 30)
        log.close()


def metric(port: int, name: str, labels: str = "") -> float:
    """The sum of a metric's samples whose line starts with ``name{labels`` (0 when none)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    prefix = name + ("{" + labels if labels else "")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(prefix) and not line.startswith("#"))


def hop_ms(port: int) -> dict[str, float]:
    """The forwarding hop's histogram on ``port``: its count and sum (seconds)."""
    return {"hops": metric(port, "streamrec_group_forward_seconds_count"),
            "sum_s": metric(port, "streamrec_group_forward_seconds_sum")}


def latency(args: argparse.Namespace, tmp: Path, store: Path, broker: KafkaBroker, topic: str,
            owned: dict[int, list[str]]) -> dict[str, Any]:
    ports = [sv.free_port(), sv.free_port()]
    urls = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    paths = {g: [f"/users/{u}/recommendations?n=10".encode() for u in owned[g]] for g in (0, 1)}
    out: dict[str, Any] = {}
    with server(tmp, store, broker, topic, ports[1], 1, urls), \
            server(tmp, store, broker, topic, ports[0], 0, urls) as proc:
        for g in (0, 1):  # warm-up: mapped pages, connection pools
            sv.load("127.0.0.1", ports[0], paths[g], 4, min(1.0, args.seconds))
        for label, g in (("owned", 0), ("forwarded", 1)):
            out[label] = []
            for c in LEVELS:
                before = hop_ms(ports[0])
                row = sv.load("127.0.0.1", ports[0], paths[g], c, args.seconds, proc.pid)
                after = hop_ms(ports[0])
                hops = after["hops"] - before["hops"]
                if hops:  # the hop's own time (request sent to answer read), in group 0
                    row["hop_mean_ms"] = (after["sum_s"] - before["sum_s"]) / hops * 1000
                out[label].append(row)
    port = sv.free_port()
    with server(tmp, store, broker, topic, port, None, "") as proc:
        every = paths[0] + paths[1]
        sv.load("127.0.0.1", port, every, 4, min(1.0, args.seconds))
        out["unsharded"] = [sv.load("127.0.0.1", port, every, c, args.seconds, proc.pid)
                            for c in LEVELS]
    return out


def backlog(broker: KafkaBroker, topic: str, users: list[str], items: int, n: int) -> None:
    """``n`` events over ``users``, keyed by user (murmur2, as every producer of ours)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 20,
                         "batch.num.messages": 10_000, "partitioner": PARTITIONER})
    rng = np.random.default_rng(5)
    picks = rng.integers(0, len(users), n)
    for k in range(n):
        user = users[int(picks[k])]
        producer.produce(topic, f"{user}:i{k % items}:1".encode(), key=user.encode())
        if k % 10_000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0
    del producer


def foldin(tmp: Path, store: LocalStore, broker: KafkaBroker, topic: str,
           layout: GroupLayout) -> dict[str, Any]:
    """Catch-up on the whole topic from offset 0 by one worker's fold-in (the app a gunicorn
    worker builds, in this process, its consumer stepped by hand until it reached the end of
    its partitions): unsharded, then as group 0."""
    settings = KafkaSettings(broker.bootstrap)
    source = KafkaSource(settings, topic)
    ends = source.end_offsets()
    source.close()
    out: dict[str, Any] = {}
    for label, group in (("unsharded", None), ("group 0 of 2", 0)):
        only = None if group is None else layout.owned
        config = Config(cache_dir=str(tmp / f"cache-foldin-{label[:5]}"), topic=topic) \
            if group is None else Config(
                cache_dir=str(tmp / f"cache-foldin-{label[:5]}"), topic=topic,
                serving_groups=2, serving_group=group, topic_partitions=PARTITIONS,
                group_urls=("http://127.0.0.1:9", "http://127.0.0.1:10"))
        app = create_app(config, store=store, source_factory=lambda _o, only=only: KafkaSource(
            settings, topic, tuning=BOUNDED_PREFETCH, only=only))
        svc = app.extensions["streamrec"]
        assert svc.reloader.check_once() and svc.foldin is not None
        wanted = {p: o for p, o in ends.items() if only is None or p in only}
        started = time.perf_counter()
        while True:
            svc.foldin.step()
            at = svc.foldin.source.positions() if svc.foldin.source is not None else {}
            if all(at.get(p, 0) >= o for p, o in wanted.items()):
                break
            if time.perf_counter() - started > 300:
                raise RuntimeError(f"{label}: fold-in did not catch up in 300 s: {at}")
        seconds = time.perf_counter() - started
        read = sum(wanted.values())
        out[label] = {"partitions": sorted(wanted), "read": read, "kept": len(svc.fresh),
                      "seconds": round(seconds, 2), "read_per_s": read / seconds,
                      "topic_events_per_s": sum(ends.values()) / seconds}
        svc.stop()
        del app, svc
    return out


def fresh(args: argparse.Namespace, tmp: Path, store: Path, broker: KafkaBroker, topic: str,
          item: str) -> dict[str, Any]:
    ports = [sv.free_port(), sv.free_port()]
    urls = ",".join(f"http://127.0.0.1:{p}" for p in ports)
    out: dict[str, Any] = {}
    with server(tmp, store, broker, topic, ports[1], 1, urls), \
            server(tmp, store, broker, topic, ports[0], 0, urls):
        # Untimed first: the servers have just started (their consumers' first fetches, the
        # connection pools), which bench/serving.py's load levels warm before its trials.
        sv.freshness("127.0.0.1", ports[0], broker, topic, item, WARMUP)
        out["2 groups (asked of group 0)"] = sv.freshness("127.0.0.1", ports[0], broker, topic,
                                                          item, args.trials)
    port = sv.free_port()
    with server(tmp, store, broker, topic, port, None, ""):
        sv.freshness("127.0.0.1", port, broker, topic, item, WARMUP)
        out["unsharded"] = sv.freshness("127.0.0.1", port, broker, topic, item, args.trials)
    return out


def table(result: dict[str, Any]) -> str:
    lines = ["| asked of | users | c | p50 ms | p99 ms | req/s | failed | hop mean ms |",
             "|---|---|---|---|---|---|---|---|"]
    lat = result["latency"]
    for label, asked in (("owned", "group 0"), ("forwarded", "group 0"),
                         ("unsharded", "one server")):
        for row in lat[label]:
            hop = f"{row['hop_mean_ms']:.2f}" if "hop_mean_ms" in row else "-"
            lines.append(f"| {asked} | {label} | {row['concurrency']} | {row['p50_ms']:.2f} | "
                         f"{row['p99_ms']:.2f} | {row['rps']:.0f} | {row['failed']} | {hop} |")
    lines += ["", "| fold-in catch-up | partitions | read | kept | read/s | topic events/s |",
              "|---|---|---|---|---|---|"]
    for label, row in result["foldin"].items():
        lines.append(f"| {label} | {row['partitions']} | {row['read']:.0f} | "
                     f"{row['kept']:.0f} | {row['read_per_s']:.0f} | "
                     f"{row['topic_events_per_s']:.0f} |")
    lines += ["", "| freshness | trials | seen | p50 ms | p99 ms | max ms |",
              "|---|---|---|---|---|---|"]
    for label, row in result["freshness"].items():
        lines.append(f"| {label} | {row['trials']} | {row['seen']} | {row['p50_ms']:.1f} | "
                     f"{row['p99_ms']:.1f} | {row['max_ms']:.1f} |")
    return "\n".join(lines)


def main() -> int:
    ap = sv.model_arguments(__doc__)
    ap.add_argument("--backlog", type=int, default=600_000, help="events of the fold-in run")
    ap.add_argument("--trials", type=int, default=100, help="freshness trials per setup")
    args = ap.parse_args()
    if args.quick:
        args.users, args.items, args.events = 5_000, 2_000, 50_000
        args.seconds, args.backlog, args.trials = 1.0, 100_000, 20
    started = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="bench-groups-"))
    broker = KafkaBroker(tmp / "kafka")
    try:
        store, facts = sv.build_served(args, tmp)
        served = read_snapshot(store.snapshots / "000000000001", verify=False, mmap=True,
                               window=False).model
        layout = GroupLayout(2, 0, PARTITIONS)
        rng = np.random.default_rng(2)
        sample = [served.user_ids[k] for k in rng.integers(0, len(served.user_ids), 20_000)]
        owned = {g: [u for u in sample if layout.owner(u) == g] for g in (0, 1)}
        item = served.item_ids[int(served.popular_order[0])]
        broker.start()
        topic = broker.create_topic("interactions", partitions=PARTITIONS)
        result: dict[str, Any] = {"latency": latency(args, tmp, store.root, broker, topic,
                                                     owned)}
        result["freshness"] = fresh(args, tmp, store.root, broker, topic, item)
        backlog(broker, topic, list(served.user_ids), len(served.item_ids), args.backlog)
        result["foldin"] = foldin(tmp, store, broker, topic, layout)
    finally:
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    report = {
        **run_header("groups", args.quick, started, load_before),
        "model": {"users": args.users, "items": args.items, "events": args.events,
                  "factors": args.factors, "scorers": facts["scorers"]},
        "partitions": PARTITIONS, "groups": 2, "servers": "1 gunicorn worker x 4 threads each",
        **result}
    text = table(report)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "groups.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    (RESULTS / "groups.md").write_text(
        "# Serving groups\n\n" + re.sub(r"\n{3,}", "\n\n", text) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
