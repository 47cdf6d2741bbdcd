"""`streamrec run` end to end: the demo, a restart on the same data dir, and the producers."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streamrec.adapters.kafka import KafkaSource
from streamrec.config import Config

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}


def _http(method: str, url: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return {"status": e.code, **json.loads(e.read() or b"{}")}


def _until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


class Embedded:
    def __init__(self, data_dir: Path) -> None:
        self.log = (data_dir.parent / f"{data_dir.name}.log").open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streamrec.cli", "run", "--data-dir", str(data_dir),
             "--bind", "127.0.0.1:0", "--retrain-interval", "1"],
            stdout=subprocess.PIPE, stderr=self.log, text=True, env=ENV)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        assert match, f"no listening line: {line!r}"
        self.url = match.group(1)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[Callable[[], Embedded]]:
    started: list[Embedded] = []

    def start() -> Embedded:
        e = Embedded(tmp_path / "data")
        started.append(e)
        return e

    yield start
    for e in started:
        if e.proc.poll() is None:
            e.proc.kill()
            e.proc.wait(30)


def test_demo_prints_personalised_lists_and_the_fold_in(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "demo" / "run_demo.py"), "--once", "--bind", "127.0.0.1:0",
         "--data-dir", str(tmp_path / "demo"), "--limit", "20000"],
        capture_output=True, text=True, timeout=300, env=ENV)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert out.count("fallback None, fresh events 0") == 3  # three personalised top-10s
    assert "fresh events 1" in out  # the new event was folded in
    assert re.search(r"event-to-recommendation latency: [0-9.]+ ms", out)
    assert "curl " in out


def test_restart_brings_back_the_model_and_the_log(embedded: Callable[[], Embedded]) -> None:
    first = embedded()
    events = [{"user": f"u{u}", "item": f"i{(u * 7 + k) % 40}"} for u in range(30)
              for k in range(10)]
    assert _http("POST", f"{first.url}/interactions", events)["accepted"] == 300
    model = _until("a snapshot of 300 events",
                   lambda: (m := _http("GET", f"{first.url}/model")).get("offsets", {}).get(
                       "0", 0) >= 300 and m)
    # events after the snapshot: live in the log, served by fold-in only
    assert _http("POST", f"{first.url}/interactions",
                 [{"user": "late", "item": "i1"}, {"user": "late", "item": "i2"}])["accepted"] == 2
    _until("fold-in of the late user", lambda: _http(
        "GET", f"{first.url}/users/late/recommendations").get("fresh_events") == 2)
    assert first.stop() == 0

    second = embedded()
    after = _until("the model after restart", lambda: (m := _http(
        "GET", f"{second.url}/model")).get("version") and m)
    assert int(after["version"]) >= int(model["version"])
    assert after["offsets"]["0"] >= 300
    recs = _until("late user's events after restart", lambda: (r := _http(
        "GET", f"{second.url}/users/late/items")).get("fresh_events", 0) + len(
        r.get("items", [])) >= 2 and r)
    assert {it["item"] for it in recs["items"] + recs["fresh"]} == {"i1", "i2"}
    _until("the trainer catching up with the log", lambda: _http(
        "GET", f"{second.url}/model").get("offsets", {}).get("0") == 302)
    assert _http("GET", f"{second.url}/users/u3/recommendations")["fallback"] is None
    assert second.stop() == 0


def test_bad_input_to_the_embedded_endpoint_is_a_4xx(embedded: Callable[[], Embedded]) -> None:
    e = embedded()
    reply = _http("POST", f"{e.url}/interactions", {"user": "", "item": "x"})
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
    source = KafkaSource(Config(bootstrap_servers=kafka.bootstrap), "replay-in")
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
