"""The spark training engine (pyspark ``local[2]``) on a real Kafka (8 partitions) and MinIO.

One SparkSession for the module (a session costs 10–20 s to start): the trainer publishes a
Spark snapshot that ``streamrec serve`` loads, whose fold-in against Spark's item factors
reproduces Spark's user factors; a second trainer resumes from the manifest's offsets; the
cells Spark fitted are the window's aggregated ones; a trainer killed mid-fit publishes nothing.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer
from tests.infra.minio import S3Bucket
from tests.support.trainerproc import ServingProc, TrainerProc, fit_args, wait_for

from streamrec.adapters.kafka import KafkaSink, KafkaSource
from streamrec.adapters.s3store import S3Store
from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.spark import SparkEngine, SparkSettings
from streamrec.config import Config
from streamrec.core.events import Event
from streamrec.core.scoring import foldin
from streamrec.core.snapshot.arrays import Snapshot
from streamrec.core.window.sliding import SlidingWindow
from streamrec.trainer.service import Trainer

EVENTS, PARTITIONS, USERS, ITEMS = 50_000, 8, 2_000, 400


@pytest.fixture(scope="module")
def engine() -> Iterator[SparkEngine]:
    """The module's engine; closing it must end pyspark's JVM (``SparkSession.stop()`` alone
    leaves it running until the Python process exits)."""
    from pyspark import SparkContext

    spark = SparkEngine(SparkSettings(master="local[2]", driver_memory="768m"))
    yield spark
    gateway = SparkContext._gateway
    spark.close()
    assert gateway is None or gateway.proc.poll() is not None, "engine.close() left the JVM"
    assert SparkContext._gateway is None


def _events(count: int, seed: int) -> list[Event]:
    """Skewed users and items, repeats of one cell, and 5 % negative feedback."""
    rng = random.Random(seed)
    return [Event(f"u{int(USERS * rng.random() ** 2)}", f"i{int(ITEMS * rng.random() ** 1.5)}",
                  -1.0 if rng.random() < 0.05 else float(rng.choice((1, 1, 2, 3))))
            for _ in range(count)]


def _produce(bootstrap: str, topic: str, events: list[Event]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20})
    for e in events:  # keyed by user: a user's events keep their order (the window's)
        body = {"user": e.user, "item": e.item, "weight": e.weight}
        while True:
            try:
                producer.produce(topic, json.dumps(body).encode(), key=e.user.encode())
                break
            except BufferError:
                producer.poll(0.1)
    assert producer.flush(60) == 0


def _config(bootstrap: str, topic: str) -> Config:
    return Config(bootstrap_servers=bootstrap, topic=topic, group=f"g-{topic}",
                  window_size=100_000, retrain_every=10**9, retrain_interval=1.0, factors=8,
                  iterations=5, regularization=0.05, keep=3, from_beginning=True,
                  training_engine="spark")


def _train_until(trainer: Trainer, store: S3Store, tmp: Path, appended: int) -> Snapshot:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        trainer.step(timeout=0.2)
        version = store.latest()
        if version is not None and trainer.published and trainer.published[-1] == version:
            snap = read_snapshot(store.fetch(version, tmp / version))
            if snap.manifest.window["total_appended"] == appended:
                return snap
    raise AssertionError(f"no snapshot of {appended} events within 300 s")


@dataclass
class Trained:
    config: Config
    bucket: S3Bucket
    store: S3Store
    events: list[Event]
    snapshot: Snapshot


@pytest.fixture(scope="module")
def trained(kafka, minio, engine, tmp_path_factory) -> Iterator[Trained]:  # type: ignore[no-untyped-def]
    """50k events through Kafka into one Spark-fitted snapshot on MinIO (its bucket removed
    at the end of the module)."""
    bucket = S3Bucket(minio, f"spark-{uuid.uuid4().hex[:12]}")
    minio.client().create_bucket(Bucket=bucket.bucket)
    store = S3Store(bucket.bucket, "", client=minio.client())
    topic = kafka.create_topic(f"spark-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    events = _events(EVENTS, seed=26)
    _produce(kafka.bootstrap, topic, events)
    cfg = _config(kafka.bootstrap, topic)
    tmp = tmp_path_factory.mktemp("spark-trained")
    sink = KafkaSink(cfg.kafka)
    trainer = Trainer(cfg, KafkaSource(cfg.kafka, topic, cfg.group), sink, store,
                      workdir=tmp / "work", engine=engine)
    try:
        assert trainer.resume() is not None
        snap = _train_until(trainer, store, tmp, EVENTS)
    finally:
        trainer.shutdown()
        sink.close()
    yield Trained(cfg, bucket, store, events, snap)
    client = minio.client()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket.bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket.bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket.bucket)


def test_the_manifest_names_the_engine_and_the_offsets_cover_every_partition(trained):
    m = trained.snapshot.manifest
    assert m.fit["engine"] == "spark" and m.fit["device"] == "spark:local[2]"
    assert m.params["als"]["regularization_scaling"] == "positives"
    assert len(m.offsets) == PARTITIONS and sum(m.offsets.values()) == EVENTS


def test_spark_fitted_the_windows_aggregated_cells_once_each(trained):
    expected = SlidingWindow(100_000)
    expected.extend(trained.events)
    want = expected.build()
    got = trained.snapshot.model
    def cells(ids_u, ids_i, matrix) -> dict[tuple[str, str], float]:  # type: ignore[no-untyped-def]
        coo = matrix.tocoo()
        return {(ids_u[u], ids_i[i]): round(float(v), 4)
                for u, i, v in zip(coo.row, coo.col, coo.data, strict=True)}
    assert cells(got.user_ids, got.item_ids, got.user_items) == \
        cells(want.user_ids, want.item_ids, want.user_items)
    repeats = EVENTS - want.user_items.nnz
    assert repeats > 1_000 and (want.user_items.data <= 0).any()  # duplicates and negatives


def test_fold_in_with_sparks_item_factors_reproduces_sparks_user_factors(trained):
    als, ui = trained.snapshot.model.als, trained.snapshot.model.user_items
    assert als.regularization_scaling == foldin.POSITIVES
    users = np.asarray(als.user_factors)
    assert np.abs(users).max() > 0.05  # a real fit, not zeros
    y = np.asarray(als.item_factors, dtype=np.float64)
    plain_gram = foldin.gram(y, als.regularization)
    worst = worst_plain = 0.0
    for u in range(ui.shape[0]):
        row = ui.getrow(u)
        worst = max(worst, float(np.abs(als.fold_in(row.indices, row.data) - users[u]).max()))
        plain = foldin.fold_in(y, plain_gram, row.indices, row.data, als.alpha)
        worst_plain = max(worst_plain, float(np.abs(plain - users[u]).max()))
    assert worst < 1e-5
    assert worst_plain > 1e-3  # implicit's constant λ would not reproduce Spark's fit


def test_serve_loads_the_spark_snapshot_and_recommends(trained, kafka, tmp_path):
    serving = ServingProc(kafka.bootstrap, trained.config.topic, trained.bucket,
                          tmp_path / "serve")
    try:
        assert serving.wait_model() == trained.snapshot.version
        user = trained.snapshot.model.user_ids[0]
        body = serving.get(f"/users/{user}/recommendations?n=5").json()
        assert body["fallback"] is None and len(body["items"]) == 5
        assert body["model_version"] == trained.snapshot.version
    finally:
        serving.close()


def test_a_new_trainer_resumes_from_the_manifests_offsets(trained, kafka, engine, tmp_path):
    cfg, store = trained.config, trained.store
    more = _events(2_000, seed=27)
    _produce(kafka.bootstrap, cfg.topic, more)
    sink = KafkaSink(cfg.kafka)
    trainer = Trainer(cfg, KafkaSource(cfg.kafka, cfg.topic, cfg.group), sink, store,
                      workdir=tmp_path / "work", engine=engine)
    try:
        point = trainer.resume()
        assert point is not None and point.offsets == trained.snapshot.offsets
        assert len(trainer.window) == EVENTS
        snap = _train_until(trainer, store, tmp_path, EVENTS + len(more))
    finally:
        trainer.shutdown()
        sink.close()
    assert sum(snap.offsets.values()) == EVENTS + len(more)  # nothing twice, nothing lost
    assert snap.manifest.sizes["window"] == EVENTS + len(more)
    assert int(snap.version) == int(trained.snapshot.version) + 1


def test_a_trainer_killed_mid_fit_publishes_nothing(kafka, s3, tmp_path):
    topic = kafka.create_topic(f"spark-kill-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    _produce(kafka.bootstrap, topic, _events(20_000, seed=28))
    proc = TrainerProc(kafka.bootstrap, topic, s3, tmp_path / "trainer",
                       [*fit_args(100_000, 10**9, 1.0, iterations=200), "--training-engine",
                        "spark", "--spark-master", "local[1]", "--spark-driver-memory", "512m"])
    proc.start()
    try:
        wait_for(lambda: "spark session on local[1] started" in proc.log_text(), 180,
                 "the spark fit to start")
        time.sleep(2.0)  # 200 iterations: well inside the fit
        assert proc.running, proc.log_text()[-3000:]
        proc.kill()
    finally:
        proc.close()
    store = S3Store(s3.bucket, "", client=s3.client())
    assert store.latest() is None
    keys = [o["Key"] for page in s3.client().get_paginator("list_objects_v2").paginate(
        Bucket=s3.bucket) for o in page.get("Contents", [])]
    assert not [k for k in keys if k.endswith("manifest.json") or k.endswith("LATEST")], keys
