"""Event fuzzing: hostile messages mixed with valid ones, through the real broker.

A real trainer process consumes the topic and publishes to MinIO; a real serving replica
folds the same topic in and answers requests all along. Every message sent must end up in
exactly one place (the window, the dead-letter topic with an ``error`` header, or the
filtered count), and neither process may fall over.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Producer
from tests.support.trainerproc import (
    Hammer,
    ServingProc,
    TrainerProc,
    fit_args,
    latest_snapshot,
    read_topic,
    wait_for,
)

from streamrec.adapters.s3store import S3Store
from streamrec.core.events import InvalidEvent, parse_event

MIN_WEIGHT = 0.5
BIG = 10 * 1024 * 1024  # "~10 MB" values
MAX_MESSAGE = 16 * 1024 * 1024  # topic and producer limit, above BIG plus batch overhead
PARTITIONS = 2


@dataclass(frozen=True)
class Sent:
    value: bytes | None
    kind: str  # the generator's category, for the report and for sanity checks


def _valid(rng: random.Random) -> tuple[bytes, str]:
    u, i = f"u{rng.randrange(300)}", f"i{rng.randrange(500)}"
    choice = rng.randrange(4)
    if choice == 0:
        return f"{u}:{i}".encode(), "valid_text"
    if choice == 1:
        return f"{u}:{i}:{rng.choice([1, 2.5, 3, 0.75])}".encode(), "valid_text"
    if choice == 2:
        return json.dumps(
            {"user": u, "item": i, "weight": rng.randint(1, 5)}
        ).encode(), "valid_json"
    return json.dumps(
        {"user": rng.randrange(300), "item": i, "rating": 4, "ts": 1.7e9 + rng.random()}
    ).encode(), "valid_json"


def _mutate(rng: random.Random, value: bytes) -> bytes:
    data = bytearray(value)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(3)
        pos = rng.randrange(len(data) + 1)
        if op == 0 and data:
            data[min(pos, len(data) - 1)] = rng.randrange(256)
        elif op == 1:
            data.insert(pos, rng.choice(b':{}"\\,\x00\xff\n 0.-eE'))
        elif data:
            del data[min(pos, len(data) - 1)]
    return bytes(data)


def _weird(rng: random.Random) -> tuple[bytes | None, str]:
    u, i = f"u{rng.randrange(300)}", f"i{rng.randrange(500)}"
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 200)), "random_bytes"
    if kind == 1:
        return _mutate(rng, _valid(rng)[0]), "mutated"
    if kind == 2:
        size = rng.choice([257, 1000, 60_000, 70_000])
        return f"{'x' * size}:{i}".encode(), "huge_id"
    if kind == 3:
        bad = rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
        return u.encode() + bad + f":{i}".encode(), "invalid_utf8"
    if kind == 4:
        w = rng.choice(["nan", "NaN", "inf", "-inf", "-1", "0", "-0.0", "1e400"])
        return f"{u}:{i}:{w}".encode(), "bad_weight_text"
    if kind == 5:
        w = rng.choice(["NaN", "Infinity", "-Infinity", "-3", "0", "1e999", '"heavy"', "null"])
        return f'{{"user": "{u}", "item": "{i}", "weight": {w}}}'.encode(), "bad_weight_json"
    if kind == 6:
        return f"{u}:{i}:{rng.choice([0.1, 0.25, 0.49])}".encode(), "low_weight"
    if kind == 7:
        return rng.choice(
            [None, b"", b"   ", b"\n", b"{}", b"[]", b"null", b"::", b"u:"]
        ), "empty_or_shape"
    return f"{u}\x01:{i}".encode(), "control_char"


def _messages(n: int, big: int, seed: int) -> Iterator[Sent]:
    rng = random.Random(seed)
    big_at = set(rng.sample(range(n), big))
    for k in range(n):
        if k in big_at:
            yield Sent(b'{"user": "u1", "item": "i1", "pad": "' + b"p" * BIG + b'"}', "big")
        elif rng.random() < 0.5:
            yield Sent(*_valid(rng))
        else:
            yield Sent(*_weird(rng))


def _expect(value: bytes | None) -> str:
    """Where the reference single-message codec says ``value`` belongs."""
    try:
        event = parse_event(value, "auto", default_ts=time.time())
    except InvalidEvent:
        return "dead"
    # min_weight drops weak positive events only: negative feedback always reaches the window
    # (core/events/batch.py, docs/feedback.md).
    return "filtered" if 0.0 < event.weight < MIN_WEIGHT else "window"


def _pair(value: bytes | None) -> tuple[str, str]:
    event = parse_event(value, "auto", default_ts=time.time())
    return event.user, event.item


def _run_fuzz(kafka: Any, s3: Any, tmp_path: Any, n: int, big: int, seed: int) -> None:
    topic = kafka.create_topic(
        f"fuzz-{uuid.uuid4().hex[:8]}",
        partitions=PARTITIONS,
        **{"max.message.bytes": str(MAX_MESSAGE)},
    )
    kafka.create_topic(f"{topic}.dlq", partitions=1, **{"max.message.bytes": str(MAX_MESSAGE)})
    store = S3Store(s3.bucket, "", client=s3.client())
    trainer = TrainerProc(
        kafka.bootstrap,
        topic,
        s3,
        tmp_path / "trainer",
        [
            *fit_args(window=2 * n, retrain_every=10**9, interval=2,
                     iterations=2),
            "--min-weight",
            str(MIN_WEIGHT),
        ],
    )
    serving = ServingProc(
        kafka.bootstrap, topic, s3, tmp_path / "serving", ["--min-weight", str(MIN_WEIGHT)]
    )
    producer = Producer(
        {"bootstrap.servers": kafka.bootstrap, "message.max.bytes": MAX_MESSAGE, "linger.ms": 20}
    )
    failures: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            failures.append(str(err))

    def produce(values: list[bytes | None], key: int) -> None:
        for k, v in enumerate(values):
            while True:
                try:
                    producer.produce(
                        topic, value=v, key=str((key + k) % 13).encode(), on_delivery=delivered
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)

    sent: list[Sent] = [Sent(f"u1:i{k}".encode(), "valid_text") for k in range(50)]
    hammer = Hammer(serving, "/users/u1/recommendations?n=5")
    started = time.monotonic()
    try:
        trainer.start()
        produce([s.value for s in sent], 0)  # a first model for serving to load
        assert producer.flush(60) == 0
        serving.wait_model(180)
        hammer.start()
        fuzz = list(_messages(n, big, seed))
        produce([s.value for s in fuzz], 1)
        assert producer.flush(120) == 0
        sent += fuzz
        # probes after everything else on every partition: fold-in must get past the fuzz
        probes = [f"probe:after-fuzz-{p}".encode() for p in range(PARTITIONS)]
        for p, v in enumerate(probes):
            producer.produce(topic, value=v, partition=p, on_delivery=delivered)
            sent.append(Sent(v, "valid_text"))
        assert producer.flush(30) == 0 and failures == []
        produced_s = time.monotonic() - started

        expected = Counter(_expect(s.value) for s in sent)
        for s in sent:  # the generator's clear-cut categories are what the codec says
            if s.kind in ("big", "invalid_utf8", "bad_weight_text", "huge_id", "control_char"):
                assert _expect(s.value) == "dead", (s.kind, (s.value or b"")[:80])
            elif s.kind.startswith("valid"):
                assert _expect(s.value) == "window", (s.kind, s.value)

        def folded() -> bool:
            got = serving.get("/users/probe/items").json()
            seen = {x["item"] for x in got.get("fresh", []) + got.get("items", [])}
            return {f"after-fuzz-{p}" for p in range(PARTITIONS)} <= seen

        wait_for(folded, 240, "serving's fold-in to reach the probes", every=0.1)
        consumed = wait_for(
            lambda: trainer.metric("events_consumed_total") >= len(sent) and trainer.metrics(),
            300,
            "the trainer to consume everything",
        )

        def complete() -> Any:
            snap = latest_snapshot(store, tmp_path / "snap")
            return (
                snap
                if snap is not None and snap.manifest.window["total_appended"] == expected["window"]
                else None
            )

        snap = wait_for(complete, 240, "a snapshot with every valid event", every=1.0)
        elapsed = time.monotonic() - started
        hammer.stop()
        assert trainer.running and serving.running, "a process fell over"
        assert trainer.starts == 1 and '"level": "error"' not in trainer.log_text()
    finally:
        hammer.stop()
        serving.close()
        trainer.close()

    invalid = sum(
        v for k, v in consumed.items() if k.startswith("streamrec_trainer_events_invalid_total{")
    )
    accepted = consumed["streamrec_trainer_events_accepted_total"]
    filtered = consumed["streamrec_trainer_events_filtered_total"]
    assert consumed["streamrec_trainer_events_consumed_total"] == len(sent)
    assert invalid + accepted + filtered == len(sent)
    assert (accepted, invalid, filtered) == (
        expected["window"],
        expected["dead"],
        expected["filtered"],
    )

    window = Counter((e.user, e.item) for e in snap.window.events())
    truth = Counter(_pair(s.value) for s in sent if _expect(s.value) == "window")
    assert window == truth

    dead = read_topic(kafka.bootstrap, f"{topic}.dlq", 1, timeout=120)
    assert len(dead) == expected["dead"]
    assert Counter(d.value() or b"" for d in dead) == Counter(
        s.value or b"" for s in sent if _expect(s.value) == "dead"
    )
    for d in dead:
        headers = dict(d.headers() or [])
        assert headers["error"] and headers["source-offset"], headers
    assert hammer.ok > 0 and hammer.errors == {}
    print(
        f"\nFIGURES fuzz: sent={len(sent)} window={accepted:.0f} dlq={len(dead)} "
        f"filtered={filtered:.0f} big={big} produce_s={produced_s:.1f} "
        f"total_s={elapsed:.1f} requests={hammer.ok} request_errors={hammer.errors} "
        f"kinds={dict(Counter(s.kind for s in sent))}"
    )


def test_fuzzed_events_each_land_in_window_dlq_or_filtered_and_nothing_falls_over(
    kafka, s3, tmp_path
):
    _run_fuzz(kafka, s3, tmp_path, n=20_000, big=2, seed=9)


@pytest.mark.slow
def test_fuzzed_events_full_100k_with_five_10mb_values(kafka, s3, tmp_path):
    _run_fuzz(kafka, s3, tmp_path, n=100_000, big=5, seed=99)
