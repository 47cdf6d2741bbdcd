"""Forgetting: the tombstone rule, the window, snapshots, the trainer loop, the embedded log and
the serving routes (DELETE /users, DELETE /items, hide), without Kafka or S3."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from tests.support.memlog import MemSink, MemSource
from tests.unit.test_serving_api import PARAMS, TOPIC, World, board_window
from tests.unit.test_trainer_loop import MemoryLog, _config, _run_until_published

from streamrec.adapters.locallog import LocalLogSink, LocalLogSource
from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.core.erasure import REDACTED, Erasure, Tombstones
from streamrec.core.events import Event, parse_batch
from streamrec.core.model import Model
from streamrec.core.training import fit
from streamrec.core.window import SlidingWindow
from streamrec.serving.app import create_app
from streamrec.trainer.service import Trainer

# -- the rule ----------------------------------------------------------------------------------


def test_a_user_loses_events_up_to_the_erasure_and_an_item_loses_all():
    t = Tombstones.of([Erasure("user", "u", 100.0), Erasure("item", "i", 100.0)])
    assert t.erased("u", "x", 99.0) and t.erased("u", "x", 100.0) and t.erased("u", "x", None)
    assert t.erased("u", "x", math.nan)
    assert not t.erased("u", "x", 101.0)  # a new beginning after the erasure
    assert t.erased("v", "i", 1e9)  # an item is erased for good
    assert not t.erased("v", "x", 1.0)
    assert not t.add(Erasure("user", "u", 50.0))  # an earlier erasure erases nothing new
    assert t.add(Erasure("user", "u", 200.0)) and t.erased("u", "x", 150.0)


def test_erasure_records_parse_in_a_batch_and_bad_ones_are_dead_lettered():
    values = [b"u:i", Erasure("user", "u", 5.0).to_bytes(), REDACTED,
              b'{"erase":"user","id":"","at":1}', b'{"erase":"item","id":"i"}']
    batch = parse_batch(values)
    assert batch.erasures == [(1, Erasure("user", "u", 5.0))]
    assert batch.redacted == [2]
    assert [(i, e.reason) for i, e in batch.rejected] == [(3, "bad_control"), (4, "bad_control")]


def test_the_window_forgets_erased_users_and_items_and_their_ids():
    window = SlidingWindow(100)
    window.extend([Event("u", "x", 1.0, 10.0), Event("v", "x", 1.0, 10.0),
                   Event("v", "gone", 2.0, 10.0), Event("u", "y", 1.0, 30.0)])
    dropped = window.erase(Tombstones.of([Erasure("user", "u", 20.0), Erasure("item", "gone", 0)]))
    assert dropped == 2
    assert [(e.user, e.item) for e in window.contents().events()] == [("v", "x"), ("u", "y")]
    m = window.build()
    assert "gone" not in m.item_ids


def test_tombstones_round_trip_through_a_snapshot_and_old_snapshots_have_none(tmp_path: Path):
    window = board_window()
    model = fit(window.build(), PARAMS)
    t = Tombstones.of([Erasure("user", "ü-1", 12.5), Erasure("item", "i9", 3.0)])
    write_snapshot(tmp_path / "a", model, window.contents(), {0: 1}, "000000000001",
                   tombstones=t)
    back = read_snapshot(tmp_path / "a", window=False).tombstones
    assert (back.users, back.items) == (t.users, t.items)
    write_snapshot(tmp_path / "b", model, window.contents(), {0: 1}, "000000000002")
    assert len(read_snapshot(tmp_path / "b").tombstones) == 0


# -- the trainer -------------------------------------------------------------------------------


def test_the_trainer_forgets_a_user_in_the_next_snapshot_prunes_older_ones_and_replays_safely(
        tmp_path: Path):
    log = MemoryLog()  # every message has timestamp 1.0
    for k in range(60):
        log.append("t", f"u{k % 6}:i{k % 9}".encode())
    store = LocalStore(tmp_path / "store")
    config = _config(keep=5)
    trainer = Trainer(config, log, log, store, workdir=tmp_path / "w1")
    trainer.resume()
    _run_until_published(trainer, 1)
    for k in range(60, 110):
        log.append("t", f"u{k % 6}:i{k % 9}".encode())
    _run_until_published(trainer, 2)
    assert len(store.versions()) == 2
    log.append("t", Erasure("user", "u1", 50.0).to_bytes())
    log.append("t", Erasure("item", "i2", 50.0).to_bytes())
    log.append("t", b"u1:i3")  # dated 1.0: before the erasure, so erased too
    _run_until_published(trainer, 3)  # an erasure retrains at once (retrain_every is 50)
    assert trainer.metrics.erased_events._value.get() > 0
    trainer.shutdown()
    latest = store.latest()
    assert store.versions() == [latest]  # every older version may hold u1: pruned
    snap = read_snapshot(store.fetch(latest, tmp_path / "c"))
    assert "u1" not in list(snap.model.user_ids) and "i2" not in list(snap.model.item_ids)
    assert "u1" not in snap.window.user_ids and "i2" not in snap.window.item_ids
    assert snap.tombstones.users == {"u1": 50.0} and set(snap.tombstones.items) == {"i2"}
    # A restart resumes the tombstones; a replay of the whole topic does not bring u1 back.
    again = Trainer(_config(keep=5), log, log, store, workdir=tmp_path / "w2")
    again.resume()
    assert again.tombstones.users == {"u1": 50.0}
    log.seek({0: 0})
    again.window = SlidingWindow(1000)
    while again.step(timeout=0.0):
        pass
    assert "u1" not in again.window.contents().user_ids
    assert "i2" not in again.window.contents().item_ids
    again.shutdown()


# -- the embedded log --------------------------------------------------------------------------


def test_the_embedded_log_redacts_erased_records_keeping_offsets_and_readers(tmp_path: Path):
    sink = LocalLogSink(tmp_path, fsync_every=1)
    for k in range(10):
        sink.produce("t", f"u{k % 2}:i{k}".encode(), key=f"u{k % 2}".encode())
    sink.flush()
    reader = LocalLogSource(tmp_path, "t")
    reader.seek({0: 0})
    first = reader.poll(3, 1.0)  # a reader in the middle of the segment
    assert [m.offset for m in first] == [0, 1, 2]
    erasure = Erasure("user", "u1", 1e10)
    sink.produce("t", erasure.to_bytes(), key=b"u1")
    redacted = sink.redact("t", lambda m: m.value is not None and m.value.startswith(b"u1:"))
    assert redacted == 5
    sink.produce("t", b"u1:i99")  # after the erasure: kept
    sink.flush()
    rest = reader.poll(100, 1.0)
    assert [m.offset for m in rest] == list(range(3, 12))
    values = [m.value for m in rest]
    assert values[0] == REDACTED and values[1] == b"u0:i4" and values[-1] == b"u1:i99"
    assert erasure.to_bytes() in values
    fresh = LocalLogSource(tmp_path, "t")
    fresh.seek({0: 0})
    everything = fresh.poll(100, 1.0)
    assert [m.offset for m in everything] == list(range(12))
    assert not any(m.value is not None and m.value.startswith(b"u1:i") and m.offset < 10
                   for m in everything)
    sink.close()


# -- serving -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model() -> Model:
    return fit(board_window().build(), PARAMS)


@pytest.fixture
def world(tmp_path: Path, model: Model) -> World:
    w = World(tmp_path, model, board_window())
    w.publish("000000000001")
    assert w.tick()
    return w


def _items(body: dict) -> set[str]:
    return {x["item"] for x in body["items"]}


def test_deleting_a_user_forgets_them_in_every_answer_at_once(world: World):
    world.client.post("/interactions", json=[{"user": "u0", "item": "i1", "weight": 5}])
    world.fold()
    assert world.get("/users/u0/recommendations")["fresh_events"] == 1
    r = world.client.delete("/users/u0")
    assert r.status_code == 202
    body = r.get_json()
    assert body["erased"] == "user" and body["id"] == "u0" and body["topic"] == TOPIC
    rec = world.get("/users/u0/recommendations")
    assert rec["fallback"] == "popular" and rec["fresh_events"] == 0
    assert world.get("/users/u0/items", 404)["error"] == "unknown_user"
    assert world.get("/users/u0/because/i2", 404)["error"] == "unknown_user"
    batch = world.get("/recommendations/batch?users=u0,u1")["results"]
    assert batch["u0"]["fallback"] == "popular" and batch["u1"]["fallback"] is None
    # Events after the erasure are a new beginning.
    world.client.post("/interactions", json={"user": "u0", "item": "i3"})
    world.fold()
    assert world.get("/users/u0/recommendations")["fresh_events"] == 1
    assert [x["item"] for x in world.get("/users/u0/items")["fresh"]] == ["i3"]


def test_deleting_an_item_removes_it_from_every_route(world: World):
    assert "i0" in _items(world.get("/popular?n=12"))
    assert world.client.delete("/items/i0").status_code == 202
    assert "i0" not in _items(world.get("/popular?n=12"))
    for user in ("u0", "u2", "u3"):
        body = world.get(f"/users/{user}/recommendations?n=12&exclude_seen=false")
        assert "i0" not in _items(body)
        assert "i0" not in {x["item"] for x in world.get(f"/users/{user}/items")["items"]}
    assert "i0" not in _items(world.get("/items/i2/similar?n=11"))
    assert world.get("/items/i0/similar", 404)["error"] == "unknown_item"
    session = world.client.post("/recommendations", json={"items": ["i2", "i4"], "n": 11})
    assert "i0" not in _items(session.get_json())
    assert "i0" not in world.get("/?userId=u2&recommendationsNumber=12")["recommended_items"]
    # A late click on it (a stale page) does not bring it back.
    world.client.post("/interactions", json={"user": "u5", "item": "i0", "weight": 100})
    world.fold()
    assert "i0" not in _items(world.get("/popular?n=12"))


def test_other_workers_apply_the_erasure_from_the_topic(world: World, tmp_path: Path):
    other = create_app(Config(cache_dir=str(tmp_path / "c2")), store=world.store,
                       sink=MemSink(world.log),
                       source_factory=lambda offsets: MemSource(world.log, TOPIC))
    svc = other.extensions["streamrec"]
    assert svc.reloader.check_once()
    client = other.test_client()
    assert client.get("/users/u2/recommendations").get_json()["fallback"] is None
    world.client.delete("/users/u2")
    world.client.delete("/items/i4")
    assert svc.foldin.step() + svc.foldin.step() == 0  # control records, no events
    assert client.get("/users/u2/recommendations").get_json()["fallback"] == "popular"
    assert "i4" not in _items(client.get("/popular?n=12").get_json())
    # A new snapshot that still holds u2 (trained before the erasure) keeps them masked.
    world.publish("000000000002", offsets={0: 0})
    assert svc.reloader.check_once()
    assert client.get("/users/u2/recommendations").get_json()["fallback"] == "popular"


def test_a_hide_takes_the_item_out_of_the_users_lists_at_once(world: World):
    top = [x["item"] for x in world.get("/users/u1/recommendations?n=3&exclude_seen=false")[
        "items"]]
    world.client.post("/interactions", json={"user": "u1", "item": top[0], "type": "hide"})
    world.fold()
    after = world.get("/users/u1/recommendations?n=12&exclude_seen=false")
    assert top[0] not in _items(after)
    assert top[0] in _items(world.get("/users/u3/recommendations?n=12&exclude_seen=false"))


def test_bad_deletions_get_clear_errors(tmp_path: Path, model: Model):
    w = World(tmp_path, model, board_window(), ingest_token="s3cret")
    w.publish("000000000001")
    w.tick()
    r = w.client.delete("/users/u0")
    assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"
    ok = w.client.delete("/users/u0", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 202
    bad = w.client.delete("/users/a%01b", headers={"Authorization": "Bearer s3cret"})
    assert bad.status_code == 400 and bad.get_json()["error"] == "bad_id"
    for blank in ("/users/%20", "/items/%20%20"):  # a whitespace-only id is no id
        bad = w.client.delete(blank, headers={"Authorization": "Bearer s3cret"})
        assert bad.status_code == 400 and bad.get_json()["error"] == "bad_id"
    wrong = w.client.delete("/items/i1", headers={"Authorization": "Bearer s3cre"})
    assert wrong.status_code == 401 and "Bearer" in wrong.headers["WWW-Authenticate"]
    q = w.client.delete("/items/i1?now=1", headers={"Authorization": "Bearer s3cret"})
    assert q.status_code == 400
    unknown = w.client.post("/interactions", json={"user": "u0", "item": "i1", "type": "wow"},
                            headers={"Authorization": "Bearer s3cret"})
    assert unknown.status_code == 400 and "unknown_type" in unknown.get_json()["message"]
    erase = w.client.post("/interactions", json={"erase": "user", "id": "u1", "at": 1},
                          headers={"Authorization": "Bearer s3cret"})
    assert erase.status_code == 400 and "control_record" in erase.get_json()["message"]
    assert np.isfinite(w.model.als.item_factors).all()


def test_an_erasure_that_empties_the_window_waits_for_events_then_prunes(tmp_path: Path):
    log = MemoryLog()
    for k in range(50):
        log.append("t", f"only:i{k % 5}".encode())
    store = LocalStore(tmp_path / "store")
    now = [0.0]
    trainer = Trainer(_config(keep=5), log, log, store, workdir=tmp_path / "w",
                      clock=lambda: now[0])
    trainer.resume()
    _run_until_published(trainer, 1)
    log.append("t", Erasure("user", "only", 50.0).to_bytes())
    for _ in range(5):
        trainer.step(timeout=0.0)
        trainer.wait_idle(10)
    assert len(trainer.window) == 0 and trainer.training.reason == "empty_window"
    assert not trainer.policy.should_start()  # no retry loop on an empty window
    assert len(store.versions()) == 1
    for k in range(50):
        log.append("t", f"next:i{k % 5}".encode())
    now[0] += 31  # the hold after a failed fit
    _run_until_published(trainer, 2)
    trainer.shutdown()
    (version,) = store.versions()
    snap = read_snapshot(store.fetch(version, tmp_path / "c"))
    assert "only" not in list(snap.model.user_ids) and "only" in snap.tombstones.users


def test_an_erased_item_leaves_the_catalogue_and_cannot_be_put_back(world: World):
    from streamrec.core.catalog import parse_record

    world.service.catalogue.upsert(parse_record({"item": "i3", "categories": ["a"]}))
    assert world.get("/items/i3")["item"] == "i3"
    assert world.client.delete("/items/i3").status_code == 202
    assert world.get("/items/i3", 404)["error"] == "unknown_item"
    r = world.client.put("/items/i3", json={"categories": ["b"]})
    assert r.status_code == 409 and r.get_json()["error"] == "erased_item"
    r = world.client.post("/items", json=[{"item": "i4"}, {"item": "i3"}])
    assert r.status_code == 409
    # A snapshot whose catalogue still holds it (made before the erasure) does not bring it back.
    from streamrec.core.catalog import Catalogue

    path = world.tmp / "build" / "000000000002"
    held = Catalogue([parse_record({"item": "i3"}), parse_record({"item": "i5"})])
    write_snapshot(path, world.model, world.window.contents(), {0: 0}, "000000000002",
                   catalog=held.to_bytes({}))
    world.store.publish(path, "000000000002")
    assert world.tick()
    assert world.get("/items/i5")["item"] == "i5"
    assert world.get("/items/i3", 404)["error"] == "unknown_item"


def test_ids_holding_a_slash_can_be_read_put_and_erased_through_the_path(world: World):
    from streamrec.core.catalog import parse_record

    world.client.post("/interactions", json={"user": "org/u9", "item": "i1", "weight": 5})
    world.fold()
    assert world.get("/recommendations?user=org%2Fu9")["fresh_events"] == 1
    r = world.client.delete("/users/org%2Fu9")  # the server decodes %2F before routing
    assert r.status_code == 202 and r.get_json()["id"] == "org/u9"
    assert world.get("/recommendations?user=org%2Fu9")["fresh_events"] == 0

    world.service.catalogue.upsert(parse_record({"item": "sku/7", "title": "T"}))
    assert world.get("/items/sku%2F7")["title"] == "T"
    assert world.client.put("/items/sku%2F7", json={"item": "sku/7"}).status_code == 202
    assert world.client.delete("/items/sku%2F7").get_json()["id"] == "sku/7"
    assert world.get("/items/sku%2F7", 404)["error"] == "unknown_item"
    assert world.get("/items/i2/similar?n=2")["item"] == "i2"  # still its own route


@pytest.mark.parametrize(("method", "url", "allow"), [
    ("DELETE", "/users/u0/recommendations", "GET"), ("DELETE", "/users/u0/items", "GET"),
    ("DELETE", "/items/i2/similar", "GET"), ("PUT", "/items/i2/similar", "GET"),
    ("DELETE", "/users/u0/because/i2", "GET"),
])
def test_a_slash_id_never_swallows_a_path_another_route_owns(world: World, method: str,
                                                             url: str, allow: str):
    r = world.client.open(url, method=method, json={})
    assert r.status_code == 405 and r.get_json()["error"] == "method_not_allowed"
    assert allow in r.headers["Allow"]
    assert world.get("/users/u0/recommendations")["fallback"] is None  # u0 was not erased
