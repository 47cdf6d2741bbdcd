"""Forgetting: the tombstone rule, the window, snapshots, the trainer loop, the embedded log and
the serving routes (DELETE /users, DELETE /items, hide), without Kafka or S3."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from tests.support.memlog import MemSink, MemSource
from tests.support.snapshots import downgrade
from tests.unit.test_serving_api import PARAMS, TOPIC, World, board_window
from tests.unit.test_trainer_loop import MemoryLog, _config, _run_until_published

from streamrec.adapters.locallog import LocalLogSink, LocalLogSource
from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.core.events import Event, parse_batch
from streamrec.core.events.erasure import REDACTED, Erasure, Tombstones
from streamrec.core.events.erasurekey import ErasureHasher
from streamrec.core.scoring.model import Model
from streamrec.core.scoring.training import fit
from streamrec.core.snapshot.manifest import ONE_USER_SIDE_FORMAT
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.app import create_app
from streamrec.trainer.service import Trainer

HASHER = ErasureHasher("k" * 32)

# -- the rule ----------------------------------------------------------------------------------


def test_a_user_loses_events_up_to_the_erasure_and_an_item_loses_all():
    t = Tombstones.of([Erasure("user", "u", 100.0), Erasure("item", "i", 100.0)], HASHER)
    assert t.erased("u", "x", 99.0) and t.erased("u", "x", 100.0) and t.erased("u", "x", None)
    assert t.erased("u", "x", math.nan)
    assert not t.erased("u", "x", 101.0)  # a new beginning after the erasure
    assert t.erased("v", "i", 1e9)  # an item is erased for good
    assert not t.erased("v", "x", 1.0)
    assert not t.add(Erasure("user", "u", 50.0))  # an earlier erasure erases nothing new
    assert t.add(Erasure("user", "u", 200.0)) and t.erased("u", "x", 150.0)


def test_erasure_records_parse_in_a_batch_and_bad_ones_are_dead_lettered():
    keyed = Erasure("user", "u", 5.0).keyed(HASHER)
    values = [b"u:i", keyed.to_bytes(), REDACTED,
              b'{"erase":"user","id":"","at":1}', b'{"erase":"item","id":"i"}',
              b'{"erase":"item","id":"i","at":2}', b'{"erase":"item","hash":"ab","at":2}']
    assert b'"u"' not in keyed.to_bytes() and keyed.digest is not None
    batch = parse_batch(values)
    # The record holds the hash alone; one written before the hash holds the id.
    assert batch.erasures == [(1, Erasure("user", None, 5.0, keyed.digest)),
                              (5, Erasure("item", "i", 2.0))]
    assert batch.redacted == [2]
    assert [(i, e.reason) for i, e in batch.rejected] == [
        (3, "bad_control"), (4, "bad_control"), (6, "bad_control")]
    with pytest.raises(ValueError, match="digest"):
        Erasure("user", "u", 5.0).to_bytes()  # an id is never written


def test_the_window_forgets_erased_users_and_items_and_their_ids():
    window = SlidingWindow(100)
    window.extend([Event("u", "x", 1.0, 10.0), Event("v", "x", 1.0, 10.0),
                   Event("v", "gone", 2.0, 10.0), Event("u", "y", 1.0, 30.0)])
    dropped = window.erase(Tombstones.of([Erasure("user", "u", 20.0), Erasure("item", "gone", 0)],
                                         HASHER))
    assert dropped == 2
    assert [(e.user, e.item) for e in window.contents().events()] == [("v", "x"), ("u", "y")]
    m = window.build()
    assert "gone" not in m.item_ids


def test_tombstones_round_trip_through_a_snapshot_and_old_snapshots_have_none(tmp_path: Path):
    window = board_window()
    model = fit(window.build(), PARAMS)
    t = Tombstones.of([Erasure("user", "ü-1", 12.5), Erasure("item", "gone/9", 3.0)], HASHER)
    write_snapshot(tmp_path / "a", model, window.contents(), {0: 1}, "000000000001",
                   tombstones=t)
    back = read_snapshot(tmp_path / "a", window=False).tombstones
    assert (back.users, back.items) == (t.users, t.items)
    assert back.bind(HASHER).user_at("ü-1") == 12.5 and back.has_item("gone/9")
    for f in (tmp_path / "a").iterdir():  # digests, never the ids
        assert "ü-1".encode() not in f.read_bytes() and b"gone" not in f.read_bytes()
    write_snapshot(tmp_path / "b", model, window.contents(), {0: 1}, "000000000002")
    assert len(read_snapshot(tmp_path / "b").tombstones) == 0


def as_format_5(path: Path, users: dict[str, float], items: dict[str, float]) -> None:
    """Turn the snapshot at ``path`` into one of format 5, whose tombstones held ids."""
    import json

    from streamrec.core.ids import encode_ids

    downgrade(path, 5)  # the ALS factors' names of format 5
    manifest = json.loads((path / "manifest.json").read_text())
    for name in [n for n in manifest["files"] if n.startswith("tombstones.")]:
        del manifest["files"][name]
        (path / f"{name}.npy").unlink()
    for kind, table in (("users", users), ("items", items)):
        data, offsets = encode_ids(list(table))
        arrays = {"data": data, "offsets": offsets,
                  "at": np.asarray(list(table.values()), dtype=np.float64)}
        for part, array in arrays.items():
            name = f"tombstones.{kind}.{part}"
            np.save(path / f"{name}.npy", array)
            raw = (path / f"{name}.npy").read_bytes()
            import hashlib
            manifest["files"][name] = {"sha256": hashlib.sha256(raw).hexdigest(),
                                       "bytes": len(raw), "dtype": array.dtype.str,
                                       "shape": list(array.shape)}
    manifest["format_version"] = 5
    (path / "manifest.json").write_text(json.dumps(manifest))


def test_a_format_5_snapshot_with_ids_in_its_tombstones_still_loads_and_is_hashed(
        tmp_path: Path):
    window = board_window()
    write_snapshot(tmp_path / "a", fit(window.build(), PARAMS), window.contents(), {0: 1},
                   "000000000001")
    as_format_5(tmp_path / "a", {"old-user": 7.0}, {"old-item": 8.0})
    snap = read_snapshot(tmp_path / "a", verify=True)
    assert snap.manifest.format_version == 5 and len(snap.tombstones.legacy) == 2
    with pytest.raises(RuntimeError, match="bind"):
        snap.tombstones.erased("old-user", "x", 1.0)  # unbound: never a silent "not erased"
    t = snap.tombstones.bind(HASHER)
    assert t.erased("old-user", "x", 6.0) and t.has_item("old-item") and not t.legacy
    assert set(t.to_arrays()) == {f"tombstones.{k}.{p}" for k in ("users", "items")
                                  for p in ("hash", "at")}


# -- the trainer -------------------------------------------------------------------------------


def _log_of(events: int) -> MemoryLog:
    """A log of ``events`` events of 6 users on 9 items; every message has timestamp 1.0."""
    log = MemoryLog()
    for k in range(events):
        log.append("t", f"u{k % 6}:i{k % 9}".encode())
    return log


def test_the_trainer_forgets_a_user_in_the_next_snapshot_prunes_older_ones_and_replays_safely(
        tmp_path: Path):
    log = _log_of(60)
    store = LocalStore(tmp_path / "store")
    config = _config(keep=5)
    trainer = Trainer(config, log, log, store, workdir=tmp_path / "w1")
    trainer.resume()
    _run_until_published(trainer, 1)
    for k in range(60, 110):
        log.append("t", f"u{k % 6}:i{k % 9}".encode())
    _run_until_published(trainer, 2)
    assert len(store.versions()) == 2
    log.append("t", Erasure("user", "u1", 50.0).keyed(trainer.hasher).to_bytes())
    log.append("t", b'{"erase":"item","id":"i2","at":50.0}')  # a record from before the hash
    log.append("t", b"u1:i3")  # dated 1.0: before the erasure, so erased too
    _run_until_published(trainer, 3)  # an erasure retrains at once (retrain_every is 50)
    assert trainer.metrics.erased_events._value.get() > 0
    trainer.shutdown()
    latest = store.latest()
    assert store.versions() == [latest]  # every older version may hold u1: pruned
    snap = read_snapshot(store.fetch(latest, tmp_path / "c"))
    assert "u1" not in list(snap.model.user_ids) and "i2" not in list(snap.model.item_ids)
    assert "u1" not in snap.window.user_ids and "i2" not in snap.window.item_ids
    u1, i2 = trainer.hasher.digest("user", "u1"), trainer.hasher.digest("item", "i2")
    assert snap.tombstones.users == {u1: 50.0} and set(snap.tombstones.items) == {i2}
    # A restart resumes the tombstones; a replay of the whole topic does not bring u1 back.
    again = Trainer(_config(keep=5), log, log, store, workdir=tmp_path / "w2")
    again.resume()
    assert again.tombstones.users == {u1: 50.0}
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
    erasure = Erasure("user", "u1", 1e10).keyed(HASHER)
    sink.produce("t", erasure.to_bytes(), key=erasure.digest.encode())
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
    log.append("t", Erasure("user", "only", 50.0).keyed(trainer.hasher).to_bytes())
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
    assert "only" not in list(snap.model.user_ids)
    assert trainer.hasher.digest("user", "only") in snap.tombstones.users


def test_an_erased_item_leaves_the_catalogue_and_cannot_be_put_back(world: World):
    from streamrec.core.catalog.records import parse_record

    world.service.catalogue.upsert(parse_record({"item": "i3", "categories": ["a"]}))
    assert world.get("/items/i3")["item"] == "i3"
    assert world.client.delete("/items/i3").status_code == 202
    assert world.get("/items/i3", 404)["error"] == "unknown_item"
    r = world.client.put("/items/i3", json={"categories": ["b"]})
    assert r.status_code == 409 and r.get_json()["error"] == "erased_item"
    r = world.client.post("/items", json=[{"item": "i4"}, {"item": "i3"}])
    assert r.status_code == 409
    # A snapshot whose catalogue still holds it (made before the erasure) does not bring it back.
    from streamrec.core.catalog.records import Catalogue

    path = world.tmp / "build" / "000000000002"
    held = Catalogue([parse_record({"item": "i3"}), parse_record({"item": "i5"})])
    write_snapshot(path, world.model, world.window.contents(), {0: 0}, "000000000002",
                   catalog=held.to_arrays({}))
    world.store.publish(path, "000000000002")
    assert world.tick()
    assert world.get("/items/i5")["item"] == "i5"
    assert world.get("/items/i3", 404)["error"] == "unknown_item"


def test_ids_holding_a_slash_can_be_read_put_and_erased_through_the_path(world: World):
    from streamrec.core.catalog.records import parse_record

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


# -- what is left behind -----------------------------------------------------------------------


def test_the_serving_cache_keeps_only_the_served_version(world: World):
    cache = world.tmp / "cache"
    (cache / ".tmp-000000000001-debris").mkdir()  # an interrupted fetch
    world.publish("000000000002")
    assert world.tick()
    world.publish("000000000003")
    assert world.tick()
    assert sorted(p.name for p in cache.iterdir() if p.is_dir()) == ["000000000003"]
    assert world.get("/model")["version"] == "000000000003"


def test_the_store_keeps_one_generated_erasure_key_whoever_asks_first(tmp_path: Path):
    from concurrent.futures import ThreadPoolExecutor

    from streamrec.adapters.erasurekeys import ERASURE_KEY_NAME, erasure_hasher

    store = LocalStore(tmp_path / "store")
    with ThreadPoolExecutor(8) as pool:
        keys = set(pool.map(lambda _: erasure_hasher(None, store).key(), range(16)))
    assert len(keys) == 1 and len(next(iter(keys))) == 64
    assert (tmp_path / "store" / ERASURE_KEY_NAME).read_bytes().strip() == next(iter(keys))
    assert not [p for p in (tmp_path / "store").iterdir() if p.name.startswith(".")]
    configured = erasure_hasher("c" * 32, store)  # the setting wins
    assert configured.digest("user", "u") != erasure_hasher(None, store).digest("user", "u")
    with pytest.raises(ValueError, match="at least 32"):
        Config(erasure_key="short").validate()
    assert Config(erasure_key="c" * 32).redacted()["erasure_key"] == "***"


def test_a_delete_redacts_events_dead_letters_item_records_keys_and_headers(tmp_path: Path,
                                                                            model: Model):
    from streamrec.core.catalog.records import encode_record, parse_record

    logdir = tmp_path / "log"
    sink = LocalLogSink(logdir, fsync_every=1)
    config = Config(cache_dir=str(tmp_path / "cache"), topic=TOPIC)
    store = LocalStore(tmp_path / "store")
    app = create_app(config, store=store, sink=sink,
                     source_factory=lambda offsets: LocalLogSource(logdir, TOPIC))
    path = tmp_path / "build" / "000000000001"
    write_snapshot(path, model, board_window().contents(), {0: 0}, "000000000001")
    store.publish(path, "000000000001")
    svc = app.extensions["streamrec"]
    assert svc.reloader.check_once()
    client = app.test_client()
    user, item = "gdpr-üser/1", "sku-ëraseme"
    encoded = [user.encode(), item.encode(), b"gdpr-\\u00fcser", b"sku-\\u00ebraseme"]
    assert client.post("/interactions", json=[{"user": user, "item": "i1"},
                                              {"user": "u0", "item": item}]).status_code == 202
    sink.produce(TOPIC, f'{{"user":"{user}","item":"i2","type":"bogus"}}'.encode(),
                 key=user.encode())  # an undecodable event: dead-lettered, still in the log
    sink.produce(config.dlq, b"garbage", key=b"k",
                 headers=[("error", f"bad_id: user {user!r}".encode())])
    sink.produce(config.dlq, json.dumps({"user": user}).encode())  # JSON-escaped
    sink.produce(config.items, encode_record(parse_record({"item": item, "title": "T"})),
                 key=item.encode())
    sink.produce(config.dlq, b"unrelated", key=b"u0")
    assert client.delete(f"/users/{user.replace('/', '%2F')}").status_code == 202
    assert client.delete(f"/items/{item}").status_code == 202
    sink.flush()
    for f in logdir.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            assert not any(form in data for form in encoded), f
    assert b"unrelated" in b"".join(f.read_bytes() for f in logdir.rglob("*.log"))
    # The erasure records are keyed by, and hold, the keyed hash alone.
    reader = LocalLogSource(logdir, TOPIC)
    reader.seek({0: 0})
    erasures = [m for m in reader.poll(100, 1.0) if m.value and b'"erase"' in m.value]
    assert [json.loads(m.value)["hash"] for m in erasures] == [
        svc.hasher.digest("user", user), svc.hasher.digest("item", item)]
    assert [m.key for m in erasures] == [json.loads(m.value)["hash"].encode()
                                         for m in erasures]
    svc.stop()


def test_the_online_tracker_forgets_a_deleted_user_in_every_worker(world: World, tmp_path: Path):
    rid = world.get("/users/u1/recommendations")["recommendation_id"]
    other = create_app(Config(cache_dir=str(tmp_path / "c2")), store=world.store,
                       sink=MemSink(world.log),
                       source_factory=lambda offsets: MemSource(world.log, TOPIC))
    svc = other.extensions["streamrec"]
    assert svc.reloader.check_once()
    other.test_client().get("/users/u1/recommendations")
    assert len(world.service.online) == 1 and len(svc.online) == 1
    assert world.client.delete("/users/u1").status_code == 202
    assert len(world.service.online) == 0  # the answering worker, at once
    svc.foldin.step()
    svc.foldin.step()
    assert len(svc.online) == 0  # the other, from the record
    world.client.post("/interactions", json={"user": "u1", "item": "i1",
                                             "recommendation_id": rid})
    world.fold()
    versions = world.service.online.state(0.0)["versions"]
    assert sum(t[4] for t in versions.values()) == 0  # not attributed after the erasure


def test_a_trainer_resuming_from_a_format_5_snapshot_hashes_its_tombstones_and_prunes_it(
        tmp_path: Path):
    log = _log_of(60)
    store = LocalStore(tmp_path / "store")
    first = Trainer(_config(keep=5), log, log, store, workdir=tmp_path / "w1")
    first.resume()
    _run_until_published(first, 1)
    first.shutdown()
    (old,) = store.versions()
    as_format_5(tmp_path / "store" / "snapshots" / old, {"old-user": 50.0}, {})
    again = Trainer(_config(keep=5), log, log, store, workdir=tmp_path / "w2")
    again.resume()
    assert again.tombstones.user_at("old-user") == 50.0 and not again.tombstones.legacy
    log.append("t", b"old-user:i1")  # dated 1.0, before its erasure: dropped
    for k in range(60):
        log.append("t", f"u{k % 6}:i{k % 9}".encode())
    _run_until_published(again, 1)
    again.shutdown()
    (new,) = store.versions()  # the format-5 version, which held the id, is pruned
    assert new != old
    snap = read_snapshot(store.fetch(new, tmp_path / "c"))
    assert snap.manifest.format_version == ONE_USER_SIDE_FORMAT
    assert "old-user" not in snap.window.user_ids
    for f in (tmp_path / "store").rglob("*"):
        assert not f.is_file() or b"old-user" not in f.read_bytes(), f
