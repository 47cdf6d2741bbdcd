"""`streamrec serve` under gunicorn (2 workers) against a real Kafka and a real MinIO."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import requests

from streamrec.adapters.s3store import S3Store
from streamrec.core.events import Event
from streamrec.core.model import ALSParams, fit
from streamrec.core.snapshot import write_snapshot
from streamrec.core.window import SlidingWindow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _publish(tmp: Path, store: S3Store, version: str) -> None:
    window = SlidingWindow(200)
    window.extend(Event(f"u{u}", f"i{i}", 1.0 + (u + i) % 3)
                  for u in range(12) for i in range(u % 2, 12, 2) if i != u)
    model = fit(window.build(), ALSParams(factors=4, iterations=10, num_threads=1))
    path = tmp / version
    write_snapshot(path, model, window.contents(), {0: 0}, version)
    store.publish(path, version)


def _wait(check, seconds: float):  # type: ignore[no-untyped-def]
    """Poll ``check`` until it returns something truthy; the last value either way."""
    deadline = time.monotonic() + seconds
    value = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except requests.RequestException:
            value = None
        if value:
            return value
        time.sleep(0.1)
    return value


def test_serve_loads_from_s3_folds_in_posted_events_and_exposes_metrics(kafka, s3, tmp_path):
    topic = kafka.create_topic(f"serve-{uuid.uuid4().hex[:8]}")
    store = S3Store(s3.bucket, "rec", client=s3.client())
    _publish(tmp_path, store, "000000000001")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **s3.env(), "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "streamrec.cli", "serve", "--bind", f"127.0.0.1:{port}",
           "--workers", "2", "--threads", "2", "--store", f"s3://{s3.bucket}/rec",
           "--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--notify-topic", "",
           "--reload-interval", "0.5", "--cache-dir", str(tmp_path / "cache")]
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = _wait(lambda: requests.get(f"{base}/readyz", timeout=2).status_code == 200, 90)
        assert ready, (tmp_path / "serve.log").read_text()[-3000:]
        before = requests.get(f"{base}/users/u0/recommendations?n=3", timeout=5).json()
        assert before["model_version"] == "000000000001" and before["fresh_events"] == 0

        events = [{"user": "u0", "item": f"i{k}", "weight": 5} for k in (1, 3, 5, 7)]
        r = requests.post(f"{base}/interactions", json=events, timeout=10)
        assert r.status_code == 202, r.text

        def folded_in_every_worker() -> bool:
            # Each worker has its own consumer: require several answers in a row to agree.
            answers = [requests.get(f"{base}/users/u0/recommendations?n=3", timeout=5).json()
                       for _ in range(6)]
            return all(a["fresh_events"] == 4 for a in answers)

        assert _wait(folded_in_every_worker, 30), (tmp_path / "serve.log").read_text()[-3000:]
        after = requests.get(f"{base}/users/u0/recommendations?n=3", timeout=5).json()
        assert after["items"] != before["items"]
        assert not {"i1", "i3", "i5", "i7"} & {x["item"] for x in after["items"]}

        metrics = requests.get(f"{base}/metrics", timeout=5).text
        assert "streamrec_http_requests_total" in metrics
        assert 'streamrec_snapshot_reloads_total{result="loaded"} 2.0' in metrics  # both workers
        assert requests.get(f"{base}/nope", timeout=5).json()["error"] == "not_found"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()
