"""Real streamrec processes for fault tests: a trainer and a serving replica as subprocesses.

The fault tests kill, stop and starve these processes, so they run as children (a SIGKILL must
hit a real process, not a thread) and are observed only from outside: the trainer through its
``/metrics`` endpoint and JSON log, serving through HTTP. Small topic and snapshot readers
compute the truth that the processes' results are compared with.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import requests
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from streamrec.adapters.kafka import PARTITIONER
from streamrec.adapters.s3store import S3Store
from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.core.snapshot.arrays import Snapshot
from tests.infra.process import free_port

__all__ = ["Hammer", "ServingProc", "Stream", "TrainerProc", "latest_snapshot", "read_topic",
           "wait_for"]


def wait_for(pred: Callable[[], Any], seconds: float, what: str, every: float = 0.2) -> Any:
    """Poll ``pred`` until it returns something truthy and return that; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            value = pred()
        except (OSError, requests.RequestException, ValueError):
            value = None
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {seconds:.0f}s waiting for {what}")


def _child_env(s3: Any, tmp: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **s3.env(), "OPENBLAS_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra or {})
    return env


def fit_args(window: int, retrain_every: int, interval: float, iterations: int,
             factors: int = 8) -> list[str]:
    """The trainer flags the fault tests vary: window, retrain policy and a small, fast fit."""
    return ["--window-size", str(window), "--retrain-every", str(retrain_every),
            "--retrain-interval", str(interval), "--factors", str(factors),
            "--iterations", str(iterations)]


class TrainerProc:
    """``streamrec trainer`` as a child process, one log file across restarts.

    ``start()`` may be called again after ``kill()``; the metrics port of the current run is
    read from the log lines it wrote since it started.
    """

    def __init__(self, bootstrap: str, topic: str, s3: Any, workdir: Path,
                 args: Sequence[str] = ()) -> None:
        self.bootstrap, self.topic, self.s3 = bootstrap, topic, s3
        self.workdir = workdir
        self.tmp = workdir / "tmp0"  # this run's TMPDIR: its fit-* scratch dirs show a fit
        workdir.mkdir(parents=True, exist_ok=True)
        self.log = workdir / "trainer.log"
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_start = 0
        self.starts = 0

    def start(self) -> None:
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        self.tmp = self.workdir / f"tmp{self.starts}"  # a killed run leaves its scratch behind
        self.tmp.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "streamrec.cli", "trainer", "--topic", self.topic,
                "--bootstrap-servers", self.bootstrap, "--group", f"g-{self.topic}",
                "--store", f"s3://{self.s3.bucket}", "--metrics-port", "0", "--grace", "10",
                "--from-beginning", *self.args]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=_child_env(self.s3, self.tmp), stdout=out,
                                         stderr=subprocess.STDOUT)
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait; the exit code (0 is a clean stop)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise

    def port(self) -> int | None:
        text = self.log.read_bytes()[self._log_start:].decode(errors="replace")
        ports = re.findall(r'"event": "metrics", "port": (\d+)', text)
        return int(ports[-1]) if ports else None

    def metrics(self) -> dict[str, float]:
        """The current run's trainer metrics (``name{labels}`` -> value); {} before it is up."""
        port = self.port()
        if port is None:
            return {}
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                body = r.read().decode()
        except OSError:
            return {}
        out: dict[str, float] = {}
        for line in body.splitlines():
            if line.startswith("streamrec_trainer_") and " " in line:
                name, value = line.rsplit(" ", 1)
                out[name] = float(value)
        return out

    def metric(self, name: str) -> float:
        """One metric of the current run, summed over its labels (0 when absent)."""
        prefix = f"streamrec_trainer_{name}"
        return sum(v for k, v in self.metrics().items()
                   if k == prefix or k.startswith(prefix + "{"))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def close(self) -> None:
        if self.running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.terminate(30)


class ServingProc:
    """``streamrec serve`` (gunicorn, one gthread worker) on a free port, with fold-in."""

    def __init__(self, bootstrap: str, topic: str, s3: Any, workdir: Path,
                 args: Sequence[str] = (), port: int | None = None) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "serve.log"
        argv = [sys.executable, "-m", "streamrec.cli", "serve", "--bind",
                f"127.0.0.1:{self.port}", "--workers", "1", "--threads", "4",
                "--store", f"s3://{s3.bucket}", "--bootstrap-servers", bootstrap,
                "--topic", topic, "--reload-interval", "0.5",
                "--cache-dir", str(workdir / "cache"), *args]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(argv, env=_child_env(s3, workdir), stdout=out,
                                         stderr=subprocess.STDOUT)
        self.http = requests.Session()

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    def get(self, path: str, timeout: float = 5) -> requests.Response:
        return self.http.get(self.base + path, timeout=timeout)

    def wait_model(self, seconds: float = 120) -> str:
        """Wait until a snapshot is served; its version."""
        def ready() -> str | None:
            if not self.running:
                raise AssertionError(f"serving exited:\n{self.log_tail()}")
            r = self.get("/readyz", timeout=2)
            return self.get("/model", timeout=2).json().get("version") \
                if r.status_code == 200 else None
        return str(wait_for(ready, seconds, "serving to load a snapshot"))

    def version(self) -> str:
        return str(self.get("/model").json()["version"])

    def metrics_text(self) -> str:
        return self.get("/metrics").text

    def foldin_read(self) -> float:
        """Messages the fold-in consumer has read, over every result label."""
        return sum(float(line.rsplit(" ", 1)[1]) for line in self.metrics_text().splitlines()
                   if line.startswith("streamrec_foldin_events_total{"))

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def close(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def read_topic(bootstrap: str, topic: str, partitions: int, timeout: float = 60) -> list[Any]:
    """Every message of ``topic`` up to its current end, straight from the broker."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "truth-reader",
                         "enable.auto.commit": False, "enable.partition.eof": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got: list[Any] = []
        seen = dict.fromkeys(ends, 0)
        deadline = time.monotonic() + timeout
        while any(seen[p] < ends[p] for p in ends):
            if time.monotonic() > deadline:
                raise AssertionError(f"read {seen} of {ends} in {topic} within {timeout}s")
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is not None:
                    continue
                p, o = msg.partition(), msg.offset()
                assert p is not None and o is not None
                if o < ends[p]:
                    got.append(msg)
                    seen[p] = max(seen[p], o + 1)
        return got
    finally:
        consumer.close()


def latest_snapshot(store: S3Store, tmp: Path) -> Snapshot | None:
    """LATEST's snapshot, fetched and verified; None when nothing is published."""
    version = store.latest()
    if version is None:
        return None
    return read_snapshot(store.fetch(version, tmp))  # versions are never reused: a cache


class Stream:
    """A steady producer thread: ``rate`` events/s of ``u<k % users>:i<k>`` until `stop`.

    Idempotent with ``acks=all`` and a long delivery timeout, so a broker outage delays
    messages but neither loses nor duplicates them; ``delivered``/``failed`` count the reports.
    """

    def __init__(self, bootstrap: str, topic: str, rate: float = 200, users: int = 50) -> None:
        self.topic, self.rate, self.users = topic, rate, users
        self.producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                                  "acks": "all", "linger.ms": 5,
                                  "message.timeout.ms": 300_000,
                                  "partitioner": PARTITIONER})
        self.sent = self.delivered = self.failed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stream", daemon=True)

    def _report(self, err: Any, _msg: Any) -> None:
        if err is None:
            self.delivered += 1
        else:
            self.failed += 1

    def _run(self) -> None:
        started, k = time.monotonic(), 0
        while not self._stop.is_set():
            due = int((time.monotonic() - started) * self.rate)
            while k < due:
                user = f"u{k % self.users}"
                try:
                    self.producer.produce(self.topic, value=f"{user}:i{k}".encode(),
                                          key=user.encode(),
                                          on_delivery=self._report)
                except BufferError:
                    break
                k += 1
                self.sent = k
            self.producer.poll(0.02)

    def start(self) -> Stream:
        self._thread.start()
        return self

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, flush: float = 120) -> int:
        """Stop producing and wait for every delivery report; the messages left unreported."""
        self._stop.set()
        self._thread.join(10)
        return int(self.producer.flush(flush))


class Hammer:
    """GET ``path`` on serving every ``every`` seconds from a thread; counts by status."""

    def __init__(self, serving: ServingProc, path: str, every: float = 0.05) -> None:
        self.serving, self.path, self.every = serving, path, every
        self.stats: Counter[str] = Counter()
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hammer", daemon=True)

    def _run(self) -> None:
        with requests.Session() as http:
            while not self._stop.wait(self.every):
                try:
                    r = http.get(self.serving.base + self.path, timeout=5)
                    self.stats[str(r.status_code)] += 1
                    if r.status_code == 200:
                        self.versions[str(r.json().get("model_version"))] += 1
                except Exception as e:  # noqa: BLE001 - every failure counts as an error
                    self.stats[type(e).__name__] += 1

    def start(self) -> Hammer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:  # started
            self._thread.join(10)

    @property
    def ok(self) -> int:
        return self.stats["200"]

    @property
    def errors(self) -> dict[str, int]:
        return {k: v for k, v in self.stats.items() if k != "200"}
