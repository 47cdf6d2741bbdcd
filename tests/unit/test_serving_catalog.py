"""The catalogue in serving: /items routes, the items-topic follower and filters on every route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from tests.support.memlog import MemLog, MemSink, MemSource

from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.core.catalog.records import (
    Catalogue,
    ItemRecord,
    encode_record,
    parse_record,
    parse_record_bytes,
)
from streamrec.core.events import Event
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.app import create_app
from streamrec.serving.service import Service

TOPIC, ITEMS = "interactions", "interactions.items"
#: Every route that returns a list, with the key of its list in the answer.
LIST_ROUTES = ("/users/u0/recommendations?", "/recommendations?user=u0&",
               "/recommendations/batch?users=u0,u1&", "/items/i2/similar?", "/items/i2/next?",
               "/popular?")


@pytest.fixture(scope="module")
def window() -> SlidingWindow:
    window = SlidingWindow(200)
    window.extend(Event(f"u{u}", f"i{i}", 1.0 + (u + i) % 3)
                  for u in range(12) for i in range(u % 2, 12, 2) if i != u and i != (u + 2) % 12)
    return window


@pytest.fixture(scope="module")
def model(window: SlidingWindow) -> Model:
    return fit(window.build(), ALSParams(factors=4, iterations=10, num_threads=1))


class World:
    def __init__(self, tmp: Path, model: Model, window: SlidingWindow, **cfg: object) -> None:
        self.tmp, self.model, self.window = tmp, model, window
        self.store = LocalStore(tmp / "store")
        self.log = MemLog()
        config = Config(cache_dir=str(tmp / "cache"), **cfg)  # type: ignore[arg-type]
        self.app: Flask = create_app(config, store=self.store, sink=MemSink(self.log),
                                     source_factory=lambda _o: MemSource(self.log, TOPIC),
                                     items_factory=lambda: MemSource(self.log, ITEMS))
        self.service: Service = self.app.extensions["streamrec"]
        self.client: FlaskClient = self.app.test_client()

    def publish(self, version: str, catalog: Catalogue | None = None,
                item_offsets: dict[int, int] | None = None) -> None:
        path = self.tmp / "build" / version
        data = None if catalog is None else catalog.to_arrays(item_offsets or {},
                                                              self.model.item_ids)
        write_snapshot(path, self.model, self.window.contents(), {0: 0}, version, catalog=data)
        self.store.publish(path, version)
        assert self.service.reloader.check_once()

    def follow(self) -> int:
        assert self.service.items_follower is not None
        return self.service.items_follower.step() + self.service.items_follower.step()

    def get(self, url: str, status: int = 200) -> dict:
        r = self.client.get(url)
        assert r.status_code == status, r.get_data(as_text=True)
        return r.get_json()

    def listed(self, url: str) -> list[list[str]]:
        body = self.get(url)
        if "results" in body:
            return [[x["item"] for x in r["items"]] for r in body["results"].values()]
        return [[x["item"] for x in body["items"]]]


def _genres() -> Catalogue:
    return Catalogue(ItemRecord(f"i{i}", ("even",) if i % 2 == 0 else ("odd",), title=f"T{i}")
                     for i in range(12))


@pytest.fixture
def world(tmp_path: Path, model: Model, window: SlidingWindow) -> World:
    w = World(tmp_path, model, window)
    w.publish("000000000001", _genres())
    return w


def test_get_item_returns_the_snapshots_record_and_404_for_none(world: World) -> None:
    assert world.get("/items/i3") == {"item": "i3", "categories": ["odd"], "labels": {},
                                      "hidden": False, "expires_at": None, "title": "T3"}
    assert world.get("/items/nope", 404)["error"] == "unknown_item"


def test_a_put_record_reaches_the_catalogue_through_the_items_topic(world: World) -> None:
    r = world.client.put("/items/i4", json={"categories": ["odd"], "labels": {"k": "v"}})
    assert r.status_code == 202 and r.get_json() == {"accepted": 1, "topic": ITEMS}
    assert world.get("/items/i4")["categories"] == ["even"]  # not before the follower reads it
    assert world.follow() == 1
    assert world.get("/items/i4")["categories"] == ["odd"]
    assert world.get("/items/i4")["labels"] == {"k": "v"}


def test_post_items_is_all_or_nothing_and_names_the_bad_record(world: World) -> None:
    r = world.client.post("/items", json=[{"item": "a"}, {"item": "b", "hidden": "no"}])
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] == "invalid_item" and body["message"].startswith("records[1]: malformed")
    assert world.log.end_offsets(ITEMS) in ({}, {0: 0})
    r = world.client.post("/items", json=[{"item": "a"}, {"item": "b", "hidden": True}])
    assert r.status_code == 202 and r.get_json()["accepted"] == 2


def _oversized() -> dict[str, object]:
    """Within every per-field bound (64 categories, 64 labels, 512 bytes each), ~96 KiB."""
    return {"categories": [f"c{i:03d}" + "x" * 490 for i in range(64)],
            "labels": {f"k{i:03d}" + "k" * 490: "v" * 500 for i in range(64)}}


def test_a_record_over_64_kib_is_a_400_not_a_202_the_topic_readers_would_drop(
        world: World) -> None:
    for r in (world.client.put("/items/i4", json=_oversized()),
              world.client.post("/items", json=[{"item": "i5"}, {"item": "i4", **_oversized()}])):
        assert r.status_code == 400, r.get_json()
        body = r.get_json()
        assert body["error"] == "invalid_item" and "too_large" in body["message"]
    assert body["message"].startswith("records[1]: too_large")
    assert world.log.end_offsets(ITEMS) in ({}, {0: 0})  # nothing produced


def test_a_record_is_produced_as_compact_utf8_that_reads_back_the_same() -> None:
    record = parse_record({"item": "é", "categories": ["Comédie"], "title": "T"})
    value = encode_record(record)
    assert "Comédie".encode() in value and b" " not in value
    assert parse_record_bytes(value) == record


@pytest.mark.parametrize(("url", "body", "status"), [
    ("/items/i1", {"item": "i2"}, 400),
    ("/items/i1", {"expires_at": 1.7e12}, 400),
    ("/items/i1", [], 400),
])
def test_a_bad_put_is_a_400_with_the_reason(world: World, url: str, body: object,
                                            status: int) -> None:
    r = world.client.put(url, json=body)
    assert r.status_code == status
    assert r.get_json()["error"] == "invalid_item" and r.get_json()["message"]


def test_writes_need_the_bearer_token_when_one_is_set(tmp_path: Path, model: Model,
                                                      window: SlidingWindow) -> None:
    w = World(tmp_path, model, window, ingest_token="s3cret")
    assert w.client.put("/items/i1", json={}).status_code == 401
    assert w.client.post("/items", json=[{"item": "a"}]).status_code == 401
    ok = w.client.put("/items/i1", json={}, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 202


def test_hiding_an_item_removes_it_from_every_list_route_and_keeps_n(world: World) -> None:
    n = 3
    before = {url: world.listed(f"{url}n={n}") for url in LIST_ROUTES}
    victim = before["/popular?"][0][0]
    assert any(victim in lst for lists in before.values() for lst in lists if lst != [])
    world.client.put(f"/items/{victim}", json={"hidden": True})
    world.follow()
    for url in LIST_ROUTES:
        for lst in world.listed(f"{url}n={n}"):
            assert victim not in lst and len(lst) == n, (url, lst)
    session = world.client.post("/recommendations", json={"items": ["i1"], "n": n}).get_json()
    assert victim not in [x["item"] for x in session["items"]]
    compat = world.get(f"/?userId=u0&recommendationsNumber={n}")
    assert victim not in compat["recommended_items"]


def test_a_category_filter_applies_on_every_list_route(world: World) -> None:
    for url in LIST_ROUTES:
        for lst in world.listed(f"{url}n=3&category=even"):
            assert lst and all(int(i[1:]) % 2 == 0 for i in lst), (url, lst)
        assert all(len(lst) == 3 for lst in world.listed(f"{url}n=3&category=odd,even"))
        assert world.listed(f"{url}n=3&category=odd,even&category_mode=all") in ([[]], [[], []])
    body = world.client.post("/recommendations", json={"items": ["i1"], "n": 2,
                                                       "category": ["odd"]}).get_json()
    assert [int(x["item"][1:]) % 2 for x in body["items"]] == [1, 1]


def test_an_unknown_category_is_an_empty_list_not_an_error(world: World) -> None:
    for url in LIST_ROUTES:
        assert world.listed(f"{url}category=Nope") in ([[]], [[], []])


@pytest.mark.parametrize("category", [",", "%20", "even,,odd", "even,", "even,%20"])
def test_an_empty_category_name_is_a_400_not_an_unfiltered_list(world: World,
                                                                 category: str) -> None:
    for url in LIST_ROUTES:
        body = world.get(f"{url}category={category}", 400)
        assert body["error"] in ("bad_parameter", "bad_id") and "category" in body["message"]


@pytest.mark.parametrize("category", ["", [""], [], "even,,odd", ["even", " "]])
def test_an_empty_category_in_a_session_body_is_a_400_not_an_unfiltered_list(
        world: World, category: object) -> None:
    r = world.client.post("/recommendations", json={"items": ["i1"], "category": category})
    assert r.status_code == 400, r.get_json()
    assert "category" in r.get_json()["message"]


def test_a_bad_category_mode_is_a_400(world: World) -> None:
    body = world.get("/popular?category=even&category_mode=some", 400)
    assert body["error"] == "bad_parameter" and "category_mode" in body["message"]


def test_an_expired_item_leaves_the_lists_once_its_time_has_come(world: World) -> None:
    victim = world.listed("/popular?n=1")[0][0]
    world.client.put(f"/items/{victim}", json={"expires_at": 1.0})
    world.follow()
    assert victim not in world.listed("/popular?n=12")[0]


def test_a_newer_snapshot_catalogue_replaces_an_older_one_but_not_a_newer_one(
        world: World) -> None:
    world.client.put("/items/i1", json={"title": "live"})
    world.follow()  # this worker has read the items topic up to offset 1
    old = Catalogue([ItemRecord("i1", title="old")])
    world.publish("000000000002", old, {0: 0})  # the snapshot is behind: ours stays
    assert world.get("/items/i1")["title"] == "live"
    new = Catalogue([ItemRecord("i1", title="new")])
    world.publish("000000000003", new, {0: 5})  # ahead of what we read: taken
    assert world.get("/items/i1")["title"] == "new"
    assert world.get("/items/i2", 404)


def test_a_worker_ahead_of_a_newer_snapshot_rebases_onto_its_table_and_keeps_what_it_read(
        world: World) -> None:
    world.client.put("/items/i1", json={"title": "live-1"})  # offset 0
    world.client.put("/items/i2", json={"title": "live-2"})  # offset 1
    world.follow()
    catalogue = world.service.catalogue
    assert set(catalogue._records) == {"i1", "i2"}  # Python records over the first table
    # The trainer's next snapshot holds offset 0 (i1) but not 1: behind this worker, newer
    # than the table it rests on.
    snap = Catalogue([ItemRecord("i1", title="live-1"), ItemRecord("i5", ("odd",), title="s")])
    world.publish("000000000002", snap, {0: 1})
    assert world.get("/items/i1")["title"] == "live-1" and world.get("/items/i5")["title"] == "s"
    assert world.get("/items/i2")["title"] == "live-2"  # read past the snapshot: applied again
    assert world.get("/items/i3", 404)  # the first snapshot's records are gone with it
    assert set(catalogue._records) == {"i2"} and catalogue.base is not None
    # Filters read the new table's rows: i5 alone is "odd" now (i3 and the rest had no record).
    assert [x["item"] for x in world.get("/popular?category=odd&n=12")["items"]] == ["i5"]


def test_a_malformed_record_on_the_topic_is_skipped_and_the_rest_applied(world: World) -> None:
    world.log.append(ITEMS, b"{not json", key=b"x")
    world.log.append(ITEMS, json.dumps({"item": "i5", "hidden": True}).encode(), key=b"i5")
    world.follow()
    assert world.get("/items/i5")["hidden"] is True


def test_a_follower_whose_topic_is_not_there_yet_keeps_trying(tmp_path: Path, model: Model,
                                                              window: SlidingWindow) -> None:
    from streamrec.adapters.source import SourceUnavailable
    from streamrec.serving.feeds.items import ItemsFollower

    w = World(tmp_path, model, window)
    attempts = []

    def factory() -> MemSource:
        attempts.append(1)
        if len(attempts) == 1:
            raise SourceUnavailable("kafka: unknown topic")
        return MemSource(w.log, ITEMS)

    follower = ItemsFollower(factory, w.service.catalogue)
    w.service.holder.on_swap(follower.on_swap)
    w.publish("000000000001", _genres())
    with pytest.raises(SourceUnavailable):
        follower.step()
    w.log.append(ITEMS, json.dumps({"item": "i3", "title": "later"}).encode(), key=b"i3")
    assert follower.step() == 1 and len(attempts) == 2
    assert w.get("/items/i3")["title"] == "later"
