"""Issue 17, forgetting, end to end: DELETE /users and DELETE /items against real Kafka, MinIO,
a trainer process and gunicorn.

After ``DELETE /users/u3`` the user is absent from every answer at once, from the next
snapshot (the trainer retrains at once), from every kept snapshot once that one is published
(the documented bound: older versions are pruned then), and after a trainer restart. The same
for an item.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import requests
from confluent_kafka import Producer
from tests.support.trainerproc import ServingProc, TrainerProc, fit_args, read_topic, wait_for

from streamrec.adapters.erasurekeys import erasure_hasher
from streamrec.adapters.s3store import S3Store
from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.storebase import VersionNotFound
from streamrec.core.snapshot.arrays import Snapshot


def _snapshots(store: S3Store, tmp: Path) -> list[Snapshot]:
    """Every kept snapshot, oldest first (one pruned while we list is simply not kept)."""
    out = []
    for version in store.versions():
        try:
            out.append(read_snapshot(store.fetch(version, tmp)))
        except VersionNotFound:
            continue
    return out


def _holds(snap: Snapshot, user: str | None = None, item: str | None = None) -> bool:
    if user is not None and (user in list(snap.model.user_ids) or user in snap.window.user_ids):
        return True
    return item is not None and (item in list(snap.model.item_ids)
                                 or item in snap.window.item_ids)


def test_a_deleted_user_and_item_leave_every_answer_snapshot_and_restart(
    kafka: Any, s3: Any, tmp_path: Path
) -> None:
    topic = kafka.create_topic(f"forget-{uuid.uuid4().hex[:8]}", partitions=2)
    kafka.create_topic(f"{topic}.dlq", partitions=1)
    trainer = TrainerProc(kafka.bootstrap, topic, s3, tmp_path / "trainer",
                          [*fit_args(window=10_000, retrain_every=40, interval=1, iterations=3),
                           "--keep", "4"])
    serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving")
    other = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "other",
                        ["--workers", "2"])  # another replica, two workers
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5})
    store = S3Store(s3.bucket, "", client=s3.client())

    def send(values: list[str]) -> None:
        for value in values:
            producer.produce(topic, value=value.encode(), key=value.split(":")[0].encode())
        assert producer.flush(30) == 0

    try:
        trainer.start()
        send([f"u{k % 8}:i{k % 30}" for k in range(80)])
        first = serving.wait_model(180)
        other.wait_model(180)
        # Typed events through Kafka: a dislike, and an unknown type for the dead-letter topic.
        send([f"u{k % 8}:i{(k * 7) % 30}" for k in range(80)]
             + ['{"user":"u2","item":"i5","type":"dislike"}',
                '{"user":"u2","item":"i6","type":"bogus"}'])
        wait_for(lambda: len(store.versions()) >= 2, 120, "two stored snapshots")
        assert any(_holds(s, user="u3") for s in _snapshots(store, tmp_path / "c0"))
        assert serving.get("/users/u3/recommendations").json()["fallback"] is None
        assert first <= serving.version()

        r = requests.delete(f"{serving.base}/users/u3", timeout=10)
        assert r.status_code == 202, r.text
        erased_at = r.json()["at"]
        # At once, on this replica: every answer treats u3 as unknown.
        assert serving.get("/users/u3/recommendations").json()["fallback"] == "popular"
        assert serving.get("/users/u3/items").status_code == 404
        assert serving.get("/users/u3/because/i1").status_code == 404
        assert serving.get("/recommendations/batch?users=u3").json()["results"]["u3"][
            "fallback"] == "popular"
        # Every other replica and worker, from the erasure record on the topic, within 1 s.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            answers = {other.get("/users/u3/recommendations").json()["fallback"]
                       for _ in range(6)}  # both workers, whichever answers
            if answers == {"popular"}:
                break
            time.sleep(0.02)
        assert answers == {"popular"}, answers

        # The next snapshot leaves u3 out, and once it is published no kept one holds u3.
        # Tombstones hold keyed hashes, under the key the store generated (ERASURE_KEY).
        hasher = erasure_hasher(None, store)
        u3, i7 = hasher.digest("user", "u3"), hasher.digest("item", "i7")

        def clean() -> list[Snapshot] | None:
            snaps = _snapshots(store, tmp_path / "c1")
            newest = snaps[-1] if snaps else None
            if newest is None or u3 not in newest.tombstones.users:
                return None
            return snaps if not any(_holds(s, user="u3") for s in snaps) else None

        snaps = wait_for(clean, 120, "a snapshot without u3 and no older one kept")
        assert snaps[-1].tombstones.users[u3] == erased_at
        wait_for(lambda: serving.version() == snaps[-1].version, 60, "serving the new snapshot")
        assert serving.get("/users/u3/recommendations").json()["fallback"] == "popular"
        assert trainer.metric("erasures_total") == 1
        assert trainer.metric("erasure_pruned_snapshots_total") >= 1

        # An item: gone from every route at once, and from the next snapshot.
        assert "i7" in {x["item"] for x in serving.get("/popular?n=30").json()["items"]}
        assert requests.delete(f"{serving.base}/items/i7", timeout=10).status_code == 202
        assert "i7" not in {x["item"] for x in serving.get("/popular?n=30").json()["items"]}
        assert serving.get("/items/i7/similar").status_code == 404
        for user in ("u0", "u1", "u7"):
            body = serving.get(f"/users/{user}/recommendations?n=30&exclude_seen=false").json()
            assert "i7" not in {x["item"] for x in body["items"]}
        send(["u1:i7", "u2:i7"])  # late clicks from a stale page: dropped
        wait_for(lambda: (s := _snapshots(store, tmp_path / "c2")) and i7 in s[-1].tombstones
                 .items and not any(_holds(x, item="i7") for x in s), 120,
                 "a snapshot without i7 and no older one kept")

        # A restart resumes the tombstones: new events do not bring i7 back (an item is erased
        # for good; u3's own new events would be a new beginning, so none are sent).
        assert trainer.terminate(60) == 0
        trainer.start()
        before = store.latest()
        send([f"u{k % 8}:i{(k * 11) % 30}" for k in range(80) if k % 8 != 3])
        assert any(f"i{(k * 11) % 30}" == "i7" for k in range(80) if k % 8 != 3)
        wait_for(lambda: (store.latest() or "") > (before or ""), 180, "a snapshot after restart")
        for snap in _snapshots(store, tmp_path / "c3"):
            assert not _holds(snap, user="u3", item="i7"), snap.version
        assert u3 in snaps[-1].tombstones.users
        # The dislike is a negative cell of the model, and i5 is never offered to u2.
        snap = snaps[-1]
        row, col = snap.model.user_index["u2"], snap.model.item_index["i5"]
        assert snap.model.user_items[row, col] < 0
        body = serving.get("/users/u2/recommendations?n=30&exclude_seen=false").json()
        assert "i5" not in {x["item"] for x in body["items"]}
        dead = read_topic(kafka.bootstrap, f"{topic}.dlq", 1)
        assert [dict(m.headers())["error"].split(b":")[0] for m in dead] == [b"unknown_type"]
        metrics = serving.metrics_text()
        assert 'streamrec_erase_requests_total{kind="user",result="accepted"} 1.0' in metrics
        assert serving.running and trainer.running
    finally:
        serving.close()
        other.close()
        trainer.close()
