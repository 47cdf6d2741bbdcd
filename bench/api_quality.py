"""Recommendation quality through the HTTP API of a real `streamrec run`, on two protocols.

The number users get, not only the library's: MovieLens-100K in time order is replayed into
`streamrec run` with its default configuration (only ``--data-dir`` and ``--bind`` are given),
through ``POST /interactions`` and ``GET /users/<u>/recommendations?n=10``, once per protocol,
each into a fresh service:

- ``rated`` (issue 19's): every event posted with its rating as ``rating`` and its original
  timestamp as ``ts``;
- ``unit`` (issue 27's, what most applications send, a click stream): every event posted as
  ``{"user", "item"}`` alone, a unit-weight implicit event stamped on arrival.

The test cases are the same in both: the events whose rating is >= 4.

1. warm-up: the first 20% of the events (20,000) are posted, then the driver waits until a
   snapshot that holds all of them is served;
2. test-then-train: for every later event that is a rating >= 4 from a known user (one with an
   earlier event in the stream), the user's top 10 is asked *before* the event is posted and
   scored against its item (recall@10, nDCG@10, MRR@10, as ``streamrec evaluate``); every
   event is then posted (consecutive events are batched up to 1,000 per POST until the next
   test event needs an answer).

Freshness is checked, not assumed: each answer says which snapshot served it
(``model_version``, whose offsets ``GET /model`` gives) and how many of the user's events since
that snapshot it folded in (``fresh_events``); the driver knows the log offset of every event
it posted (it is the only producer of a fresh data dir), so it asks again until the answer
includes all of the user's earlier events, as a real user's next visit, seconds later, would.
Retrains happen as the service decides (every 5,000 events or 5 s with new events).

Metrics are reported for all scored events, and separately for the first half of the test part
(validation: where the defaults were tuned, with ``streamrec evaluate --part validation``) and
the second (test). Writes ``bench/results/api_quality.{json,md}``.

    python bench/api_quality.py [--quick] [--events N] [--protocol rated|unit|both]
                                [-- extra `streamrec run` flags]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving import free_port, pct, stop  # noqa: E402  (bench/serving.py's helpers)
from streamrec.core.events.event import Event  # noqa: E402
from streamrec.core.scoring.hits import score  # noqa: E402
from streamrec.evaluation.metrics import MetricSums  # noqa: E402
from streamrec.evaluation.prequential import in_time_order  # noqa: E402

RESULTS = Path(__file__).parent / "results"
QUICK_EVENTS = 10_000
BATCH = 1000
MAX_PER_USER = 500  # serving's FreshEvents bound per user (serving/live/fresh.py)
SYNC_TIMEOUT = 10.0  # seconds an answer may take to include the user's earlier events


class Api:
    """A keep-alive HTTP/1.1 client for one `streamrec run`."""

    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(3):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, json.loads(resp.read() or b"null")
            except (ConnectionError, http.client.HTTPException):
                if attempt == 2:
                    raise
                self.conn.close()
                time.sleep(0.1)
        raise AssertionError("unreachable")


PROTOCOLS = ("rated", "unit")


def event_json(e: Event, protocol: str = "rated") -> dict[str, Any]:
    """The event as the protocol posts it: with its rating and time, or ids alone."""
    if protocol == "unit":
        return {"user": e.user, "item": e.item}
    return {"user": e.user, "item": e.item, "rating": e.weight, "ts": e.ts}


class Driver:
    """Posts events, tracks their log offsets, and asks for fresh-enough recommendations."""

    def __init__(self, api: Api, protocol: str = "rated") -> None:
        self.api = api
        self.protocol = protocol
        self.posted = 0  # = the next log offset (the driver is the log's only producer)
        self.user_offsets: dict[str, list[int]] = {}
        self.pending: list[Event] = []
        self.snapshot_offsets: dict[str, int] = {}
        self.retries = 0
        self.sync_timeouts = 0

    def post(self, event: Event) -> None:
        self.pending.append(event)
        if len(self.pending) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        status, body = self.api.call("POST", "/interactions",
                                     [event_json(e, self.protocol) for e in self.pending])
        if status != 202:
            raise RuntimeError(f"POST /interactions: {status} {body}")
        for e in self.pending:
            self.user_offsets.setdefault(e.user, []).append(self.posted)
            self.posted += 1
        self.pending.clear()

    def offsets_of(self, version: str) -> int | None:
        if version not in self.snapshot_offsets:
            status, body = self.api.call("GET", "/model")
            if status == 200:
                self.snapshot_offsets[body["version"]] = sum(body["offsets"].values())
        return self.snapshot_offsets.get(version)

    def served_offset(self) -> int:
        status, body = self.api.call("GET", "/model")
        return sum(body["offsets"].values()) if status == 200 else -1

    def recommend(self, user: str, n: int = 10) -> tuple[list[str], float]:
        """The user's list once it includes all their posted events; (items, seconds)."""
        self.flush()
        mine = self.user_offsets.get(user, [])
        deadline = time.monotonic() + SYNC_TIMEOUT
        while True:
            started = time.perf_counter()
            status, body = self.api.call("GET", f"/users/{user}/recommendations?n={n}")
            took = time.perf_counter() - started
            if status != 200:
                raise RuntimeError(f"GET recommendations: {status} {body}")
            floor = self.offsets_of(body["model_version"])
            if floor is not None:
                expected = min(MAX_PER_USER, sum(o >= floor for o in mine))
                if body["fresh_events"] >= expected:
                    return [x["item"] for x in body["items"]], took
            if time.monotonic() > deadline:
                self.sync_timeouts += 1
                return [x["item"] for x in body["items"]], took
            self.retries += 1
            time.sleep(0.002)


def start_service(data: Path, port: int, extra: Sequence[str]) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "import sys; from streamrec.cli import main; sys.exit(main())",
           "run", "--data-dir", str(data),
           "--bind", f"127.0.0.1:{port}", *extra]
    log = (data.parent / "service.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamrec run exited with {proc.returncode}; see {log.name}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("streamrec run did not listen within 120 s")


def wait_for_snapshot(driver: Driver, offset: int, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while driver.served_offset() < offset:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no snapshot covering offset {offset} within {timeout} s")
        time.sleep(0.2)


def replay(events: list[Event], driver: Driver, warmup: float, k: int) -> dict[str, Any]:
    n_warm = int(len(events) * warmup)
    for e in events[:n_warm]:
        driver.post(e)
    driver.flush()
    wait_for_snapshot(driver, n_warm)
    known = {e.user for e in events[:n_warm]}
    test = events[n_warm:]
    half = len(test) // 2
    sums = {"all": MetricSums(), "validation": MetricSums(), "test": MetricSums()}
    latencies: list[float] = []
    started = time.perf_counter()
    for j, e in enumerate(test):
        if e.weight >= 4.0 and e.user in known:
            items, took = driver.recommend(e.user, k)
            latencies.append(took)
            hit = score(items, e.item, k)
            sums["all"].add(hit)
            sums["validation" if j < half else "test"].add(hit)
        driver.post(e)
        known.add(e.user)
        if (j + 1) % 10_000 == 0:
            print(f"  {j + 1}/{len(test)} test events, {time.perf_counter() - started:.0f} s",
                  file=sys.stderr, flush=True)
    driver.flush()
    return {
        "warmup_events": n_warm,
        "test_events": len(test),
        "metrics": {part: s.mean() for part, s in sums.items()},
        "get_ms": {"p50": pct([1e3 * x for x in latencies], 50),
                   "p99": pct([1e3 * x for x in latencies], 99)},
        "retries": driver.retries,
        "sync_timeouts": driver.sync_timeouts,
        "replay_seconds": round(time.perf_counter() - started, 1),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| protocol | scored part | events | recall@10 | nDCG@10 | MRR@10 | GET p50 ms "
             "| GET p99 ms |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for protocol, result in results.items():
        for part, m in result["metrics"].items():
            if m["events"]:
                lines.append(f"| {protocol} | {part} | {m['events']} | {100 * m['recall']:.2f} "
                             f"| {100 * m['ndcg']:.2f} | {100 * m['mrr']:.2f} "
                             f"| {result['get_ms']['p50']:.2f} | {result['get_ms']['p99']:.2f} |")
    return "\n".join(lines) + "\n"


def run_protocol(events: list[Event], protocol: str, warmup: float,
                 flags: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One replay into a fresh `streamrec run`: (result, its GET /model at the end)."""
    tmp = Path(tempfile.mkdtemp(prefix=f"api-quality-{protocol}-"))
    port = free_port()
    proc = start_service(tmp / "data", port, flags)
    try:
        driver = Driver(Api(port), protocol)
        print(f"{protocol}: replaying {len(events)} events into streamrec run on :{port}",
              file=sys.stderr)
        result = replay(events, driver, warmup, 10)
        status, model = driver.api.call("GET", "/model")
    finally:
        stop(proc, 60)
        shutil.rmtree(tmp, ignore_errors=True)
    served = ({key: model.get(key) for key in ("version", "params", "sizes", "fit")}
              if status == 200 else None)
    return result, served


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"the first {QUICK_EVENTS} events only")
    parser.add_argument("--events", type=int, default=None, help="use the first EVENTS events")
    parser.add_argument("--warmup", type=float, default=0.2)
    parser.add_argument("--name", default="api_quality")
    parser.add_argument("--protocol", choices=(*PROTOCOLS, "both"), default="both",
                        help="rated: rating and ts posted; unit: ids alone (default: both)")
    parser.add_argument("service_flags", nargs="*",
                        help="extra `streamrec run` flags after --, e.g. -- --recency-decay 0")
    args = parser.parse_args(argv)
    from streamrec.data.movielens import load

    ratings, _ = load()
    events = in_time_order(Event(r.user, r.item, r.rating, r.timestamp) for r in ratings)
    limit = args.events or (QUICK_EVENTS if args.quick else None)
    events = events[:limit] if limit else events
    # A SIGTERM (the bench runner's timeout) unwinds, so the service and its data go too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    protocols = PROTOCOLS if args.protocol == "both" else (args.protocol,)
    results: dict[str, dict[str, Any]] = {}
    served: dict[str, dict[str, Any] | None] = {}
    for protocol in protocols:
        results[protocol], served[protocol] = run_protocol(events, protocol, args.warmup,
                                                           args.service_flags)
    out = {
        "benchmark": "recommendation quality through the HTTP API of streamrec run",
        "dataset": "MovieLens-100K (recbole wheel), time order; rated: weight = rating and "
                   "the original ts; unit: ids alone; test cases: ratings >= 4",
        "events": len(events),
        "quick": bool(args.quick),
        "service_flags": list(args.service_flags),
        "served_model": served,
        "results": results,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    text = table(results)
    retries = sum(r["retries"] for r in results.values())
    timeouts = sum(r["sync_timeouts"] for r in results.values())
    (RESULTS / f"{args.name}.md").write_text(
        f"# {out['benchmark']}\n\n{len(events)} events, flags {args.service_flags or 'none'}; "
        f"{retries} freshness retries, {timeouts} timeouts.\n\n{text}")
    print(text, end="")
    print(f"retries {retries}, sync timeouts {timeouts}; "
          f"{sum(r['replay_seconds'] for r in results.values()):.0f} s; "
          f"wrote {RESULTS / (args.name + '.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
