"""Issue 16, end to end: the 1e30 event through real Kafka into a running trainer and gunicorn.

Before the fix this one event made every later fit fail (NaN factors) until it slid out of the
window, and the user's recommendations answered 500. Now the trainer dead-letters it with its
reason, the next snapshot is published, the user still gets a list, and the metrics and
``GET /model`` say what happened. The trainer's S3 store carries the TRAINING report that
``/model`` shows.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import requests
from confluent_kafka import Producer
from tests.support.trainerproc import ServingProc, TrainerProc, fit_args, read_topic, wait_for


def test_the_1e30_event_is_dead_lettered_and_training_and_serving_go_on(
    kafka: Any, s3: Any, tmp_path: Path
) -> None:
    topic = kafka.create_topic(f"extreme-{uuid.uuid4().hex[:8]}", partitions=1)
    kafka.create_topic(f"{topic}.dlq", partitions=1)
    trainer = TrainerProc(kafka.bootstrap, topic, s3, tmp_path / "trainer",
                          fit_args(window=10_000, retrain_every=40, interval=1, iterations=3))
    serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving")
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5})

    def send(values: list[bytes]) -> None:
        for value in values:
            producer.produce(topic, value=value, key=b"k")
        assert producer.flush(30) == 0

    try:
        trainer.start()
        send([f"u{k % 8}:i{k % 60}".encode() for k in range(80)])
        first = serving.wait_model(180)
        # The event, straight into the topic (POST /interactions refuses it now), and
        # a timestamp in milliseconds; then enough ordinary events for the next retrain.
        poison = [b'{"user":"u1","item":"i5","weight":1e30}',
                  b'{"user":"u1","item":"i6","ts":1750000000000}']
        send(poison + [f"u{k % 8}:i{(k * 7) % 60}:2".encode() for k in range(80)])

        def newer() -> str | None:
            version = serving.version()
            return version if version > first else None

        second = wait_for(newer, 180, "a snapshot after the extreme event")
        r = serving.get("/users/u1/recommendations?n=5")
        assert r.status_code == 200, r.text
        assert len(r.json()["items"]) == 5 and r.json()["fallback"] is None

        metrics = trainer.metrics()
        assert metrics['streamrec_trainer_events_invalid_total{reason="bad_weight"}'] == 1
        assert metrics['streamrec_trainer_events_invalid_total{reason="bad_timestamp"}'] == 1
        assert trainer.metric("fit_failures_total") == 0
        dead = read_topic(kafka.bootstrap, f"{topic}.dlq", 1)
        reasons = sorted(dict(m.headers())["error"].split(b":")[0] for m in dead)
        assert reasons == [b"bad_timestamp", b"bad_weight"]

        def reported() -> dict[str, Any] | None:
            body = serving.get("/model").json()
            training = body["training"]
            return body if training.get("available") and training.get("version") >= second \
                else None

        model = wait_for(reported, 30, "/model to show the trainer's report")
        assert model["training"]["ok"] is True and model["training"]["failures_total"] == 0
        assert model["last_fit_error"] is None and model["age_seconds"] >= 0
        assert model["fit"]["confidence_cap"] == 1e7 and model["fit"]["recovered_from"] is None

        # The same event at the HTTP door is a 400 that names the domain, and nothing is produced.
        r = requests.post(f"{serving.base}/interactions", timeout=10,
                          json={"user": "u1", "item": "i5", "weight": 1e30})
        assert r.status_code == 400 and "1e6]" in r.json()["message"], r.text
        assert serving.running and trainer.running
    finally:
        serving.close()
        trainer.close()
