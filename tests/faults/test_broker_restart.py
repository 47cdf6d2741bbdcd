"""Broker restart: the only Kafka broker is stopped for 15 s mid-stream, then started again.

The trainer process and serving's fold-in consumer must reconnect by themselves (librdkafka
retries), lose nothing (the final window is every produced event), and serving must keep
answering from its loaded model the whole time.
"""

from __future__ import annotations

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

PARTITIONS = 2


def _run_restart(kafka: Any, s3: Any, tmp_path: Any, outage: float, around: float) -> None:
    topic = kafka.create_topic(f"brk-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    store = S3Store(s3.bucket, "", client=s3.client())
    trainer = TrainerProc(kafka.bootstrap, topic, s3, tmp_path / "trainer",
                          fit_args(window=1_000_000, retrain_every=500, interval=2, iterations=3))
    serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving")
    stream = Stream(kafka.bootstrap, topic, rate=100, users=20)
    hammer = Hammer(serving, "/users/u1/recommendations?n=5")
    try:
        trainer.start()
        stream.start()
        serving.wait_model(180)
        hammer.start()
        time.sleep(around)
        consumed_before = trainer.metric("events_consumed_total")
        down = time.monotonic()
        kafka.stop()
        stopped = time.monotonic()
        time.sleep(outage)
        restart = time.monotonic()
        kafka.start()
        up = time.monotonic()
        # fold-in: serving's consumer reads again (events produced after the restart)
        read_at_up = serving.foldin_read()
        try:
            wait_for(
                lambda: serving.foldin_read() > read_at_up,
                120,
                "fold-in to read events produced after the restart",
                every=0.05,
            )
        except AssertionError as e:  # what serve said: its consumer's and reloader's view
            raise AssertionError(f"{e}\nserve's log:\n{serving.log_tail(12000)}") from None
        foldin_recovery = time.monotonic() - up
        sent_at_up = stream.sent
        wait_for(
            lambda: (
                trainer.metric("events_consumed_total") - consumed_before
                >= sent_at_up - consumed_before
            ),
            120,
            "the trainer to consume what was produced up to the restart",
            every=0.1,
        )
        trainer_recovery = time.monotonic() - up
        time.sleep(around)
        assert stream.stop() == 0 and stream.failed == 0
        total = stream.delivered
        messages = read_topic(kafka.bootstrap, topic, PARTITIONS)
        assert len(messages) == total

        def complete() -> Any:
            snap = latest_snapshot(store, tmp_path / "snap")
            return (
                snap
                if snap is not None and snap.manifest.window["total_appended"] >= total
                else None
            )

        snap = wait_for(complete, 180, "a snapshot with every produced event", every=1.0)
        hammer.stop()
        assert trainer.running and serving.running
        assert trainer.starts == 1
    finally:
        if not kafka.running:  # the broker is shared by the session's other tests
            kafka.start()
        hammer.stop()
        stream.stop(5)
        serving.close()
        trainer.close()
    truth = Counter(tuple(m.value().decode().split(":")) for m in messages)
    got = Counter((e.user, e.item) for e in snap.window.events())
    assert got == truth
    assert snap.manifest.window["total_appended"] == total
    assert hammer.ok > 0 and hammer.errors == {}
    print(
        f"\nFIGURES broker: outage_s={up - down:.1f} (shutdown {stopped - down:.1f}s, "
        f"down {outage:.0f}s, start {up - restart:.1f}s) "
        f"foldin_recovery_s={foldin_recovery:.1f} trainer_recovery_s={trainer_recovery:.1f} "
        f"events={total} lost=0 requests={hammer.ok} request_errors={hammer.errors}"
    )


def test_broker_stopped_for_15s_mid_stream_loses_nothing_and_serving_keeps_answering(
    kafka, s3, tmp_path
):
    _run_restart(kafka, s3, tmp_path, outage=15, around=5)


@pytest.mark.slow
def test_broker_stopped_for_15s_with_longer_stream_before_and_after(kafka, s3, tmp_path):
    _run_restart(kafka, s3, tmp_path, outage=15, around=30)
