"""Serving benchmark: `streamrec serve` (gunicorn, gthread) on 127.0.0.1 with a real Kafka.

It serves the **default configuration** (``bench/_default_model.py``): every scorer of the
default blend (ALS + the item-item model, cosine kNN at 50k items, over the recency-weighted
history), the catalogue (a record per item, 5% hidden, 5% expired) and online tracking on, on
a 1M-event window (about 100k users x 50k items, 64 factors; the ALS factors are random: a
recommendation's cost does not depend on their values, and a fit at this size would cost
minutes on 2 cores). It measures, against the real server process:

- the **breakdown** of one request (``bench/_breakdown.py``): the WSGI app in process, and its
  parts (live-state joins, history and recency, each scorer, the blend, top-n, JSON, tracking,
  and routing/params/Flask as the rest); gunicorn and the socket are the HTTP p50 minus the
  WSGI p50;

- latency p50/p95/p99 and throughput of ``GET /users/<u>/recommendations?n=10`` over real
  HTTP/1.1 keep-alive at concurrency 1, 8 and 32 (an asyncio client in this process, each
  level for a fixed time; client and server share the machine, so req/s is a floor), and in
  the same run a bare numpy score + argpartition on the same memory-mapped arrays as the
  reference (and its per-core throughput): what the HTTP stack, the blend and the model's
  bookkeeping add;
- freshness: a confluent-kafka ``produce()`` of an event for a new user until the first GET
  whose answer counts it (200 trials; the real broker of tests/infra/kafka.py);
- memory: PSS and USS (``/proc/<pid>/smaps_rollup``) of 1 and of 4 gunicorn workers, and what
  an extra worker costs: the growth of the whole tree's PSS (master included: the pages the
  master shares move their PSS to the workers as workers are added) per added worker, as a
  share of the snapshot's bytes and of the served model's (the snapshot minus the window);
- server CPU per request at every level (user + system time of the master and workers over
  the level, from /proc): on a shared machine, a cost that other tenants barely move;
- what one worker holds privately, by mapping (``/proc/<pid>/smaps``: the heap and anonymous
  memory, the snapshot's files, shared libraries);
- gunicorn shapes: 2 x 1 and 2 x 2 (workers x threads) against the default, at the top
  concurrency (req/s, latency, CPU per request);
- with ``--tracking`` (or ``--tracking-only``, which runs just that; not in ``make bench``:
  the breakdown's ``tracking`` row is its cost): online tracking on vs off, latency and CPU
  per request at c1 and c8, in alternating rounds of the same run with events flowing, then
  two servers side by side with one client alternating request by request.

Writes ``bench/results/serving.{json,md}`` and ``serving.png`` and prints the tables. Load
average is recorded before and after: the machine is shared, so compare each figure with its
same-run reference.

    python bench/serving.py [--quick] [--users 100000] [--items 50000] [--events 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
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
from tests.support.randommodel import random_model  # noqa: E402

from _breakdown import breakdown  # noqa: E402
from _default_model import catalogue_heap_mb, default_catalogue, default_model  # noqa: E402
from streamrec.adapters.kafka import PARTITIONER  # noqa: E402
from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot  # noqa: E402
from streamrec.adapters.stores import LocalStore  # noqa: E402
from streamrec.config import Config  # noqa: E402
from streamrec.core.scoring.model import Model  # noqa: E402
from streamrec.core.window.sliding import SlidingWindow  # noqa: E402
from streamrec.serving.app import create_app  # noqa: E402

RESULTS = Path(__file__).parent / "results"
LEVELS = (1, 8, 32)
#: gunicorn (workers, threads) compared at the top concurrency level, besides the default.
SHAPES = ((2, 1), (2, 2))
TARGETS = {"p50_ms_c1": 1.0, "p99_ms_c1": 5.0, "rps_c32": 2000.0, "extra_worker_pct": 10.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM ``proc``, then SIGKILL it if it is still running after ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# --- the model --------------------------------------------------------------------------------

def build_model(users: int, items: int, events: int, factors: int,
                seed: int = 0) -> tuple[Model, SlidingWindow]:
    """A window of ``events`` (users uniform, items skewed to the head) and random factors
    (``tests/support/randommodel.py``)."""
    return random_model(users, items, events, factors, seed)


def numpy_reference(model: Model, seconds: float, n: int = 10) -> dict[str, float]:
    """Bare ``item_factors @ user`` + argpartition + sort of the top n, on the same arrays."""
    y, x = model.als.item_factors, model.als.user_factors
    rng = np.random.default_rng(1)
    rows = rng.integers(0, x.shape[0], 100_000)
    took: list[float] = []
    end = time.perf_counter() + seconds
    k = 0
    while time.perf_counter() < end:
        t = time.perf_counter()
        scores = y @ x[rows[k % len(rows)]]
        best = np.argpartition(-scores, n)[:n]
        best = best[np.argsort(-scores[best])]
        took.append(time.perf_counter() - t)
        k += 1
    ms = [v * 1000 for v in took]
    return {"calls": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
            "per_core_rps": 1000 / pct(ms, 50)}


# --- the server -------------------------------------------------------------------------------

@contextmanager
def serve(tmp: Path, store: Path, broker: KafkaBroker, topic: str, workers: int, threads: int,
          tracking: bool = True) -> Iterator[tuple[str, int, subprocess.Popen[bytes]]]:
    port = free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1",
           "STREAMREC_ONLINE_TRACKING": "true" if tracking else "false"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    name = f"serve-{workers}{'' if tracking else '-untracked'}.log"
    log = (tmp / name).open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamrec.cli", "serve", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), "--store", str(store),
         "--bootstrap-servers", broker.bootstrap, "--topic", topic, "--notify-topic", "",
         "--reload-interval", "1", "--cache-dir", str(tmp / "cache")],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        while not all_ready(port, workers):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("server not ready:\n" + (tmp / name).read_text()[-3000:])
            time.sleep(0.3)
        yield "127.0.0.1", port, proc
    finally:
        stop(proc, 30)
        log.close()


def all_ready(port: int, workers: int) -> bool:
    """Every worker has loaded the snapshot (the metric counts loads across workers)."""
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/metrics")
        text = conn.getresponse().read().decode()
        conn.close()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith('streamrec_snapshot_reloads_total{result="loaded"} '):
            return float(line.split()[-1]) >= workers
    return False


# --- HTTP load --------------------------------------------------------------------------------

async def _one_connection(host: str, port: int, paths: list[bytes], offset: int,
                          stop_at: float, took: list[float], failed: list[int],
                          host_header: bytes = b"bench") -> None:
    reader, writer = await asyncio.open_connection(host, port)
    k = offset
    try:
        while time.perf_counter() < stop_at:
            request = (b"GET " + paths[k % len(paths)] + b" HTTP/1.1\r\nHost: " + host_header
                       + b"\r\n\r\n")
            k += 1
            start = time.perf_counter()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        length = int(line[15:])
                await reader.readexactly(length)
                ok = head[9:12] == b"200"
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                ok = False
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
            took.append(time.perf_counter() - start)
            failed[0] += not ok
    finally:
        writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its children (the gunicorn master and its
    workers), from /proc: a cost per request that other tenants of a busy box barely move."""
    total = 0
    for p in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def load(host: str, port: int, paths: list[bytes], concurrency: int,
         seconds: float, server_pid: int | None = None,
         host_header: str = "bench") -> dict[str, float]:
    """``concurrency`` keep-alive connections, each sending its next request on an answer.
    ``host_header``: the ``Host`` sent (an Ingress routes by it; serving ignores it)."""
    took: list[float] = []
    failed = [0]
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0

    async def run() -> float:
        start = time.perf_counter()
        stop_at = start + seconds
        await asyncio.gather(*(
            _one_connection(host, port, paths, c * 7919, stop_at, took, failed,
                            host_header.encode("ascii"))
            for c in range(concurrency)))
        return time.perf_counter() - start

    wall = asyncio.run(run())
    ms = [v * 1000 for v in took]
    out = {"concurrency": concurrency, "requests": len(ms), "failed": failed[0],
           "p50_ms": pct(ms, 50), "p95_ms": pct(ms, 95), "p99_ms": pct(ms, 99),
           "rps": len(ms) / wall}
    if server_pid and ms:
        out["server_cpu_us_per_request"] = (cpu_seconds(server_pid) - cpu_before) / len(ms) * 1e6
    return out


# --- freshness --------------------------------------------------------------------------------

def freshness(host: str, port: int, broker: KafkaBroker, topic: str, item: str,
              trials: int) -> dict[str, float]:
    """produce() of an event for a new user until the first GET that counts it (any worker)."""
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 0,
                         "partitioner": PARTITIONER})
    conn = http.client.HTTPConnection(host, port, timeout=10)
    got: list[float] = []
    for _ in range(trials):
        user = f"fresh-{uuid.uuid4().hex[:10]}"
        event = json.dumps({"user": user, "item": item, "weight": 3}).encode()
        start = time.perf_counter()
        producer.produce(topic, event, key=user.encode())
        producer.poll(0)
        deadline = start + 10
        while time.perf_counter() < deadline:
            conn.request("GET", f"/users/{user}/recommendations?n=10")
            body = json.loads(conn.getresponse().read())
            if body.get("fresh_events", 0) >= 1:
                got.append(time.perf_counter() - start)
                break
        producer.flush(5)
    conn.close()
    del producer
    ms = [v * 1000 for v in got]
    return {"trials": trials, "seen": len(ms), "p50_ms": pct(ms, 50), "p99_ms": pct(ms, 99),
            "max_ms": max(ms) if ms else float("nan")}


# --- online tracking: on vs off ---------------------------------------------------------------

class EventStream:
    """A background producer of ``rate`` events/s for the served users, half of them echoing
    a recommendation id, so the fold-in's online observer works during the measurement too."""

    def __init__(self, broker: KafkaBroker, topic: str, users: list[str], item_count: int,
                 rate: float) -> None:
        self.producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5,
                                  "partitioner": PARTITIONER})
        self.topic, self.users, self.items, self.rate = topic, users, item_count, rate
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = np.random.default_rng(3)
        while not self.stop.wait(0.1):
            for _ in range(int(self.rate / 10)):
                user = self.users[int(rng.integers(len(self.users)))]
                event = {"user": user, "item": f"i{int(rng.random() ** 2 * self.items)}"}
                if self.sent % 2:
                    event["recommendation_id"] = f"bench-{self.sent:x}"
                self.producer.produce(self.topic, json.dumps(event).encode(), key=user.encode())
                self.sent += 1
            self.producer.poll(0)

    def __enter__(self) -> EventStream:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join(10)
        self.producer.flush(10)
        del self.producer  # its threads go now, not when the broker is gone


def tracking_overhead(tmp: Path, store: Path, broker: KafkaBroker, topic: str,
                      paths: list[bytes], workers: int, threads: int, seconds: float,
                      rounds: int, events: EventStream) -> dict[str, Any]:
    """Latency at c1 and c8 with online tracking on and off, in alternating rounds (on, off,
    on, off, ...) so both sides see the same drift of a shared machine; latencies are pooled
    per side. Events flow during both (the fold-in and its online observer at work)."""
    sides: dict[str, dict[int, list[dict[str, float]]]] = {"on": {}, "off": {}}
    with events:
        for _ in range(rounds):
            for side in ("on", "off"):
                with serve(tmp, store, broker, topic, workers, threads,
                           tracking=side == "on") as (h, p, proc):
                    load(h, p, paths, 8, min(1.0, seconds))
                    for c in (1, 8):
                        sides[side].setdefault(c, []).append(
                            load(h, p, paths, c, seconds, proc.pid))
    out: dict[str, Any] = {"rounds": rounds, "seconds_per_level": seconds,
                           "events_produced": events.sent}
    for c in (1, 8):
        row: dict[str, Any] = {}
        for side in ("on", "off"):
            runs = sides[side][c]
            row[side] = {k: float(np.median([r[k] for r in runs]))
                         for k in ("p50_ms", "p99_ms", "rps", "server_cpu_us_per_request")}
            row[side]["requests"] = sum(int(r["requests"]) for r in runs)
        for k in ("p50_ms", "p99_ms", "server_cpu_us_per_request"):
            row[f"{k}_overhead_pct"] = 100 * (row["on"][k] / row["off"][k] - 1)
        out[f"c{c}"] = row
    return out


def interleaved_tracking(tmp: Path, store: Path, broker: KafkaBroker, topic: str,
                         paths: list[bytes], workers: int, threads: int,
                         seconds: float) -> dict[str, Any]:
    """Two servers at once, tracking on and off, and one client alternating request by
    request between them (which goes first alternates too): both sides see the same moments
    of a shared machine, so its drift cancels. Keep-alive HTTP/1.1, concurrency 1 per side."""
    took: dict[str, list[float]] = {"on": [], "off": []}
    with serve(tmp, store, broker, topic, workers, threads, tracking=True) as (h, on_port, _), \
            serve(tmp, store, broker, topic, workers, threads, tracking=False) as (_, off_port, _):
        conns = {"on": http.client.HTTPConnection(h, on_port, timeout=10),
                 "off": http.client.HTTPConnection(h, off_port, timeout=10)}
        for side in conns:  # warm-up: pages mapped, caches
            load(h, on_port if side == "on" else off_port, paths, 8, min(1.0, seconds))
        end = time.perf_counter() + seconds
        k = 0
        while time.perf_counter() < end:
            path = paths[k % len(paths)].decode()
            for side in (("on", "off") if k % 2 else ("off", "on")):
                t = time.perf_counter()
                conns[side].request("GET", path)
                response = conns[side].getresponse()
                response.read()
                took[side].append((time.perf_counter() - t) * 1000)
                assert response.status == 200
            k += 1
        for conn in conns.values():
            conn.close()
    out: dict[str, Any] = {"requests_per_side": len(took["on"]), "seconds": seconds}
    for side in ("on", "off"):
        out[side] = {"p50_ms": pct(took[side], 50), "p99_ms": pct(took[side], 99),
                     "mean_ms": float(np.mean(took[side]))}
    for key in ("p50_ms", "p99_ms", "mean_ms"):
        out[f"{key}_overhead_pct"] = 100 * (out["on"][key] / out["off"][key] - 1)
    return out


def print_tracking(t: dict[str, Any]) -> None:
    print(f"online tracking on vs off ({t['rounds']} alternating rounds, medians; "
          f"{t['events_produced']} events produced meanwhile):")
    r = t["interleaved"]
    print(f"  HTTP c1, two servers, interleaved ({r['requests_per_side']} requests per side): p50 "
          f"{r['on']['p50_ms']:.3f} vs {r['off']['p50_ms']:.3f} ms "
          f"({r['p50_ms_overhead_pct']:+.1f}%), p99 {r['on']['p99_ms']:.3f} vs "
          f"{r['off']['p99_ms']:.3f} ms ({r['p99_ms_overhead_pct']:+.1f}%)")
    for c in (1, 8):
        r = t[f"c{c}"]
        print(f"  HTTP c{c}: p50 {r['on']['p50_ms']:.3f} vs {r['off']['p50_ms']:.3f} ms "
              f"({r['p50_ms_overhead_pct']:+.1f}%), p99 {r['on']['p99_ms']:.3f} vs "
              f"{r['off']['p99_ms']:.3f} ms ({r['p99_ms_overhead_pct']:+.1f}%), server CPU "
              f"{r['on']['server_cpu_us_per_request']:.0f} vs "
              f"{r['off']['server_cpu_us_per_request']:.0f} us/request "
              f"({r['server_cpu_us_per_request_overhead_pct']:+.1f}%)")


# --- memory -----------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def smaps(pid: int) -> dict[str, float]:
    """RSS, PSS and USS (private clean + dirty) of one process, in MB."""
    kb: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        kb[key] = int(rest.split()[0])
    uss = kb.get("Private_Clean", 0) + kb.get("Private_Dirty", 0)
    return {"rss_mb": kb["Rss"] / 1024, "pss_mb": kb["Pss"] / 1024, "uss_mb": uss / 1024}


def private_by_mapping(pid: int) -> dict[str, float]:
    """A process's private (USS) MB by what is mapped: the snapshot's ``.npy`` files, other
    files (shared libraries, Python's own), and anonymous memory (the heap: Python objects,
    numpy arrays built at run time, thread stacks)."""
    out: dict[str, float] = {"snapshot files": 0.0, "libraries and other files": 0.0,
                             "heap and anonymous": 0.0}
    key = "heap and anonymous"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and ":" not in head[0]:
            name = head[5] if len(head) > 5 else ""
            key = ("snapshot files" if name.endswith(".npy") else
                   "libraries and other files" if name.startswith("/") else
                   "heap and anonymous")
        elif head and head[0] in ("Private_Clean:", "Private_Dirty:"):
            out[key] += int(head[1]) / 1024
    return out


def worker_memory(proc: subprocess.Popen[bytes]) -> dict[str, float]:
    """Sums over the workers, and PSS of the whole tree (master included): pages the master
    shares with its workers move their PSS from the master to the workers as workers are
    added, so only the tree's total says what a worker adds."""
    per = [smaps(pid) for pid in children(proc.pid)]
    master = smaps(proc.pid)
    private = private_by_mapping(children(proc.pid)[-1])
    return {"workers": len(per), "pss_mb": sum(m["pss_mb"] for m in per),
            **{f"one_worker_private_{k}": v for k, v in private.items()},
            "uss_mb": sum(m["uss_mb"] for m in per), "rss_mb": sum(m["rss_mb"] for m in per),
            "tree_pss_mb": master["pss_mb"] + sum(m["pss_mb"] for m in per)}


# --- main -------------------------------------------------------------------------------------

def plot(levels: list[dict[str, float]], reference: dict[str, float], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    c = [r["concurrency"] for r in levels]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(c, [r["p50_ms"] for r in levels], "o-", label="HTTP p50")
    ax.plot(c, [r["p99_ms"] for r in levels], "s-", label="HTTP p99")
    ax.axhline(reference["p50_ms"], color="grey", ls="--", label="numpy score+argpartition p50")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(c, [str(x) for x in c])
    ax.set_xlabel("concurrent connections")
    ax.set_ylabel("latency (ms)")
    ax2 = ax.twinx()
    ax2.bar(c, [r["rps"] for r in levels], width=[x * 0.3 for x in c], alpha=0.2, color="C2")
    ax2.set_ylabel("throughput (req/s, bars)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("GET /users/<u>/recommendations (gunicorn gthread)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def headline_rows(c1: dict[str, float], c32: dict[str, float], reference: dict[str, float],
                  mem: dict[str, float], fresh: dict[str, float]) -> list[dict[str, Any]]:
    """The issue's table: each figure against its same-run reference, the ratio and the goal."""
    p50_ratio = c1["p50_ms"] / reference["p50_ms"]
    rps_ratio = c32["rps"] / reference["per_core_rps"]
    return [
        {"figure": "GET recommendations p50 at concurrency 1 (HTTP, gunicorn, default blend)",
         "value": c1["p50_ms"], "unit": "ms", "reference": "bare numpy score + argpartition p50",
         "reference_value": reference["p50_ms"], "ratio": p50_ratio,
         "target": "<= 1 ms and <= 2.5x", "met": c1["p50_ms"] <= 1.0 and p50_ratio <= 2.5},
        {"figure": "GET recommendations p99 at concurrency 1", "value": c1["p99_ms"],
         "unit": "ms", "reference": None, "reference_value": None, "ratio": None,
         "target": "<= 5 ms", "met": c1["p99_ms"] <= 5.0},
        {"figure": "throughput at concurrency 32", "value": c32["rps"], "unit": "req/s",
         "reference": "bare numpy scoring, per core", "reference_value": reference["per_core_rps"],
         "ratio": rps_ratio, "target": ">= 2,000 and >= 0.8x",
         "met": c32["rps"] >= 2000 and rps_ratio >= 0.8},
        {"figure": "failed requests (all levels)", "value": c1["failed"] + c32["failed"],
         "unit": "requests", "reference": None, "reference_value": None, "ratio": None,
         "target": "0", "met": c1["failed"] + c32["failed"] == 0},
        {"figure": "freshness, produce() to the first GET reflecting it (p99)",
         "value": fresh["p99_ms"], "unit": "ms", "reference": "p50",
         "reference_value": fresh["p50_ms"], "ratio": fresh["p99_ms"] / fresh["p50_ms"],
         "target": "<= 20 ms", "met": fresh["p99_ms"] <= 20},
        {"figure": "memory of one extra gunicorn worker (tree PSS)",
         "value": mem["extra_worker_mb"], "unit": "MB", "reference": "model bytes",
         "reference_value": mem["model_mb"], "ratio": mem["extra_worker_mb"] / mem["model_mb"],
         "target": "< 10% of the model", "met": mem["extra_worker_pct_of_model"] < 10},
        {"figure": "one extra gunicorn worker (USS)", "value": mem["extra_worker_uss_mb"],
         "unit": "MB", "reference": "model bytes", "reference_value": mem["model_mb"],
         "ratio": mem["extra_worker_uss_mb"] / mem["model_mb"], "target": None, "met": None},
    ]


def _md_table(rows: list[dict[str, Any]]) -> str:
    cols = list(dict.fromkeys(c for r in rows for c in r))

    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
        return "" if v is None else f"{v:,}" if isinstance(v, int) and not isinstance(
            v, bool) else str(v)

    return ("| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
            + "".join("| " + " | ".join(cell(r.get(c)) for c in cols) + " |\n" for r in rows))


def write_markdown(out: dict[str, Any], path: Path) -> None:
    """``serving.md``: what docs/benchmarks.md shows for this benchmark."""
    m, b = out["model"], out["breakdown"]
    http_p50_us = out["latency"][0]["p50_ms"] * 1e3
    wsgi_us = b["rows"][0]["p50_us"]
    rows = [*b["rows"], {"part": "gunicorn, socket, client (HTTP c1 p50 minus WSGI)",
                         "p50_us": max(0.0, http_p50_us - wsgi_us)},
            {"part": "HTTP c1 p50 (load test)", "p50_us": http_p50_us}]
    for r in rows:
        r["share_of_http_p50"] = f"{100 * r['p50_us'] / http_p50_us:.0f}%"
    text = [
        "# serving\n\n",
        f"The default configuration: scorers {', '.join(m['scorers'])} (blend "
        f"{m['blend']}; item-item {m['item_item_kind']}), recency on, a catalogue of "
        f"{m['catalogue_records']:,} records, online tracking on; {m['users']:,} users x "
        f"{m['items']:,} items, {m['events']:,} events, {m['factors']} factors. gunicorn "
        f"{out['server']['workers']} workers x {out['server']['threads']} threads (gthread). "
        f"Load average {out['load_average_before']} before, {out['load_average_after']} after "
        "(a shared 2-core machine: read each figure against its same-run reference).\n\n",
        "**Key figures** (same run)\n\n", _md_table(out["headline"]), "\n",
        "**One request, part by part** (p50 µs, one thread, in process; each part timed alone, "
        "interleaved request by request with the whole, so their sum and the whole differ a "
        "little)\n\n", _md_table(rows), "\n",
        "**Latency and throughput over HTTP**\n\n", _md_table(out["latency"]), "\n",
        f"numpy reference: {out['numpy_reference']}\n\n",
        "**Memory** (MB; tree PSS counts the master too)\n\n", _md_table(out["memory"]), "\n",
        "memory summary: " + ", ".join(f"{k} {v:.1f}" for k, v in out["memory_summary"].items())
        + "\n\n",
        f"**gunicorn shapes at c{LEVELS[-1]}**\n\n", _md_table(out["shapes"]), "\n",
        f"freshness: {out['freshness']}\n\n",
    ]
    if out.get("plot"):
        text.append(f"![serving.png]({out['plot']})\n")
    path.write_text("".join(text))


def build_served(args: argparse.Namespace, tmp: Path) -> tuple[LocalStore, dict[str, Any]]:
    """The default configuration's snapshot, published in a local store; its facts."""
    t = time.perf_counter()
    model, window = build_model(args.users, args.items, args.events, args.factors)
    model, fits = default_model(model, window)
    catalogue = default_catalogue(list(model.item_ids))
    catalog_arrays = catalogue.to_arrays({}, model.item_ids)
    store = LocalStore(tmp / "store")
    write_snapshot(tmp / "build" / "v1", model, window.contents(), {0: 0}, "000000000001",
                   catalog=catalog_arrays)
    store.publish(tmp / "build" / "v1", "000000000001")
    snap_dir = store.snapshots / "000000000001"
    npy = [f for f in snap_dir.iterdir() if f.suffix == ".npy"]
    facts = {
        "model_bytes": sum(f.stat().st_size for f in npy),
        "served_bytes": sum(f.stat().st_size for f in npy if not f.name.startswith("window.")),
        "factor_bytes": model.als.user_factors.nbytes + model.als.item_factors.nbytes,
        "scorers": list(model.blend_table(model.scoring)),
        "blend": model.blend_table(model.scoring), "catalogue_records": len(catalogue),
        "catalogue_heap_mb": catalogue_heap_mb(catalog_arrays),
        "build_seconds": round(time.perf_counter() - t, 1), **fits}
    return store, facts


def model_arguments(doc: str) -> argparse.ArgumentParser:
    """The parser of a benchmark over `build_served`'s model: ``--quick`` and its size (the
    serving benchmarks', ``bench/groups.py`` too)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small model and short runs")
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=6.0, help="per concurrency level")
    return ap


def main() -> int:
    ap = model_arguments(__doc__)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--trials", type=int, default=100, help="freshness trials")
    ap.add_argument("--calls", type=int, default=2000, help="requests of the breakdown")
    ap.add_argument("--tracking", action="store_true",
                    help="also the online tracking on/off comparison (minutes)")
    ap.add_argument("--tracking-rounds", type=int, default=2,
                    help="alternating on/off rounds of the online-tracking comparison")
    ap.add_argument("--tracking-only", action="store_true",
                    help="only the online tracking on/off comparison (bench/results/"
                         "serving_tracking.json)")
    ap.add_argument("--event-rate", type=float, default=200.0,
                    help="events/s produced during the tracking comparison")
    args = ap.parse_args()
    if args.quick:
        args.users, args.items, args.events = 5_000, 2_000, 50_000
        args.seconds, args.trials, args.tracking_rounds, args.calls = 1.0, 20, 1, 300
    started = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    store, facts = build_served(args, tmp)
    snap_dir = store.snapshots / "000000000001"
    # What the workers map (serving skips the trainer's window).
    served = read_snapshot(snap_dir, verify=True, mmap=True, window=False).model
    reference = numpy_reference(served, 2.0 if not args.quick else 0.5)

    rng = np.random.default_rng(2)
    users = [served.user_ids[k] for k in rng.integers(0, len(served.user_ids), 20_000)]
    paths = [f"/users/{u}/recommendations?n=10".encode() for u in users]
    item = served.item_ids[int(served.popular_order[0])]

    # The breakdown, in process, on the app a worker builds (online tracking on).
    app = create_app(Config(cache_dir=str(tmp / "cache-inproc")), store=store)
    assert app.extensions["streamrec"].reloader.check_once()
    parts = breakdown(app, users, args.calls)
    del app

    broker = KafkaBroker(tmp / "kafka")
    broker.start()
    tracking: dict[str, Any] | None = None
    try:
        topic = broker.create_topic("interactions")
        if args.tracking or args.tracking_only:
            stream = EventStream(broker, topic, users, len(served.item_ids), args.event_rate)
            tracking = tracking_overhead(tmp, store.root, broker, topic, paths, args.workers,
                                         args.threads, args.seconds, args.tracking_rounds,
                                         stream)
            tracking["interleaved"] = interleaved_tracking(
                tmp, store.root, broker, topic, paths, args.workers, args.threads,
                3 * args.seconds)
            print_tracking(tracking)
        if args.tracking_only:
            RESULTS.mkdir(parents=True, exist_ok=True)
            (RESULTS / "serving_tracking.json").write_text(json.dumps(
                {"benchmark": "serving_tracking", "quick": args.quick,
                 "model": {"users": len(served.user_ids), "items": len(served.item_ids),
                           "events": args.events, "factors": args.factors},
                 "workers": args.workers, "threads": args.threads, "tracking": tracking},
                indent=2) + "\n")
            return 0
        with serve(tmp, store.root, broker, topic, args.workers, args.threads) as (h, p, proc):
            load(h, p, paths, 8, min(1.0, args.seconds))  # warm-up: pages mapped, caches
            levels = [load(h, p, paths, c, args.seconds, proc.pid) for c in LEVELS]
            fresh = freshness(h, p, broker, topic, item, args.trials)
        # Other gunicorn shapes for 2 cores, at the top concurrency (req/s and CPU/request).
        shapes = [{"workers": args.workers, "threads": args.threads, **levels[-1]}]
        for workers, threads in SHAPES:
            if (workers, threads) == (args.workers, args.threads):
                continue
            with serve(tmp, store.root, broker, topic, workers, threads) as (h, p, proc):
                load(h, p, paths, 8, min(1.0, args.seconds))
                shapes.append({"workers": workers, "threads": threads,
                               **load(h, p, paths, LEVELS[-1], args.seconds / 2, proc.pid)})
        memory = []
        for workers in (1, 4):
            with serve(tmp, store.root, broker, topic, workers, args.threads) as (h, p, proc):
                load(h, p, paths, 8, 1.0 if args.quick else 2.0)  # map what requests touch
                memory.append(worker_memory(proc))
    finally:
        broker.stop()
        # Snapshot, cache, broker data and logs: ~250 MB per full run (mapped files stay
        # readable after the unlink).
        shutil.rmtree(tmp, ignore_errors=True)

    one, four = memory
    extra_pss = (four["tree_pss_mb"] - one["tree_pss_mb"]) / 3
    model_mb, served_mb = facts["model_bytes"] / 2**20, facts["served_bytes"] / 2**20
    mem_summary = {"model_mb": model_mb, "served_model_mb": served_mb,
                   "factors_mb": facts["factor_bytes"] / 2**20,
                   "pss_1_worker_mb": one["pss_mb"], "pss_4_workers_mb": four["pss_mb"],
                   "tree_pss_1_worker_mb": one["tree_pss_mb"],
                   "tree_pss_4_workers_mb": four["tree_pss_mb"],
                   "uss_1_worker_mb": one["uss_mb"], "uss_4_workers_mb": four["uss_mb"],
                   "catalogue_objects_mb_per_worker": facts["catalogue_heap_mb"],
                   "extra_worker_mb": extra_pss,
                   "extra_worker_workers_only_mb": (four["pss_mb"] - one["pss_mb"]) / 3,
                   "extra_worker_uss_mb": (four["uss_mb"] - one["uss_mb"]) / 3,
                   "extra_worker_pct_of_model": 100 * extra_pss / model_mb,
                   "extra_worker_pct_of_served_model": 100 * extra_pss / served_mb}
    c1, c32 = levels[0], levels[-1]
    png = RESULTS / "serving.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    plotted = plot(levels, reference, png)
    headline = headline_rows(c1, c32, reference, mem_summary, fresh)
    out: dict[str, Any] = {
        "benchmark": "serving", "quick": args.quick, "python": platform.python_version(),
        "machine": platform.machine(), "cpus": os.cpu_count(),
        "seconds": round(time.perf_counter() - started, 1),
        "load_average_before": load_before,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "headline": headline,
        "model": {"users": len(served.user_ids), "items": len(served.item_ids),
                  "events": args.events, "nnz": int(served.user_items.nnz),
                  "factors": args.factors, "factors_are": "random (no fit)",
                  "scorers": facts["scorers"], "blend": facts["blend"],
                  "item_item_kind": facts["item_item_kind"],
                  "item_item_fit_s": round(facts["item_item_s"], 2),
                  "sequential_fit_s": round(facts.get("sequential_s", 0.0), 2),
                  "history_s": round(facts["history_s"], 2),
                  "catalogue_records": facts["catalogue_records"],
                  "build_seconds": facts["build_seconds"]},
        "server": {"workers": args.workers, "threads": args.threads,
                   "worker_class": "gthread", "client": "asyncio HTTP/1.1 keep-alive",
                   "seconds_per_level": args.seconds, "online_tracking": True},
        "breakdown": parts,
        "latency": levels,
        "numpy_reference": reference,
        "http_over_numpy_p50": c1["p50_ms"] / reference["p50_ms"],
        "freshness": {**fresh, "log": "kafka (tests/infra/kafka.py, KRaft, 1 partition)"},
        "memory": [{k: v for k, v in m.items()} for m in memory],
        "shapes": shapes,
        "memory_summary": mem_summary,
        "plot": png.name if plotted else None,
        "note": "client and server share the machine; req/s is a floor",
    }
    if tracking is not None:
        out["online_tracking"] = tracking
    (RESULTS / "serving.json").write_text(json.dumps(out, indent=2) + "\n")
    write_markdown(out, RESULTS / "serving.md")
    print(f"model: {out['model']}")
    print(f"load average before {load_before}, after {out['load_average_after']}")
    print(f"numpy score+argpartition: p50 {reference['p50_ms']:.3f} ms, "
          f"p99 {reference['p99_ms']:.3f} ms ({reference['per_core_rps']:.0f}/s per core)")
    print("one request, part by part (p50 us, in process):")
    for r in parts["rows"]:
        print(f"  {r['part']:<50} {r['p50_us']:>8.1f}")
    print(f"{'conc':>5} {'requests':>8} {'failed':>6} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'p99 ms':>7} {'req/s':>7} {'cpu us/req':>10}")
    for r in levels:
        print(f"{r['concurrency']:>5} {r['requests']:>8} {r['failed']:>6} {r['p50_ms']:>7.2f} "
              f"{r['p95_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['rps']:>7.0f} "
              f"{r.get('server_cpu_us_per_request', float('nan')):>10.0f}")
    print(f"gunicorn shapes at c{LEVELS[-1]}:")
    for r in shapes:
        print(f"  {r['workers']} workers x {r['threads']} threads: {r['rps']:>6.0f} req/s, p50 "
              f"{r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, server CPU "
              f"{r.get('server_cpu_us_per_request', float('nan')):.0f} us/request")
    print(f"freshness produce() -> GET: p50 {fresh['p50_ms']:.1f} ms, p99 {fresh['p99_ms']:.1f}"
          f" ms ({fresh['seen']}/{fresh['trials']})")
    for m in memory:
        print(f"{m['workers']} worker(s): " + ", ".join(
            f"{k} {v:.1f}" for k, v in m.items() if k != "workers"))
    print(f"snapshot files {model_mb:.1f} MB ({served_mb:.1f} MB served, without the window); "
          f"extra worker {extra_pss:.1f} MB PSS = {mem_summary['extra_worker_pct_of_model']:.0f}%"
          f" of the snapshot (USS {mem_summary['extra_worker_uss_mb']:.1f} MB)")
    for h in headline:
        print(f"{h['figure']}: {h['value']:.3g} {h['unit']}"
              + (f" vs {h['reference']} {h['reference_value']:.3g} ({h['ratio']:.2f}x)"
                 if h["reference"] else "")
              + (f"; goal {h['target']}: {'met' if h['met'] else 'MISSED'}" if h["target"]
                 else ""))
    print(f"wrote {RESULTS / 'serving.json'}, serving.md" + (f" and {png}" if plotted else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
