"""`streamrec serve` under real gunicorn (2 workers) on 127.0.0.1, against a real Kafka and a
real MinIO or a local store: loading, fold-in, metrics, hot reload under load, corrupt snapshots."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from confluent_kafka import Producer
from tests.support.serving import wait_for as _wait

from streamrec.adapters.s3store import S3Store
from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.core.events import Event
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _publish(tmp: Path, store: S3Store | LocalStore, version: str,
             corrupt: bool = False) -> None:
    """Fit the checker-board model and publish it; ``corrupt`` flips one byte of a factor
    file after the manifest was written (same size, wrong checksum) before publishing."""
    window = SlidingWindow(200)
    window.extend(Event(f"u{u}", f"i{i}", 1.0 + (u + i) % 3)
                  for u in range(12) for i in range(u % 2, 12, 2) if i != u)
    model = fit(window.build(), ALSParams(factors=4, iterations=10, num_threads=1))
    path = tmp / version
    write_snapshot(path, model, window.contents(), {0: 0}, version)
    if corrupt:
        npy = path / "als.item_factors.npy"
        data = bytearray(npy.read_bytes())
        data[-1] ^= 0xFF
        npy.write_bytes(bytes(data))
    store.publish(path, version)


@contextmanager
def _serve(tmp: Path, store_url: str, kafka,  # type: ignore[no-untyped-def]
           env_extra: dict[str, str]) -> Iterator[tuple[str, str]]:
    """`streamrec serve` (2 gthread workers) as a subprocess; yields (base URL, topic)."""
    topic = kafka.create_topic(f"serve-{uuid.uuid4().hex[:8]}")
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, **env_extra, "OPENBLAS_NUM_THREADS": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    cmd = [sys.executable, "-m", "streamrec.cli", "serve", "--bind", f"127.0.0.1:{port}",
           "--workers", "2", "--threads", "4", "--store", store_url,
           "--bootstrap-servers", kafka.bootstrap, "--topic", topic, "--notify-topic", "",
           "--reload-interval", "0.2", "--cache-dir", str(tmp / "cache")]
    log_path = tmp / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            ready = _wait(lambda: requests.get(f"{base}/readyz", timeout=2).status_code == 200,
                          90)
            assert ready, log_path.read_text()[-3000:]
            yield base, topic
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def _every_worker_serves(base: str, version: str) -> bool:
    """Several /model answers in a row name ``version`` (requests spread over the workers)."""
    return all(requests.get(f"{base}/model", timeout=5).json()["version"] == version
               for _ in range(8))


def _metric(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_serve_loads_from_s3_folds_in_kafka_events_and_exposes_metrics(kafka, s3, tmp_path):
    store = S3Store(s3.bucket, "rec", client=s3.client())
    _publish(tmp_path / "build", store, "000000000001")
    with _serve(tmp_path, f"s3://{s3.bucket}/rec", kafka, s3.env()) as (base, topic):
        before = requests.get(f"{base}/users/u0/recommendations?n=3", timeout=5).json()
        assert before["model_version"] == "000000000001" and before["fresh_events"] == 0
        known_before = requests.get(f"{base}/users/u0/items", timeout=5).json()
        assert known_before["fresh"] == []
        newbie = f"new-{uuid.uuid4().hex[:6]}"
        cold = requests.get(f"{base}/users/{newbie}/recommendations?n=3", timeout=5).json()
        assert cold["fallback"] == "popular"
        assert requests.get(f"{base}/users/{newbie}/items", timeout=5).status_code == 404

        # An existing user through the API (POST /interactions produces to Kafka) ...
        events = [{"user": "u0", "item": f"i{k}", "weight": 5} for k in (1, 3, 5, 7)]
        r = requests.post(f"{base}/interactions", json=events, timeout=10)
        assert r.status_code == 202, r.text
        # ... and a brand-new user straight from a Kafka producer, as an app would.
        producer = Producer({"bootstrap.servers": kafka.bootstrap})
        producer.produce(topic, json.dumps({"user": newbie, "item": "i2", "weight": 4}),
                         key=newbie)
        assert producer.flush(10) == 0
        del producer  # destroyed now, not after the broker is gone

        def folded_in_every_worker() -> bool:
            # Each worker has its own consumer: require several answers in a row to agree.
            answers = [(requests.get(f"{base}/users/u0/recommendations?n=3", timeout=5).json(),
                        requests.get(f"{base}/users/{newbie}/recommendations?n=3",
                                     timeout=5).json()) for _ in range(6)]
            return all(a["fresh_events"] == 4 and b["fresh_events"] == 1 for a, b in answers)

        assert _wait(folded_in_every_worker, 30), (tmp_path / "serve.log").read_text()[-3000:]
        after = requests.get(f"{base}/users/u0/recommendations?n=3", timeout=5).json()
        assert after["model_version"] == "000000000001"  # fold-in, not a retrain
        assert after["items"] != before["items"]
        assert not {"i1", "i3", "i5", "i7"} & {x["item"] for x in after["items"]}
        known = requests.get(f"{base}/users/u0/items", timeout=5).json()
        assert known["items"] == known_before["items"]  # the snapshot's window is unchanged
        assert {x["item"] for x in known["fresh"]} == {"i1", "i3", "i5", "i7"}

        warm = requests.get(f"{base}/users/{newbie}/recommendations?n=3", timeout=5).json()
        assert warm["fallback"] is None and warm["model_version"] == "000000000001"
        assert "i2" not in {x["item"] for x in warm["items"]}  # seen, so left out
        new_known = requests.get(f"{base}/users/{newbie}/items", timeout=5)
        assert new_known.status_code == 200
        assert new_known.json()["fresh"] == [{"item": "i2", "weight": 4.0}]
        assert requests.get(f"{base}/model", timeout=5).json()["version"] == "000000000001"

        def both_workers_counted() -> str | None:  # loaded once and kept 5 events, each
            text = requests.get(f"{base}/metrics", timeout=5).text
            loaded = _metric(text, 'streamrec_snapshot_reloads_total{result="loaded"}')
            kept = _metric(text, 'streamrec_foldin_events_total{result="kept"}')
            return text if (loaded, kept) == (2.0, 10.0) else None

        metrics = _wait(both_workers_counted, 30)
        assert metrics, requests.get(f"{base}/metrics", timeout=5).text
        assert _metric(metrics, 'streamrec_model_info{version="000000000001"}') == 1.0
        assert (_metric(metrics, "streamrec_snapshot_age_seconds") or -1) >= 0
        assert 'route="/users/<user>/recommendations"' in metrics and newbie not in metrics
        assert "streamrec_http_request_seconds_bucket{" in metrics
        assert requests.get(f"{base}/nope", timeout=5).json()["error"] == "not_found"


def test_three_hot_reloads_under_concurrent_load_then_a_corrupt_snapshot_is_refused(kafka,
                                                                                    tmp_path):
    store = LocalStore(tmp_path / "store")
    published = ["000000000001"]
    _publish(tmp_path / "build", store, published[0])
    with _serve(tmp_path, str(store.root), kafka, {}) as (base, _topic):
        answers: Counter[tuple[int, str | None]] = Counter()
        errors: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def hammer(k: int) -> None:
            session = requests.Session()
            while not stop.is_set():
                try:
                    r = session.get(f"{base}/users/u{k % 12}/recommendations?n=3", timeout=10)
                    answer = (r.status_code, r.json().get("model_version"))
                    with lock:
                        answers[answer] += 1
                except (requests.RequestException, ValueError) as e:
                    with lock:
                        errors.append(repr(e))

        def clients_saw(version: str) -> bool:
            with lock:
                return answers[(200, version)] > 0

        threads = [threading.Thread(target=hammer, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        try:
            for v in (2, 3, 4):
                version = f"{v:012d}"
                _publish(tmp_path / "build", store, version)
                published.append(version)
                assert _wait(lambda version=version: _every_worker_serves(base, version), 30)
                assert _wait(lambda version=version: clients_saw(version), 30)
            # However slow the machine, the load has to be several hundred requests.
            assert _wait(lambda: sum(answers.values()) >= 400, 60), answers
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        assert errors == []
        assert sum(answers.values()) >= 400, answers
        assert {status for status, _ in answers} == {200}, answers
        assert {version for _, version in answers} <= set(published)
        assert {"000000000002", "000000000003", "000000000004"} <= {v for _, v in answers}

        # A corrupt v5 behind LATEST: refused by every worker, counted; v4 keeps serving.
        _publish(tmp_path / "build", store, "000000000005", corrupt=True)
        assert store.latest() == "000000000005"

        def refused_by_both() -> bool:
            text = requests.get(f"{base}/metrics", timeout=5).text
            return _metric(text, 'streamrec_snapshot_reloads_total{result="refused"}') == 2.0

        assert _wait(refused_by_both, 30), (tmp_path / "serve.log").read_text()[-3000:]
        for _ in range(20):
            r = requests.get(f"{base}/users/u1/recommendations?n=3", timeout=5)
            assert r.status_code == 200 and r.json()["model_version"] == "000000000004"
        assert requests.get(f"{base}/readyz", timeout=5).json()["model_version"] == "000000000004"
        text = requests.get(f"{base}/metrics", timeout=5).text
        # Each worker loads each version at most once and ends on v4 (a worker may skip a
        # version that was replaced before its next poll); the counter agrees with the log.
        loads = re.findall(r" (\d+) INFO streamrec\.serving\.feeds\.reloader: "
                           r"serving snapshot (\d+)", (tmp_path / "serve.log").read_text())
        assert len(loads) == len(set(loads)), loads
        assert {pid for pid, _ in loads} == {pid for pid, v in loads if v == "000000000004"}
        assert _metric(text, 'streamrec_snapshot_reloads_total{result="loaded"}') == len(loads)
        assert _metric(text, 'streamrec_model_info{version="000000000004"}') == 1.0
        assert _metric(text, 'streamrec_model_info{version="000000000005"}') is None
        assert "refusing snapshot 000000000005" in (tmp_path / "serve.log").read_text()
