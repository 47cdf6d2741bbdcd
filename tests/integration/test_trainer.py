"""The trainer on a real Kafka broker and a real MinIO: snapshots, DLQ, crash resume, S3 outage."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from streamrec.adapters.kafka import KafkaSink, KafkaSource, ensure_topics
from streamrec.adapters.s3store import S3Store
from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.config import Config
from streamrec.core.snapshot.arrays import Snapshot
from streamrec.data import movielens
from streamrec.trainer.service import Trainer


def _config(kafka, topic: str, **kw: object) -> Config:  # type: ignore[no-untyped-def]
    base: dict[str, object] = dict(
        bootstrap_servers=kafka.bootstrap, topic=topic, group=f"g-{topic}", window_size=100_000,
        retrain_every=100_000, retrain_interval=1.0, factors=8, iterations=3, keep=3,
        from_beginning=True)
    base.update(kw)
    return Config(**base)  # type: ignore[arg-type]


def _store(s3) -> S3Store:  # type: ignore[no-untyped-def]
    return S3Store(s3.bucket, "", client=s3.client())


def _produce(cfg: Config, values: list[bytes]) -> None:
    sink = KafkaSink(cfg.kafka)
    for k, v in enumerate(values):
        sink.produce(cfg.topic, v, key=str(k % 7).encode())
    assert sink.flush(30) == 0


def _step_until(trainer: Trainer, done: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        trainer.step(timeout=0.2)
        if done():
            return
    raise AssertionError("condition not reached in time")


def _latest(store: S3Store, tmp: Path) -> Snapshot | None:
    version = store.latest()
    return None if version is None else read_snapshot(store.fetch(version, tmp))


def _topic(kafka, partitions: int = 2) -> str:  # type: ignore[no-untyped-def]
    return kafka.create_topic(f"tr-{uuid.uuid4().hex[:8]}", partitions=partitions)


def _read_all(cfg: Config, topic: str, count: int) -> list:  # type: ignore[type-arg]
    source = KafkaSource(cfg.kafka, topic)
    got: list = []  # type: ignore[type-arg]
    try:
        source.seek({})
        for _ in range(100):
            got.extend(source.poll(1000, 0.2))
            if len(got) >= count:
                break
    finally:
        source.close()
    return got


def test_events_become_an_s3_snapshot_and_bad_ones_land_in_the_dlq(kafka, s3, tmp_path):
    cfg = _config(kafka, _topic(kafka), min_weight=2.0)
    ensure_topics(cfg.kafka, [cfg.dlq, cfg.notify or ""])
    good = [f"u{k % 20}:i{k % 30}:3".encode() for k in range(500)]
    low = [f"u{k}:i{k}:1".encode() for k in range(5)]
    bad = [b"nope", b"a:b:c:d", b'{"user": 1}', b"u:i:-1", b"\x00:x"]
    _produce(cfg, good + low + bad)
    store = _store(s3)
    trainer = Trainer(cfg, KafkaSource(cfg.kafka, cfg.topic, cfg.group), KafkaSink(cfg.kafka),
                      store, workdir=tmp_path / "work")
    assert trainer.resume() is not None
    m = trainer.metrics
    _step_until(trainer, lambda: trainer.window.total_appended == 500 and trainer.published
                and store.latest() is not None and
                (s := _latest(store, tmp_path / "c")) is not None and
                s.manifest.window["total_appended"] == 500)
    trainer.shutdown()
    snap = _latest(store, tmp_path / "final")
    assert snap is not None
    assert snap.manifest.sizes["window"] == 500
    assert (snap.manifest.sizes["users"], snap.manifest.sizes["items"]) == (20, 30)
    assert snap.model.factors == 8
    assert sum(snap.offsets.values()) == 510
    consumed = m.consumed._value.get()
    invalid = sum(c._value.get() for c in m.invalid._metrics.values())
    assert (m.accepted._value.get(), invalid, m.filtered._value.get()) == (500, 5, 5)
    assert consumed == 510
    dead = _read_all(cfg, cfg.dlq, 5)
    assert sorted(d.value for d in dead) == sorted(bad)
    for d in dead:
        headers = dict(d.headers)
        partition, offset = headers["source-offset"].decode().split(":")
        assert int(partition) in (0, 1) and int(offset) >= 0
        assert headers["error"].split(b":")[0] in {b"malformed", b"bad_weight", b"control_char",
                                                   b"bad_id"}
    notified = _read_all(cfg, cfg.notify or "", 1)
    assert [n.value for n in notified][-1].decode() == snap.version


def test_movielens_100k_as_json_events_becomes_a_snapshot_with_the_exact_counts(
        kafka, s3, tmp_path):
    ratings, _ = movielens.load()
    cfg = _config(kafka, _topic(kafka), window_size=200_000, retrain_every=10**9,
                  retrain_interval=1.0, factors=4, iterations=1)
    _produce(cfg, [json.dumps(r.as_json()).encode() for r in ratings])
    store = _store(s3)
    trainer = Trainer(cfg, KafkaSource(cfg.kafka, cfg.topic, cfg.group), KafkaSink(cfg.kafka),
                      store, workdir=tmp_path / "work")
    assert trainer.resume() is not None

    def covered() -> bool:
        snap = _latest(store, tmp_path / f"c{time.monotonic_ns()}")
        return snap is not None and snap.manifest.window["total_appended"] == len(ratings)

    _step_until(trainer, lambda: trainer.window.total_appended == len(ratings) and
                trainer.published != [] and covered(), 180)
    trainer.shutdown()
    snap = _latest(store, tmp_path / "final")
    assert snap is not None
    users = {r.user for r in ratings}
    items = {r.item for r in ratings}
    assert len(ratings) == 100_000 and (len(users), len(items)) == (943, 1682)
    assert snap.manifest.sizes["window"] == len(ratings)
    assert (snap.manifest.sizes["users"], snap.manifest.sizes["items"]) == (len(users),
                                                                              len(items))
    assert set(snap.model.user_ids) == users and set(snap.model.item_ids) == items
    assert sum(snap.offsets.values()) == len(ratings)
    got = Counter((e.user, e.item) for e in snap.window.events())
    assert got == Counter((r.user, r.item) for r in ratings)
    assert trainer.metrics.accepted._value.get() == len(ratings)


def _trainer_process(cfg: Config, s3, log: Path, tmp: Path, retrain_every: int = 150,  # type: ignore[no-untyped-def]
                     interval: float = 1.0) -> subprocess.Popen[bytes]:
    tmp.mkdir(parents=True, exist_ok=True)  # TMPDIR: its fit-* scratch dirs show a fit running
    env = {**os.environ, **s3.env(), "OPENBLAS_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    argv = [sys.executable, "-m", "streamrec.cli", "trainer", cfg.topic, str(retrain_every),
            "100000", "-b", "--bootstrap-servers", cfg.bootstrap_servers, "--group", cfg.group,
            "--retrain-interval", str(interval), "--factors", "16", "--iterations", "30",
            "--store", f"s3://{s3.bucket}", "--metrics-port", "0", "--grace", "10"]
    return subprocess.Popen(argv, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


def _wait(pred: Callable[[], bool], seconds: float, what: str, every: float = 0.3) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}")


def _consumed(log: Path, since: int) -> float:
    """events_consumed_total of the trainer whose metrics line comes after byte ``since``."""
    ports = re.findall(r'"event": "metrics", "port": (\d+)', log.read_text()[since:])
    if not ports:
        return 0.0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ports[-1]}/metrics", timeout=2) as r:
            body = r.read().decode()
    except OSError:
        return 0.0
    found = re.search(r"^streamrec_trainer_events_consumed_total (\S+)$", body, re.M)
    return float(found.group(1)) if found else 0.0


def _kill(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


def test_sigkill_at_three_points_then_restart_loses_nothing_and_counts_nothing_twice(
        kafka, s3, tmp_path):
    """Kills: before the first snapshot, during a fit (its scratch dir exists), right after a
    publish (LATEST just moved). Each restart resumes; the last window is the topic's."""
    cfg = _config(kafka, _topic(kafka))
    store = _store(s3)
    log = tmp_path / "trainer.log"
    tmp = tmp_path / "tmp"
    stop = threading.Event()
    produced: list[int] = []

    def produce_slowly() -> None:
        """Events keep arriving until the last restart, so every kill lands mid-stream."""
        sink = KafkaSink(cfg.kafka)
        k = 0
        while k < 30_000 and not (stop.is_set() and k % 100 == 0):
            sink.produce(cfg.topic, f"u{k % 37}:i{k}".encode(), key=str(k % 37).encode())
            k += 1
            if k % 100 == 0:
                sink.flush(10)
                time.sleep(0.3)
        sink.flush(30)
        produced.append(k)

    def fitting() -> bool:
        return any(tmp.glob("streamrec-trainer-*/fit-*"))

    producer = threading.Thread(target=produce_slowly)
    proc = _trainer_process(cfg, s3, log, tmp, retrain_every=10**6, interval=30)
    kills: list[str | None] = []
    try:
        producer.start()
        # 1. before the first snapshot: events consumed, nothing published yet
        _wait(lambda: _consumed(log, 0) > 0, 90, "the first trainer consuming")
        assert store.latest() is None
        _kill(proc)
        kills.append(store.latest())
        # 2. during a fit: its scratch directory (fit, snapshot write, upload) exists
        proc = _trainer_process(cfg, s3, log, tmp)
        _wait(lambda: store.latest() is not None and fitting(), 90, "a fit", every=0.01)
        _kill(proc)
        kills.append(store.latest())
        # 3. right after a publish: LATEST moved past the one the restart resumed from
        proc = _trainer_process(cfg, s3, log, tmp)
        _wait(lambda: (store.latest() or "") > (kills[-1] or ""), 90, "a publish", every=0.01)
        _kill(proc)
        kills.append(store.latest())
        proc = _trainer_process(cfg, s3, log, tmp)
        assert producer.is_alive(), "every kill should happen while events still arrive"
        stop.set()
        producer.join(60)
        total = produced[0]

        def complete() -> bool:
            snap = _latest(store, tmp_path / f"c{time.monotonic_ns()}")
            return snap is not None and snap.manifest.window["total_appended"] >= total

        _wait(complete, 120, "a snapshot covering every event")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert len(kills) == 3
    snap = _latest(store, tmp_path / "final")
    assert snap is not None and snap.version > (kills[-1] or "")
    assert snap.manifest.window["total_appended"] == total
    got = Counter((e.user, e.item) for e in snap.window.events())
    truth = Counter((e.value.decode().split(":")[0], e.value.decode().split(":")[1])
                    for e in _read_all(cfg, cfg.topic, total))
    assert got == truth
    assert sum(snap.offsets.values()) == total
    assert '"event": "retrain"' in log.read_text()


def test_s3_outage_counts_upload_failures_keeps_consuming_and_publishes_after(
        kafka, s3, minio, tmp_path):
    cfg = _config(kafka, _topic(kafka, partitions=1))
    _produce(cfg, [f"u{k % 9}:i{k % 13}".encode() for k in range(200)])
    store = _store(s3)
    trainer = Trainer(cfg, KafkaSource(cfg.kafka, cfg.topic, cfg.group), KafkaSink(cfg.kafka),
                      store, workdir=tmp_path / "work")
    assert trainer.resume() is not None
    m = trainer.metrics
    try:
        minio.stop()
        stopped = time.monotonic()
        _step_until(trainer, lambda: m.upload_failures._value.get() >= 2, 60)
        assert store_is_down(store)
        _produce(cfg, [f"u{k % 9}:i{k % 13}".encode() for k in range(200, 300)])
        _step_until(trainer, lambda: trainer.window.total_appended == 300, 60)
        assert m.accepted._value.get() == 300
        # keep the outage at 20 s, the trainer stepping all along
        _step_until(trainer, lambda: time.monotonic() - stopped >= 20, 30)
        assert store_is_down(store)
        failures_during_outage = m.upload_failures._value.get()
    finally:
        minio.start()
    _step_until(trainer, lambda: len(trainer.published) >= 2, 120)
    trainer.shutdown()
    snap = _latest(store, tmp_path / "final")
    assert snap is not None
    assert snap.manifest.window["total_appended"] == 300
    assert m.retrains._value.get() == len(trainer.published)
    assert failures_during_outage >= 4  # retried with backoff through the whole 20 s


def store_is_down(store: S3Store) -> bool:
    from streamrec.adapters.storebase import StoreUnavailable

    try:
        store.latest()
    except StoreUnavailable:
        return True
    return False
