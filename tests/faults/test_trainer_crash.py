"""Trainer crashes: SIGKILL at seeded random moments during a steady stream, restart each time.

Whatever the moment (starting up, resuming, consuming, fitting, uploading, moving LATEST), the
restarted trainer resumes from the newest snapshot's offsets, so the final window must equal
the topic read directly: no event lost, none counted twice.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from typing import Any

import pytest
from tests.support.trainerproc import (
    Stream,
    TrainerProc,
    fit_args,
    latest_snapshot,
    read_topic,
    wait_for,
)

from streamrec.adapters.s3store import S3Store

PARTITIONS = 2


def _run_crashes(kafka: Any, s3: Any, tmp_path: Any, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    topic = kafka.create_topic(f"crash-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    store = S3Store(s3.bucket, "", client=s3.client())
    trainer = TrainerProc(kafka.bootstrap, topic, s3, tmp_path / "trainer",
                          fit_args(window=1_000_000, retrain_every=300, interval=1, iterations=5))
    stream = Stream(kafka.bootstrap, topic, rate=300, users=37)
    moments: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        stream.start()
        for _ in range(kills):
            trainer.start()
            delay = rng.uniform(1.0, 9.0)  # from exec: start-up, resume, consume, fit, upload
            time.sleep(delay)
            fitting = any(trainer.tmp.glob("streamrec-trainer-*/fit-*"))
            consumed = trainer.metric("events_consumed_total")
            assert trainer.running, trainer.log_text()[-3000:]
            trainer.kill()
            moments.append(
                {
                    "after_s": round(delay, 2),
                    "consumed": consumed,
                    "fitting": fitting,
                    "latest": store.latest(),
                }
            )
        assert stream.alive, "every kill must happen while events still arrive"
        trainer.start()
        time.sleep(2)
        assert stream.stop() == 0 and stream.failed == 0
        total = stream.delivered
        truth_messages = read_topic(kafka.bootstrap, topic, PARTITIONS)
        assert len(truth_messages) == total

        def complete() -> Any:
            snap = latest_snapshot(store, tmp_path / "snap")
            return (
                snap
                if snap is not None and snap.manifest.window["total_appended"] >= total
                else None
            )

        snap = wait_for(complete, 300, "a snapshot covering every event", every=1.0)
        assert trainer.terminate(60) == 0
    finally:
        stream.stop(5)
        trainer.close()
    elapsed = time.monotonic() - started
    got = Counter((e.user, e.item) for e in snap.window.events())
    truth = Counter(tuple(m.value().decode().split(":")) for m in truth_messages)
    lost, duplicated = truth - got, got - truth
    assert (sum(lost.values()), sum(duplicated.values())) == (0, 0)
    assert got == truth
    assert snap.manifest.window["total_appended"] == total
    assert sum(snap.offsets.values()) == total
    assert trainer.starts == kills + 1
    print(
        f"\nFIGURES crash: kills={kills} events={total} lost=0 duplicated=0 "
        f"kills_during_fit={sum(m['fitting'] for m in moments)} "
        f"final_version={snap.version} total_s={elapsed:.1f} moments={moments}"
    )


def test_sigkill_at_random_moments_then_restart_loses_and_duplicates_nothing(kafka, s3, tmp_path):
    _run_crashes(kafka, s3, tmp_path, kills=5, seed=4)


@pytest.mark.slow
def test_sigkill_at_twenty_random_moments_loses_and_duplicates_nothing(kafka, s3, tmp_path):
    _run_crashes(kafka, s3, tmp_path, kills=20, seed=20)
