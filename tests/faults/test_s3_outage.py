"""S3 outage: MinIO stopped for 30 s while serving answers from S3-backed snapshots.

Serving keeps answering from the last good model (it is mapped from the local cache, so the
store is not on the request path); the trainer counts failed uploads, retries them with backoff
and keeps consuming; once MinIO is back a new snapshot is published and serving reloads it.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from tests.support.trainerproc import (
    Hammer,
    ServingProc,
    Stream,
    TrainerProc,
    fit_args,
    latest_snapshot,
    read_topic,
    wait_for,
)

from streamrec.adapters.s3store import S3Store
from streamrec.adapters.storebase import StoreUnavailable


def _down(store: S3Store) -> bool:
    try:
        store.latest()
    except StoreUnavailable:
        return True
    return False


def _publishes(trainer: TrainerProc) -> list[tuple[float, str]]:
    """(wall time, version) of every retrain the trainer logged."""
    out = []
    for line in trainer.log_text().splitlines():
        if '"event": "retrain"' in line:
            record = json.loads(line)
            out.append((float(record["ts"]), str(record["version"])))
    return out


def _run_outage(kafka: Any, s3: Any, minio: Any, tmp_path: Any, outage: float) -> None:
    topic = kafka.create_topic(f"s3o-{uuid.uuid4().hex[:8]}", partitions=1)
    store = S3Store(s3.bucket, "", client=s3.client())
    trainer = TrainerProc(kafka.bootstrap, topic, s3, tmp_path / "trainer",
                          fit_args(window=1_000_000, retrain_every=300, interval=1, iterations=3))
    serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving")
    stream = Stream(kafka.bootstrap, topic, rate=100, users=20)
    hammer = Hammer(serving, "/users/u1/recommendations?n=5")
    try:
        trainer.start()
        stream.start()
        before = serving.wait_model(180)
        hammer.start()
        wait_for(lambda: len(_publishes(trainer)) >= 2, 120, "a couple of publishes")
        failures_before = trainer.metric("upload_failures_total")
        consumed_before = trainer.metric("events_consumed_total")
        ok_at_down = hammer.ok
        minio.stop()
        down_at = time.time()
        assert _down(store)
        time.sleep(outage / 2)
        consumed_mid = trainer.metric("events_consumed_total")
        time.sleep(outage / 2)
        assert _down(store)
        failures = trainer.metric("upload_failures_total") - failures_before
        consumed_during = trainer.metric("events_consumed_total") - consumed_before
        served_during = hammer.ok - ok_at_down
        minio.start()
        up_at = time.time()
        # nothing can be published while MinIO is down: a publish after down_at came after
        after = wait_for(
            lambda: [v for ts, v in _publishes(trainer) if ts >= down_at],
            120,
            "a publish after MinIO is back",
        )[0]
        publish_after_s = next(ts for ts, v in _publishes(trainer) if v == after) - up_at
        wait_for(lambda: serving.version() >= after, 60, "serving to reload the new snapshot")
        reload_after_s = time.time() - up_at
        assert stream.stop() == 0 and stream.failed == 0
        total = stream.delivered
        snap = wait_for(
            lambda: (
                (s := latest_snapshot(store, tmp_path / "snap")) is not None
                and s.manifest.window["total_appended"] >= total
                and s
            ),
            120,
            "a snapshot with every event",
            every=1.0,
        )
        hammer.stop()
        assert trainer.running and serving.running and trainer.starts == 1
    finally:
        if not minio.process.running:
            minio.start()
        hammer.stop()
        stream.stop(5)
        serving.close()
        trainer.close()
    assert failures >= 3  # retried with backoff through the outage, never gave up
    assert consumed_mid > consumed_before and consumed_during > 0  # kept consuming
    assert after > before
    assert hammer.ok > 0 and hammer.errors == {}
    messages = read_topic(kafka.bootstrap, topic, 1)
    assert Counter((e.user, e.item) for e in snap.window.events()) == Counter(
        tuple(m.value().decode().split(":")) for m in messages
    )
    print(
        f"\nFIGURES s3: outage_s={up_at - down_at:.1f} requests={hammer.ok} "
        f"requests_during_outage={served_during} request_errors={hammer.errors} "
        f"upload_failures={failures:.0f} consumed_during_outage={consumed_during:.0f} "
        f"publish_after_restart_s={publish_after_s:.1f} serving_reload_after_s="
        f"{reload_after_s:.1f} versions={before}->{after} served_versions={len(hammer.versions)}"
    )


def test_minio_down_30s_serving_answers_trainer_retries_and_publishes_after(
    kafka, s3, minio, tmp_path
):
    _run_outage(kafka, s3, minio, tmp_path, outage=30)


@pytest.mark.slow
def test_minio_down_90s_serving_answers_trainer_retries_and_publishes_after(
    kafka, s3, minio, tmp_path
):
    _run_outage(kafka, s3, minio, tmp_path, outage=90)
