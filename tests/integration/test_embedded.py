"""`streamrec run` end to end: the demo, a restart on the same data dir, and the producers."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.embedded import ENV, Embedded, http, until

from streamrec.adapters.erasurekeys import erasure_hasher
from streamrec.adapters.kafka import KafkaSource
from streamrec.adapters.locallog import LocalLogSource
from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.stores import open_store
from streamrec.config import Config
from streamrec.core.events.codec import parse_event
from streamrec.core.snapshot.arrays import Snapshot
from streamrec.data import movielens

ROOT = Path(__file__).resolve().parents[2]


def _read_log(data_dir: Path, topic: str = "interactions") -> list[bytes]:
    """Every record of ``topic`` up to its high watermark, read as the trainer reads it."""
    source = LocalLogSource(data_dir / "log", topic)
    source.seek({0: 0})
    end = source.end_offsets()[0]
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got) < end and time.monotonic() < deadline:
        got += [m.value or b"" for m in source.poll(10_000, 0.5)]
    source.close()
    assert len(got) == end
    return got


def _latest_snapshot(data_dir: Path, dest: Path) -> Snapshot | None:
    store = open_store(str(data_dir / "snapshots"))
    version = store.latest()
    return None if version is None else read_snapshot(store.fetch(version, dest))


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Callable[..., Embedded]]:
    started: list[Embedded] = []

    def start(*extra: str) -> Embedded:
        e = Embedded(tmp_path / "data", *extra)
        started.append(e)
        return e

    yield start
    for e in started:
        e.cleanup()


def test_demo_prints_personalised_lists_the_fold_in_and_a_dislike(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "demo" / "run_demo.py"), "--once", "--bind", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "demo"), "--limit", "20000"],
        capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("fallback None, fresh events 0") == 3  # three personalised top-10s
    assert "fresh events 1" in out  # the new event was folded in
    # The catalogue filter: ten films, each a comedy (genres from POST /items).
    comedy = out.split("Comedy only", 1)[1].split("\n\n", 1)[0].splitlines()[1:]
    assert len(comedy) == 10 and all("Comedy" in line.rsplit("[", 1)[1] for line in comedy), comedy
    assert re.search(r"event-to-recommendation latency: [0-9.]+ ms", out)
    # One dislike (docs/feedback.md): the film leaves the list at once and the list changes.
    assert re.search(r"the film left the list \(changed\) after [0-9.]+ ms", out), out[-2000:]
    # Titles come from the API (fields=title): a film's line names it, never its bare id.
    assert all(re.search(r"\(\d{4}\)", line) for line in comedy), comedy
    # --once says what it did, and offers nothing to try against the server it stopped.
    assert re.search(r"done in [0-9.]+ s \(--once\): 1,682 films and 20,000 ratings sent, "
                     r"snapshot \d+ trained on them; user \S+'s list changed [0-9.]+ ms after "
                     r"a new rating, and '.+' left it [0-9.]+ ms after a dislike", out), out[-800:]
    assert "The server is stopped" in out and "curl " not in out


def test_restart_brings_back_the_model_and_the_log(embedded: Callable[..., Embedded]) -> None:
    # One fit, at the 300th event; none for the late events, which stay fold-in only.
    first = embedded("--retrain-every", "300", "--retrain-interval", "3600")
    events = [{"user": f"u{u}", "item": f"i{(u * 7 + k) % 40}"} for u in range(30)
              for k in range(10)]
    assert http("POST", f"{first.url}/interactions", events)["accepted"] == 300
    model = until("a snapshot of 300 events",
                   lambda: (m := http("GET", f"{first.url}/model")).get("offsets", {}).get(
                       "0", 0) >= 300 and m)
    # events after the snapshot: live in the log, served by fold-in only
    assert http("POST", f"{first.url}/interactions",
                 [{"user": "late", "item": "i1"}, {"user": "late", "item": "i2"}])["accepted"] == 2
    until("fold-in of the late user", lambda: http(
        "GET", f"{first.url}/users/late/recommendations").get("fresh_events") == 2)
    assert first.stop() == 0

    second = embedded()
    after = until("the model after restart", lambda: (m := http(
        "GET", f"{second.url}/model")).get("version") and m)
    assert int(after["version"]) >= int(model["version"])
    assert after["offsets"]["0"] >= 300
    recs = until("late user's events after restart", lambda: (r := http(
        "GET", f"{second.url}/users/late/items")).get("fresh_events", 0) + len(
        r.get("items", [])) >= 2 and r)
    assert {it["item"] for it in recs["items"] + recs["fresh"]} == {"i1", "i2"}
    until("the trainer catching up with the log", lambda: http(
        "GET", f"{second.url}/model").get("offsets", {}).get("0") == 302)
    assert http("GET", f"{second.url}/users/u3/recommendations")["fallback"] is None
    assert second.stop() == 0


def test_a_deleted_user_leaves_the_embedded_log_the_snapshots_and_a_restart(
        embedded: Callable[..., Embedded], tmp_path: Path) -> None:
    first = embedded()
    events = [{"user": f"u{u}", "item": f"i{(u * 7 + k) % 40}"} for u in range(20)
              for k in range(10)]
    assert http("POST", f"{first.url}/interactions", events)["accepted"] == 200
    until("a snapshot of 200 events", lambda: http("GET", f"{first.url}/model").get(
        "offsets", {}).get("0", 0) >= 200)
    gone = http("DELETE", f"{first.url}/users/u4")
    assert gone["erased"] == "user" and gone["redacted"] == 10, gone
    assert http("GET", f"{first.url}/users/u4/recommendations")["fallback"] == "popular"
    # The log keeps every offset but no longer holds u4's events (the erasure record stays).
    log = _read_log(first.data_dir)
    assert len(log) == 201
    assert not [v for v in log if b'"u4"' in v and b'"erase"' not in v]
    # The tombstone holds the id's keyed hash, under the key the store generated.
    hasher = erasure_hasher(None, open_store(str(first.data_dir / "snapshots")))
    u4 = hasher.digest("user", "u4")
    snap = until("a snapshot without u4", lambda: (s := _latest_snapshot(
        first.data_dir, tmp_path / "c1")) is not None and u4 in s.tombstones.users and s)
    assert "u4" not in list(snap.model.user_ids) and "u4" not in snap.window.user_ids
    assert len(open_store(str(first.data_dir / "snapshots")).versions()) == 1
    assert first.stop() == 0

    second = embedded()
    until("the model after restart", lambda: http("GET", f"{second.url}/model").get("version"))
    assert http("GET", f"{second.url}/users/u4/recommendations")["fallback"] == "popular"
    assert http("GET", f"{second.url}/users/u4/items")["status"] == 404
    assert http("GET", f"{second.url}/users/u5/recommendations")["fallback"] is None
    assert second.stop() == 0


def test_bad_input_to_the_embedded_endpoint_is_a_4xx(embedded: Callable[..., Embedded]) -> None:
    e = embedded()
    reply = http("POST", f"{e.url}/interactions", {"user": "", "item": "x"})
    assert 400 <= reply["status"] < 500 and "error" in reply
    assert e.stop() == 0


def test_replay_and_item_producers_write_to_kafka(kafka: Any) -> None:
    kafka.create_topic("replay-in")
    for cmd in (["replay", "--bootstrap", kafka.bootstrap, "--topic", "replay-in",
                 "--limit", "500"],
                ["items", "--bootstrap", kafka.bootstrap, "--items-topic", "items-demo"],
                ["users", "--bootstrap", kafka.bootstrap, "--items-topic", "items-demo",
                 "--topic", "replay-in", "--count", "20", "--rate", "0"]):
        proc = subprocess.run([sys.executable, str(ROOT / "demo" / "producers.py"), *cmd],
                              capture_output=True, text=True, timeout=120, env=ENV)
        assert proc.returncode == 0, proc.stderr[-2000:]
    source = KafkaSource(Config(bootstrap_servers=kafka.bootstrap).kafka, "replay-in")
    source.seek({})
    got: list[bytes] = []
    deadline = time.monotonic() + 60
    while len(got) < 520 and time.monotonic() < deadline:
        got += [m.value or b"" for m in source.poll(1000, 1.0)]
    source.close()
    assert len(got) == 520
    first = json.loads(got[0])
    assert set(first) == {"user", "item", "rating", "timestamp"}
    assert all(re.fullmatch(rb"user-\d+:\d+", v) for v in got[500:])


def test_every_acknowledged_event_survives_a_sigkill_and_the_window_matches_the_log(
        embedded: Callable[..., Embedded], tmp_path: Path) -> None:
    first = embedded()
    sent: Counter[tuple[str, str, float]] = Counter()
    for b in range(40):  # 40 acknowledged requests of 5 events, while the trainer fits
        batch = [{"user": f"u{(b * 5 + k) % 23}", "item": f"i{(b * 3 + k) % 31}",
                  "weight": float(1 + (b + k) % 3)} for k in range(5)]
        reply = http("POST", f"{first.url}/interactions", batch)
        assert reply["accepted"] == 5, reply
        sent.update((e["user"], e["item"], e["weight"]) for e in batch)
    assert first.kill() == -signal.SIGKILL  # no shutdown, no final flush: only the acks count

    def log_events() -> Counter[tuple[str, str, float]]:
        return Counter((e.user, e.item, e.weight)
                       for e in map(parse_event, _read_log(first.data_dir)))

    assert log_events() == sent  # readable right after the kill, before any recovery
    second = embedded()
    assert log_events() == sent  # and after the restart's tail recovery
    total = sum(sent.values())
    snap = until("a snapshot covering the whole log", lambda: (s := _latest_snapshot(
        second.data_dir, tmp_path / f"c{time.monotonic_ns()}")) is not None
        and s.offsets.get(0) == total and s)
    assert snap.manifest.window["total_appended"] == total
    assert Counter((e.user, e.item, e.weight) for e in snap.window.events()) == log_events()
    assert second.stop() == 0


def test_producers_write_through_the_embedded_endpoint(
        embedded: Callable[..., Embedded]) -> None:
    e = embedded()
    data = str(e.data_dir)
    for cmd in (["items", "--data-dir", data, "--items-topic", "items-demo"],
                ["replay", "--url", e.url, "--limit", "300", "--batch", "100"],
                ["users", "--url", e.url, "--data-dir", data, "--items-topic", "items-demo",
                 "--count", "20", "--rate", "0"]):
        proc = subprocess.run([sys.executable, str(ROOT / "demo" / "producers.py"), *cmd],
                              capture_output=True, text=True, timeout=120, env=ENV)
        assert proc.returncode == 0, proc.stderr[-2000:]
    ratings, titles = movielens.load()
    items = [json.loads(v) for v in _read_log(e.data_dir, "items-demo")]
    assert {it["item"]: it["title"] for it in items} == titles
    events = [parse_event(v) for v in _read_log(e.data_dir)]
    assert len(events) == 320
    assert [(ev.user, ev.item, ev.weight) for ev in events[:300]] == [
        (r.user, r.item, r.rating) for r in ratings[:300]]
    assert all(re.fullmatch(r"user-\d+", ev.user) and ev.item in titles for ev in events[300:])
    assert e.stop() == 0


def test_a_data_dir_or_bind_it_cannot_use_exits_2_naming_it_without_a_traceback(
    tmp_path: Path,
) -> None:
    (tmp_path / "a-file").write_text("")
    with socket.socket() as taken:  # a port that is already in use
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = [
            (["--data-dir", str(tmp_path / "a-file")],
             f"invalid data_dir: {tmp_path / 'a-file'} is not a directory"),
            (["--data-dir", str(tmp_path / "d"), "--bind", f"127.0.0.1:{port}"],
             f"invalid bind: cannot listen on 127.0.0.1:{port}: Address already in use"),
        ]
        for args, message in cases:
            proc = subprocess.run([sys.executable, "-m", "streamrec.cli", "run", *args],
                                  capture_output=True, text=True, env=ENV, timeout=120)
            assert proc.returncode == 2, proc.stderr
            assert message in proc.stderr
            assert "Traceback" not in proc.stderr


def test_a_retried_request_with_the_same_event_ids_counts_once(
        embedded: Callable[..., Embedded], tmp_path: Path) -> None:
    e = embedded()
    events = [{"user": f"u{u}", "item": f"i{(u * 7 + k) % 40}", "event_id": f"b-{u}-{k}"}
              for u in range(20) for k in range(10)]
    assert http("POST", f"{e.url}/interactions", events)["accepted"] == 200
    until("a snapshot of 200 events", lambda: http("GET", f"{e.url}/model").get(
        "offsets", {}).get("0", 0) >= 200)
    # The client retries the first request (already in the snapshot) and sends a new one
    # twice (after the snapshot: fold-in and the trainer both see it twice on the log).
    late = [{"user": "late", "item": "i1", "event_id": "late-1"},
            {"user": "late", "item": "i2", "event_id": "late-2", "type": "like"}]
    # A retry alone changes nothing to fit, so it starts no retrain (the policy counts new
    # events only): one more new event makes sure a snapshot covers the whole log.
    last = [{"user": "last", "item": "i3", "event_id": "last-1"}]
    for body in (events, late, late, last):
        assert http("POST", f"{e.url}/interactions", body)["accepted"] == len(body)
    most = 0  # fold-in, until the trainer has read the whole log: never the late events twice
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        most = max(most, http("GET", f"{e.url}/users/late/items").get("fresh_events", 0))
        if http("GET", f"{e.url}/model").get("offsets", {}).get("0") == 405:
            break
        time.sleep(0.1)
    assert most <= 2
    snap = until("a snapshot of the whole log", lambda: (s := _latest_snapshot(
        e.data_dir, tmp_path / f"c{time.monotonic_ns()}")) is not None
        and s.offsets.get(0) == 405 and s)
    assert len(snap.window) == 203 and snap.manifest.sizes["window"] == 203
    assert Counter(ev.user for ev in snap.window.events())["late"] == 2
    assert snap.event_ids == {x["event_id"] for x in events + late + last}
    # Served after the swap: each late event once in the model, none fresh on top.
    items = until("the late user in the model", lambda: (r := http(
        "GET", f"{e.url}/users/late/items")).get("items") and r)
    assert items["fresh_events"] == 0, items
    assert {i["item"]: i["weight"] for i in items["items"]} == {"i1": 1.0, "i2": 3.0}
    assert e.stop() == 0
