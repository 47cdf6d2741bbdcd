"""Delivery semantics of ``POST /interactions`` with the only Kafka broker stopped and started.

A 202 means every event of the request is in the log once. A 503 ``log_unavailable`` means the
producer gave up on the request's events for good: those that never reached the broker (all of
them, with the broker down before the request) are not written and never will be, so the retry
that a 503 invites writes each event exactly once. The 503 counts this request's events only.
The documented exception, measured here too: a broker that stalls with the request in it
writes what it had received although the request got its 503; a client that retries with the
same ``event_id``s then still has each event counted once, by the trainer and by fold-in.
With the broker down, ``serve`` logs the outage a bounded number of times, not once per
librdkafka reconnect attempt of each of its clients.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.support.serving import build_snapshot, version_name
from tests.support.trainerproc import (
    ServingProc,
    TrainerProc,
    fit_args,
    latest_snapshot,
    read_topic,
    wait_for,
)

from streamrec.adapters.s3store import S3Store

PARTITIONS = 2


def _post(serving: ServingProc, events: list[dict[str, Any]]) -> requests.Response:
    return serving.http.post(serving.base + "/interactions", json=events, timeout=30)


def _healthy(serving: ServingProc) -> bool:
    if not serving.running:
        raise AssertionError(f"serving exited:\n{serving.log_tail()}")
    return serving.get("/healthz", timeout=2).status_code == 200


def _written(bootstrap: str, topic: str) -> Counter[str]:
    """How many copies of each item the topic holds (every posted event has its own item)."""
    return Counter(json.loads(m.value())["item"] for m in read_topic(bootstrap, topic, PARTITIONS))


def _events(tag: str, n: int) -> list[dict[str, Any]]:
    return [{"user": f"u-{tag}", "item": f"{tag}-{k}"} for k in range(n)]


@pytest.mark.parametrize("broker", ["stopped while serving", "down when serve starts"])
def test_a_503_with_the_broker_down_writes_nothing_later_so_a_retry_lands_exactly_once(
        kafka: Any, s3: Any, tmp_path: Path, broker: str) -> None:
    topic = kafka.create_topic(f"dlv-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    batches = {"single": _events("single", 1), "pair": _events("pair", 2),
               "triple": _events("triple", 3)}
    serving = None
    try:
        if broker == "down when serve starts":
            kafka.stop()
        serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving")
        wait_for(lambda: _healthy(serving), 120, "serving to start")
        if kafka.running:
            assert _post(serving, _events("warm", 1)).status_code == 202
            kafka.stop()
        # Three requests at once (gthread workers share one producer): each 503 counts its own.
        with ThreadPoolExecutor(3) as pool:
            futures = {name: pool.submit(_post, serving, batch)
                       for name, batch in batches.items()}
            failed = {name: (f.result().status_code, f.result().json()["message"])
                      for name, f in futures.items()}
        unacknowledged = serving.metrics_text()
        kafka.start()
        # Long enough for anything the producer still held to be delivered after the restart.
        wait_for(lambda: _post(serving, _events("probe", 1)).status_code == 202, 120,
                 "ingest to work again")
        time.sleep(5)
        after_restart = _written(kafka.bootstrap, topic)
        retries = [_post(serving, batch).status_code for batch in batches.values()]
        final = _written(kafka.bootstrap, topic)
    finally:
        if not kafka.running:  # the broker is shared by the session's other tests
            kafka.start()
        if serving is not None:
            serving.close()
    posted = [e["item"] for batch in batches.values() for e in batch]
    print(f"\nFIGURES delivery ({broker}): 503s={failed} "
          f"copies_after_restart={sum(after_restart[i] for i in posted)} "
          f"copies_after_retry={sum(final[i] for i in posted)} of {len(posted)} events")
    for name, batch in batches.items():
        status, message = failed[name]
        assert status == 503  # this request's events, no others:
        assert message.startswith(f"{len(batch)} of {len(batch)} events"), message
    assert 'streamrec_ingest_events_total{result="unacknowledged"} 6.0' in unacknowledged
    assert all(after_restart[i] == 0 for i in posted)
    assert retries == [202] * len(batches)
    assert all(final[i] == 1 for i in posted)


def _lines(path: Path) -> list[str]:
    return path.read_text(errors="replace").splitlines()


def test_a_broker_outage_is_logged_a_bounded_number_of_times_by_serve(
        kafka: Any, s3: Any, tmp_path: Path) -> None:
    topic = kafka.create_topic(f"dlg-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    # A served model: its fold-in and catalogue consumers are the clients that retry most.
    S3Store(s3.bucket, "", client=s3.client()).publish(
        build_snapshot(tmp_path / "snap", version_name(1)), version_name(1))
    serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving")
    outage = 20.0
    try:
        serving.wait_model(120)
        assert _post(serving, _events("warm", 1)).status_code == 202
        time.sleep(2)
        before = len(_lines(serving.log))
        kafka.stop()
        stopped = time.monotonic()
        time.sleep(outage)
        # Under load serve's log can trail the outage by seconds: wait (bounded) for its first
        # word of it, and count lines over the time the broker was really down.
        wait_for(lambda: any(_says_outage(line) for line in _lines(serving.log)[before:]), 30,
                 "the outage to reach serve's log")
        outage = time.monotonic() - stopped
        during = _lines(serving.log)[before:]
        kafka.start()
        wait_for(lambda: _post(serving, _events("probe", 1)).status_code == 202, 120,
                 "ingest to work again")
    finally:
        if not kafka.running:
            kafka.start()
        serving.close()
    per_minute = len(during) * 60 / outage
    print(f"\nFIGURES broker-down log: {len(during)} lines in {outage:.0f} s "
          f"({per_minute:.0f}/min)")
    # The outage is said (librdkafka's connection failures reach the log) ...
    assert any(_says_outage(line) for line in during)
    # ... but once per kind and client, not once per reconnect attempt.
    assert len(during) <= 40, "\n".join(during[:60])


def _post_to_a_frozen_broker(serving: ServingProc, pid: int,
                             events: list[dict[str, Any]]) -> requests.Response:
    """Post ``events`` with the broker frozen (SIGSTOP), thaw it, wait until ingest works."""
    os.kill(pid, signal.SIGSTOP)
    try:
        r = _post(serving, events)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: _post(serving, _events("probe", 1)).status_code == 202, 120,
             "ingest to work again")
    return r


def test_a_broker_that_stalls_mid_request_may_still_write_the_events_of_its_503_once(
        kafka: Any, s3: Any, tmp_path: Path) -> None:
    """The documented exception: events on the wire when the broker stops answering are
    "possibly persisted". The broker is frozen (SIGSTOP) with a produce request in it, so the
    request gets a 503; thawed, the broker writes what it had received. Never twice: the
    idempotent producer's retries do not duplicate, and nothing is sent after the 503."""
    topic = kafka.create_topic(f"dls-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving")
    stalled = _events("stalled", 50)
    assert kafka.process.proc is not None
    pid = kafka.process.proc.pid
    try:
        wait_for(lambda: _healthy(serving), 120, "serving to start")
        assert _post(serving, _events("warm", 1)).status_code == 202
        r = _post_to_a_frozen_broker(serving, pid, stalled)
        time.sleep(5)
        copies = _written(kafka.bootstrap, topic)
    finally:
        os.kill(pid, signal.SIGCONT)
        serving.close()
    written = sum(copies[e["item"]] for e in stalled)
    print(f"\nFIGURES stalled broker: {r.status_code} {r.json().get('message')!r}; "
          f"{written} of {len(stalled)} events of the 503 are in the topic")
    assert r.status_code == 503
    assert all(copies[e["item"]] <= 1 for e in stalled)


def _items_of(serving: ServingProc, user: str) -> dict[str, float]:
    """What a replica counts for ``user``: the served model's weight plus fold-in's, per item."""
    body = serving.get(f"/users/{user}/items").json()
    out: Counter[str] = Counter()
    for entry in body.get("items", []) + body.get("fresh", []):
        out[entry["item"]] += entry["weight"]
    return dict(out)


def _foldin_duplicates(serving: ServingProc) -> float:
    prefix = 'streamrec_foldin_events_total{result="duplicate"} '
    return sum(float(line[len(prefix):]) for line in serving.metrics_text().splitlines()
               if line.startswith(prefix))


def test_a_stalled_broker_503_retried_with_the_same_event_ids_counts_each_event_once(
        kafka: Any, s3: Any, tmp_path: Path) -> None:
    """The stalled broker of the test above, and a client that retries its 503 with the same
    event ids (docs/reliability.md, "Delivery"). The topic may then hold two copies of each
    event; the replica's fold-in (the trainer stopped, so only fold-in sees them) and then the
    trainer, resumed from its snapshot, count each once."""
    topic = kafka.create_topic(f"dle-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    store = S3Store(s3.bucket, "", client=s3.client())
    trainer = TrainerProc(kafka.bootstrap, topic, s3, tmp_path / "trainer",
                          fit_args(window=10_000, retrain_every=10, interval=1, iterations=2))
    serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving")
    warm = [{"user": f"w{u}", "item": f"wi{(u + k) % 8}", "event_id": f"warm-{u}-{k}"}
            for u in range(10) for k in range(4)]
    stalled = [{**e, "event_id": f"req-1/{k}"} for k, e in enumerate(_events("stalled", 50))]
    assert kafka.process.proc is not None
    pid = kafka.process.proc.pid
    try:
        trainer.start()
        wait_for(lambda: _healthy(serving), 120, "serving to start")
        assert _post(serving, warm).status_code == 202
        serving.wait_model(180)
        assert trainer.terminate() == 0  # from here on only fold-in sees new events
        first = _post_to_a_frozen_broker(serving, pid, stalled)
        retry = _post(serving, stalled)  # the client's retry: the same events, the same ids
        time.sleep(5)
        copies = _written(kafka.bootstrap, topic)
        total = sum(copies.values())
        written = sum(copies[e["item"]] for e in stalled)
        # fold-in has read every copy once it has counted the extra ones as duplicates
        wait_for(lambda: _foldin_duplicates(serving) >= written - 50, 60,
                 "fold-in to read every copy")
        folded = _items_of(serving, "u-stalled")
        foldin_duplicates = _foldin_duplicates(serving)
        trainer.start()  # resumes from the warm snapshot and reads every copy
        snap = wait_for(lambda: (s := latest_snapshot(store, tmp_path / f"c{time.monotonic_ns()}"))
                        is not None and sum(s.offsets.values()) == total and s,
                        180, "a snapshot of the whole topic")
        duplicates = trainer.metric("duplicate_events_total")
        wait_for(lambda: serving.version() == snap.version, 60, "serving the new snapshot")
        served = _items_of(serving, "u-stalled")
        fresh_after = serving.get("/users/u-stalled/items").json()["fresh_events"]
    finally:
        os.kill(pid, signal.SIGCONT)
        serving.close()
        trainer.close()
    in_window = Counter(e.item for e in snap.window.events() if e.user == "u-stalled")
    print(f"\nFIGURES stalled broker, retried with event ids: {first.status_code} then "
          f"{retry.status_code}; {written} copies of {len(stalled)} events in the topic; "
          f"trainer duplicates {duplicates:.0f}; window copies {sum(in_window.values())}")
    assert first.status_code == 503 and retry.status_code == 202
    assert all(1 <= copies[e["item"]] <= 2 for e in stalled)
    expected = {e["item"]: 1.0 for e in stalled}
    assert folded == expected  # fold-in: once each, however many copies it read
    assert foldin_duplicates == written - 50
    assert in_window == Counter(expected)  # the trainer: once each
    assert duplicates == written - 50
    assert snap.event_ids >= {e["event_id"] for e in stalled + warm}
    assert served == expected and fresh_after == 0  # the model, and nothing fresh on top


def _says_outage(line: str) -> bool:
    return "Connection refused" in line or "brokers are down" in line
