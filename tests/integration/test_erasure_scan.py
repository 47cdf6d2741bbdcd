"""Issue 23: an erasure leaves nothing behind, checked byte by byte.

After ``DELETE /users/{u}`` and ``DELETE /items/{i}`` are answered, within the documented bound
(one snapshot interval plus one reload interval; docs/feedback.md, "Forgetting") no file that
streamrec wrote holds either id, in UTF-8 or in a JSON escape: not the store (a data dir, or
every object of the MinIO bucket), not a replica's snapshot cache, not the embedded log with
its items and dead-letter topics, not the trainer's scratch space, not the online evaluation's
files. Under ``streamrec run``, and under ``streamrec serve`` with two gunicorn workers, a
trainer, real Kafka and MinIO. The ids hold a non-ASCII letter and a ``/``, so their JSON
escapes differ from their UTF-8 bytes. The scan first finds the ids before the erasure, so it
can fail.

Kafka topics are not files streamrec writes: the events clients sent stay until retention
(documented); what streamrec itself writes there for the erasure holds only the keyed hash.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import requests
from confluent_kafka import Producer
from tests.support.embedded import Embedded, http, until
from tests.support.trainerproc import ServingProc, TrainerProc, fit_args, read_topic, wait_for


def forms(ident: str) -> list[bytes]:
    """The id as UTF-8 and as the usual JSON escapes (\\u00fc in either case, \\/)."""
    escaped = json.dumps(ident)[1:-1]
    upper = escaped.replace("\\u00fc", "\\u00FC").replace("\\u00eb", "\\u00EB")
    return sorted({ident.encode(), escaped.encode(), upper.encode(),
                   escaped.replace("/", "\\/").encode(),
                   json.dumps(ident, ensure_ascii=False)[1:-1].encode()})


def holders(files: Iterable[tuple[str, bytes]], ids: Iterable[str]) -> list[tuple[str, str]]:
    """(name, id) for every file whose bytes hold an id in one of its forms."""
    wanted = [(ident, form) for ident in ids for form in forms(ident)]
    return sorted({(name, ident) for name, data in files for ident, form in wanted
                   if form in data})


def disk(roots: Iterable[Path], skip: set[Path]) -> list[tuple[str, bytes]]:
    """Every regular file below ``roots`` with its bytes. ``os.walk`` skips a directory removed
    while it walks (a snapshot's temporary dir renamed into place); ``rglob`` raised."""
    out = []
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if path.is_symlink() or path in skip or not path.is_file():
                    continue
                try:
                    out.append((str(path), path.read_bytes()))
                except FileNotFoundError:  # removed while we walked: nothing left to hold
                    continue
    return out


def bucket(s3: Any) -> list[tuple[str, bytes]]:
    client = s3.client()
    out = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
        for obj in page.get("Contents", ()):
            try:
                body = client.get_object(Bucket=s3.bucket, Key=obj["Key"])["Body"].read()
            except client.exceptions.NoSuchKey:
                continue
            out.append((f"s3://{s3.bucket}/{obj['Key']}", body))
    return out


def ids() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"gdpr/üser-{tag}", f"sku-ëraseme-{tag}"


def test_under_streamrec_run_no_file_holds_an_erased_user_or_item(tmp_path: Path) -> None:
    user, item = ids()
    data = tmp_path / "data"
    run = Embedded(data, "--retrain-every", "50")
    try:
        events = [{"user": f"u{u}", "item": f"i{(u * 7 + k) % 30}"} for u in range(20)
                  for k in range(8)]
        events += [{"user": user, "item": f"i{k}"} for k in range(6)]
        events += [{"user": f"u{u}", "item": item, "type": "purchase"} for u in range(5)]
        events += [{"user": user, "item": item}]
        assert http("POST", f"{run.url}/interactions", events)["accepted"] == len(events)
        put = http("PUT", f"{run.url}/items/{quote(item, safe='')}",
                   {"item": item, "title": f"about {user}", "categories": ["c"]})
        assert put.get("status") is None, put
        q = quote(user, safe="")
        until("a snapshot that knows the user", lambda: http(
            "GET", f"{run.url}/recommendations?user={q}").get("fallback", "x") is None, 120)
        rec = http("GET", f"{run.url}/recommendations?user={q}&n=3")
        click = {"user": user, "item": rec["items"][0]["item"],
                 "recommendation_id": rec["recommendation_id"]}
        assert http("POST", f"{run.url}/interactions", click)["accepted"] == 1
        # The fold-in knows the user before a snapshot does: wait until the snapshot, the
        # cache and the log all hold both ids, so the scan is shown to find them.
        def spread() -> bool:
            found = holders(disk([data], set()), [user, item])
            return all({i for name, i in found if part in name} == {user, item}
                       for part in ("/cache/", "/snapshots/", "/log/"))

        until("both ids in the snapshot, the cache and the log", spread, 120)

        started = time.monotonic()
        assert http("DELETE", f"{run.url}/users/{q}")["erased"] == "user"
        assert http("DELETE", f"{run.url}/items/{quote(item, safe='')}")["erased"] == "item"
        left: list[tuple[str, str]] = []

        def clean() -> bool:
            left[:] = holders(disk([data], set()), [user, item])
            return not left

        try:
            until("no file holding either id", clean, 60)
        except AssertionError:
            log = (data.parent / f"{data.name}.log").read_text(errors="replace")[-3000:]
            raise AssertionError(f"60 s after the DELETEs these still hold an id: {left}; "
                                 f"the service's log ends:\n{log}") from None
        elapsed = time.monotonic() - started
        # The bound: one snapshot interval (an erasure retrains at once: a small fit and a
        # copy) plus one reload interval (1 s); generous for a loaded shared machine.
        assert elapsed < 30, elapsed
        assert http("GET", f"{run.url}/recommendations?user={q}")["fallback"] == "popular"
        assert run.stop() == 0
        assert holders(disk([data], set()), [user, item]) == []  # shutdown wrote none back
        print(f"erasure scan (run): clean {elapsed:.1f} s after the DELETEs")
    finally:
        run.cleanup()


def test_under_serve_with_two_workers_no_file_or_object_holds_an_erased_id(
        kafka: Any, s3: Any, tmp_path: Path) -> None:
    user, item = ids()
    topic = kafka.create_topic(f"scan-{uuid.uuid4().hex[:8]}", partitions=2)
    kafka.create_topic(f"{topic}.dlq", partitions=1)
    trainer = TrainerProc(kafka.bootstrap, topic, s3, tmp_path / "trainer",
                          [*fit_args(window=10_000, retrain_every=40, interval=1,
                                     iterations=3), "--keep", "3"])
    serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving", ["--workers", "2"])
    skip = {trainer.log, serving.log}  # the harness's captures of stdout, not streamrec's files
    # In a list, so the producer's threads can end before the session's broker does.
    producers = [Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5})]

    def send(records: list[dict[str, Any]]) -> None:
        for r in records:
            producers[0].produce(topic, json.dumps(r).encode(), key=str(r["user"]).encode())
        assert producers[0].flush(30) == 0

    def scan() -> list[tuple[str, str]]:
        files = disk([tmp_path / "trainer", tmp_path / "serving"], skip) + bucket(s3)
        return holders(files, [user, item])

    try:
        trainer.start()
        send([{"user": f"u{k % 8}", "item": f"i{k % 30}"} for k in range(80)]
             + [{"user": user, "item": f"i{k}"} for k in range(5)]
             + [{"user": f"u{k}", "item": item} for k in range(4)]
             + [{"user": user, "item": item, "type": "bogus"}])  # a dead letter, in Kafka
        serving.wait_model(180)
        q = quote(user, safe="")
        wait_for(lambda: serving.get(f"/recommendations?user={q}").json()["fallback"] is None,
                 120, "a snapshot that knows the user")
        for _ in range(6):  # both workers serve (and track) the user
            serving.get(f"/recommendations?user={q}")
        # The fold-in knows the user before a snapshot does: wait until the bucket and the
        # cache hold both ids, so the scan is shown to find them.
        def spread() -> bool:
            found = scan()
            return all({i for name, i in found if part in name} == {user, item}
                       for part in ("s3://", "/cache/"))

        wait_for(spread, 120, "both ids in the bucket and the cache")

        started = time.monotonic()
        r = requests.delete(f"{serving.base}/users/{q}", timeout=10)
        assert r.status_code == 202, r.text
        r = requests.delete(f"{serving.base}/items/{quote(item, safe='')}", timeout=10)
        assert r.status_code == 202, r.text
        send([{"user": f"u{k % 8}", "item": f"i{(k * 3) % 30}"} for k in range(40)])
        wait_for(lambda: not scan() or None, 120, "no file or object holding either id")
        elapsed = time.monotonic() - started
        assert scan() == []
        # Every worker answers the user as unknown.
        answers = {serving.get(f"/recommendations?user={q}").json()["fallback"]
                   for _ in range(6)}
        assert answers == {"popular"}
        # What streamrec wrote to Kafka for the erasures holds the keyed hash alone.
        records = [m for m in read_topic(kafka.bootstrap, topic, 2)
                   if m.value() and b'"erase"' in m.value()]
        assert len(records) == 2
        for m in records:
            assert holders([("record", m.value() + (m.key() or b""))], [user, item]) == []
            assert m.key() == json.loads(m.value())["hash"].encode()
        assert serving.running and trainer.running
        print(f"erasure scan (serve, 2 workers, MinIO): clean {elapsed:.1f} s after the DELETEs")
    finally:
        producers.clear()
        serving.close()
        trainer.close()


def test_serve_removes_the_temporary_cache_it_made_when_it_stops(kafka: Any,
                                                                 tmp_path: Path) -> None:
    """Without a cache dir, ``serve`` caches in a temporary one; its last snapshot may hold ids
    erased later, so it goes at exit (a set cache dir is pruned at the next start instead)."""
    import os
    import signal
    import subprocess
    import sys

    from tests.infra.process import free_port
    from tests.support.serving import publish_snapshot

    from streamrec.adapters.stores import LocalStore

    store = LocalStore(tmp_path / "store")
    publish_snapshot(store, tmp_path / "work", 1)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    port = free_port()
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "TMPDIR": str(tmp)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("STREAMREC_CACHE_DIR", None)
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamrec.cli", "serve", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--store", str(store.root), "--bootstrap-servers",
             kafka.bootstrap, "--topic", kafka.create_topic(f"tmpcache-{uuid.uuid4().hex[:6]}"),
             "--notify-topic", ""], env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                     .status_code == 200, 90, "serve ready")
            (cache,) = tmp.glob("streamrec-cache-*")
            assert [p.name for p in cache.iterdir() if p.is_dir()]  # the served snapshot
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(60) == 0
    assert list(tmp.glob("streamrec-cache-*")) == []
