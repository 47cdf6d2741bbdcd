"""Serving API over a small real model: every route, its errors, hot reload and fold-in."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from tests.support.memlog import MemLog, MemSink, MemSource

from streamrec import __version__
from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.core.events import Event
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.app import create_app
from streamrec.serving.service import Service

TOPIC = "interactions"
PARAMS = ALSParams(factors=4, iterations=10, num_threads=1)


def board_window() -> SlidingWindow:
    """Like implicit's checker board: user u likes the items of u's parity, except item u."""
    window = SlidingWindow(200)
    window.extend(Event(f"u{u}", f"i{i}", 1.0 + (u + i) % 3)
                  for u in range(12) for i in range(u % 2, 12, 2) if i != u)
    return window


@pytest.fixture(scope="module")
def window() -> SlidingWindow:
    return board_window()


@pytest.fixture(scope="module")
def model(window: SlidingWindow) -> Model:
    return fit(window.build(), PARAMS)


class World:
    """A store, a log and an app wired like production, driven by hand."""

    def __init__(self, tmp: Path, model: Model, window: SlidingWindow, **cfg: object) -> None:
        self.tmp, self.model, self.window = tmp, model, window
        self.store = LocalStore(tmp / "store")
        self.log = MemLog()
        self.log.create_topic(TOPIC)
        config = Config(cache_dir=str(tmp / "cache"), reload_interval=0.05, **cfg)  # type: ignore[arg-type]
        self.app: Flask = create_app(config, store=self.store, sink=MemSink(self.log),
                                     source_factory=lambda offsets: MemSource(self.log, TOPIC))
        self.service: Service = self.app.extensions["streamrec"]
        self.client: FlaskClient = self.app.test_client()

    def publish(self, version: str, offsets: dict[int, int] | None = None) -> Path:
        path = self.tmp / "build" / version
        write_snapshot(path, self.model, self.window.contents(), offsets or {0: 0}, version)
        self.store.publish(path, version)
        return path

    def tick(self) -> bool:
        return self.service.reloader.check_once()

    def fold(self) -> int:
        assert self.service.foldin is not None
        return self.service.foldin.step() + self.service.foldin.step()

    @classmethod
    def serving(cls, tmp: Path, model: Model, window: SlidingWindow, **cfg: object) -> World:
        """A world that serves its first snapshot, with ``cfg`` for its `Config`."""
        w = cls(tmp, model, window, **cfg)
        w.publish("000000000001")
        assert w.tick()
        return w

    def get(self, url: str, status: int = 200) -> dict:
        r = self.client.get(url)
        assert r.status_code == status, r.get_data(as_text=True)
        assert r.is_json
        return r.get_json()


@pytest.fixture
def world(tmp_path: Path, model: Model, window: SlidingWindow) -> World:
    return World.serving(tmp_path, model, window)


@pytest.fixture
def empty(tmp_path: Path, model: Model, window: SlidingWindow) -> World:
    return World(tmp_path, model, window)


# --- readiness and model ------------------------------------------------------------------

def test_readyz_is_503_until_a_snapshot_is_loaded_then_200(empty: World):
    assert empty.get("/healthz") == {"status": "ok", "version": __version__}
    assert empty.get("/readyz", 503)["ready"] is False
    body = empty.get("/users/u0/recommendations", 503)
    assert body["error"] == "no_model" and body["message"]
    empty.publish("000000000001")
    assert empty.tick()
    assert empty.get("/readyz")["model_version"] == "000000000001"


def test_model_reports_version_sizes_and_age(world: World):
    body = world.get("/model")
    assert body["version"] == "000000000001"
    assert body["sizes"]["users"] == 12 and body["sizes"]["items"] == 12
    assert 0 <= body["age_seconds"] < 3600 and body["fresh_events"] == 0


# --- recommendations ----------------------------------------------------------------------

def test_user_recommendations_follow_the_users_taste_and_leave_seen_items_out(world: World):
    body = world.get("/users/u0/recommendations?n=3")
    assert body["model_version"] == "000000000001" and body["fallback"] is None
    assert body["fresh_events"] == 0 and body["user"] == "u0"
    items = [x["item"] for x in body["items"]]
    assert items[0] == "i0"  # the only even item u0 has not seen
    assert all(isinstance(x["score"], float) for x in body["items"])
    seen = {x["item"] for x in world.get("/users/u0/items")["items"]}
    assert not seen & set(items)
    assert len(world.get("/users/u0/recommendations?exclude_seen=false&n=12")["items"]) == 12


def test_query_form_answers_like_the_path_form(world: World):
    a = world.get("/users/u3/recommendations?n=4&exclude=i3")
    b = world.get("/recommendations?user=u3&n=4&exclude=i3")
    assert a.pop("recommendation_id") != b.pop("recommendation_id")  # one id per served list
    assert a == b and "i3" not in [x["item"] for x in a["items"]]


def test_whitelist_limits_the_candidates(world: World):
    body = world.get("/users/u1/recommendations?items=i1,i4,nope&exclude_seen=false")
    assert {x["item"] for x in body["items"]} == {"i1", "i4"}


def test_unknown_user_gets_popular_items_marked_as_fallback(world: World):
    body = world.get("/users/stranger/recommendations?n=2")
    assert body["fallback"] == "popular" and len(body["items"]) == 2


def test_original_service_endpoint_keeps_its_parameters_and_keys(world: World):
    body = world.get("/?userId=u0&recommendationsNumber=2")
    assert body == {"user_id": "u0", "recommended_items": [
        x["item"] for x in world.get("/users/u0/recommendations?n=2")["items"]]}
    assert world.get("/?userId=u0", 200)["recommended_items"]
    assert world.get("/?recommendationsNumber=2", 400)["error"] == "missing_parameter"


def test_session_recommendations_fold_in_anonymous_items(world: World):
    r = world.client.post("/recommendations", json={"items": ["i1", {"item": "i3", "weight": 2}],
                                                    "n": 3})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["fallback"] is None and body["fresh_events"] == 0
    odd = [x["item"] for x in body["items"]]
    assert "i1" not in odd and int(odd[0][1:]) % 2 == 1
    empty_session = world.client.post("/recommendations", json={"items": []}).get_json()
    assert empty_session["fallback"] == "popular"


@pytest.mark.parametrize("body", [
    None, [], {"items": "i1"}, {"items": [1]}, {"items": [{"item": "i1", "weight": -1}]},
    {"items": ["i1"], "n": 0}, {"items": ["i1"], "bogus": 1}, {"items": [""]},
])
def test_bad_session_bodies_are_400(world: World, body: object):
    r = world.client.post("/recommendations", data=json.dumps(body),
                          content_type="application/json")
    assert r.status_code == 400 and r.get_json()["error"]


@pytest.mark.parametrize("body", [
    {"items": ["i1"], "n": "5"}, {"items": ["i1"], "exclude_seen": "false"},
    {"items": ["i1"], "exclude_seen": 0},
])
def test_a_json_body_with_a_string_where_a_number_or_bool_belongs_is_400(world: World,
                                                                           body: object):
    r = world.client.post("/recommendations", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"] == "bad_body"
    assert ("n" if "n" in body else "exclude_seen") in r.get_json()["message"]


@pytest.mark.parametrize("url", [
    "/users/u0/recommendations?exclude=i1,,i2", "/users/u0/recommendations?items=i1,",
    "/recommendations/batch?users=u0,,u1", "/popular?exclude=,", "/items/i1/similar?exclude=i2,",
])
def test_an_empty_entry_in_a_list_parameter_is_a_400_not_dropped(world: World, url: str):
    body = world.get(url, 400)
    assert body["error"] == "bad_parameter" and "empty entry" in body["message"]


@pytest.mark.parametrize("url", ["/users/%20/recommendations", "/recommendations?user=%20%20",
                                 "/popular?exclude=i1,%20", "/?userId=%20"])
def test_a_whitespace_only_id_is_a_400(world: World, url: str):
    assert world.get(url, 400)["error"] == "bad_id"


@pytest.mark.parametrize(("url", "name"), [("/recommendations?user=", "user"),
                                           ("/?userId=", "userId")])
def test_a_required_parameter_given_empty_is_empty_parameter_not_missing(world: World,
                                                                          url: str, name: str):
    body = world.get(url, 400)
    assert body["error"] == "empty_parameter" and repr(name) in body["message"]
    assert world.get(url.split("?")[0], 400)["error"] == "missing_parameter"


def test_batch_answers_each_user_like_the_single_route(world: World):
    body = world.get("/recommendations/batch?users=u0,u1,ghost&n=3")
    assert set(body["results"]) == {"u0", "u1", "ghost"}
    single = world.get("/users/u1/recommendations?n=3")
    batch = body["results"]["u1"]["items"]
    assert [x["item"] for x in batch] == [x["item"] for x in single["items"]]
    assert [x["score"] for x in batch] == pytest.approx([x["score"] for x in single["items"]],
                                                        rel=1e-5)
    assert body["results"]["ghost"]["fallback"] == "popular"
    world.get("/recommendations/batch", 400)
    world.get("/recommendations/batch?users=" + ",".join(f"u{k}" for k in range(1001)), 400)


def test_similar_items_popular_and_because(world: World):
    sim = world.get("/items/i2/similar?n=3")
    assert len(sim["items"]) == 3 and "i2" not in [x["item"] for x in sim["items"]]
    assert world.get("/items/nope/similar", 404)["error"] == "unknown_item"
    pop = world.get("/popular?n=2")
    assert pop["fallback"] == "popular" and len(pop["items"]) == 2
    why = world.get("/users/u0/because/i0?n=2")
    assert len(why["items"]) == 2 and why["item"] == "i0"
    assert world.get("/users/u0/because/nope", 404)["error"] == "unknown_item"
    assert world.get("/users/ghost/because/i0", 404)["error"] == "unknown_user"
    assert world.get("/users/ghost/items", 404)["error"] == "unknown_user"


@pytest.mark.parametrize("url", [
    "/users/u0/recommendations?n=0", "/users/u0/recommendations?n=1001",
    "/users/u0/recommendations?n=ten", "/users/u0/recommendations?n=-1",
    "/users/u0/recommendations?exclude_seen=maybe", "/users/u0/recommendations?bogus=1",
    "/recommendations?n=3", "/popular?n=2.5", "/items/i1/similar?k=3",
    "/users/" + "x" * 300 + "/recommendations", "/users/u0/because/i0?n=0",
])
def test_bad_parameters_are_400_json(world: World, url: str):
    body = world.get(url, 400)
    assert set(body) == {"error", "message"}


def test_unknown_routes_methods_and_huge_bodies_answer_json(world: World):
    assert world.get("/nope", 404)["error"] == "not_found"
    r = world.client.delete("/popular")
    assert r.status_code == 405 and r.get_json()["error"] == "method_not_allowed"
    r = world.client.post("/interactions", data=b"[" + b"1," * (1 << 20) + b"1]",
                          content_type="application/json")
    assert r.status_code == 413 and r.get_json()["error"]


# --- ingest and fold-in -------------------------------------------------------------------

def test_posted_interactions_reach_the_log_keyed_by_user(world: World):
    r = world.client.post("/interactions", json=[{"user": "u0", "item": "i1"}, "u2:i5:2.5"])
    assert r.status_code == 202 and r.get_json()["accepted"] == 2
    msgs = world.log.topics[TOPIC][0]
    assert [(m.key, json.loads(m.value or b"")["item"]) for m in msgs] == [
        (b"u0", "i1"), (b"u2", "i5")]


@pytest.mark.parametrize("body", [{"user": "u0"}, [], "no-colon", [{"user": "u0", "item": "i1",
                                                                     "weight": 0}], 3])
def test_invalid_interactions_are_400_and_nothing_is_produced(world: World, body: object):
    r = world.client.post("/interactions", json=body)
    assert r.status_code == 400 and r.get_json()["error"] in ("invalid_event", "bad_body")
    assert world.log.topics[TOPIC][0] == []


def test_ingest_token_is_required_when_configured(tmp_path: Path, model: Model,
                                                 window: SlidingWindow):
    w = World(tmp_path, model, window, ingest_token="s3cret")
    event = {"user": "u0", "item": "i1"}
    assert w.client.post("/interactions", json=event).status_code == 401
    bad = w.client.post("/interactions", json=event, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401 and bad.get_json()["error"] == "unauthorized"
    ok = w.client.post("/interactions", json=event, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 202


def test_a_fresh_event_changes_the_users_list_and_is_counted(world: World):
    before = world.get("/users/u0/recommendations?n=3")
    r = world.client.post("/interactions", json=[{"user": "u0", "item": f"i{k}", "weight": 5}
                                                 for k in (1, 3, 5, 7)])
    assert r.status_code == 202
    assert world.fold() == 4
    after = world.get("/users/u0/recommendations?n=3")
    assert after["fresh_events"] == 4 and after["items"] != before["items"]
    assert not {"i1", "i3", "i5", "i7"} & {x["item"] for x in after["items"]}
    assert world.get("/users/u0/items")["fresh_events"] == 4
    assert world.get("/model")["fresh_events"] == 4


def test_a_new_user_is_known_from_their_first_event(world: World):
    world.client.post("/interactions", json={"user": "newbie", "item": "i1", "weight": 3})
    world.fold()
    body = world.get("/users/newbie/recommendations?n=3")
    assert body["fallback"] is None and body["fresh_events"] == 1


def test_events_in_a_new_snapshot_are_not_counted_twice(world: World):
    world.client.post("/interactions", json=[{"user": "u0", "item": "i1"}] * 3)
    world.fold()
    assert world.get("/users/u0/recommendations")["fresh_events"] == 3
    world.publish("000000000002", offsets={0: 2})  # the trainer read two of the three
    assert world.tick()
    assert world.get("/users/u0/recommendations")["fresh_events"] == 1
    world.publish("000000000003", offsets={0: 3})
    assert world.tick()
    body = world.get("/users/u0/recommendations")
    assert body["fresh_events"] == 0 and body["model_version"] == "000000000003"


def test_background_consumer_folds_events_in_without_help(world: World):
    world.service.start()
    try:
        world.client.post("/interactions", json={"user": "u5", "item": "i2"})
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if world.get("/users/u5/recommendations")["fresh_events"] == 1:
                break
            time.sleep(0.02)
        assert world.get("/users/u5/recommendations")["fresh_events"] == 1
    finally:
        world.service.stop()


# --- hot reload ---------------------------------------------------------------------------

def test_hot_reload_serves_v2_and_refuses_a_corrupt_v3(world: World):
    world.publish("000000000002")
    assert world.tick()
    assert world.get("/users/u0/recommendations")["model_version"] == "000000000002"
    world.publish("000000000003")
    npy = world.store.root / "snapshots" / "000000000003" / "als.user_factors.npy"
    data = bytearray(npy.read_bytes())
    data[-1] ^= 0xFF  # same size, wrong checksum
    npy.write_bytes(bytes(data))
    assert not world.tick()
    assert "000000000003" in world.service.reloader.refused
    assert world.get("/users/u0/recommendations")["model_version"] == "000000000002"
    assert world.get("/readyz")["model_version"] == "000000000002"


def test_a_request_that_captured_v1_finishes_on_v1(world: World):
    captured = world.service.holder.current()
    assert captured is not None
    expected = captured.snapshot.model.recommend("u0", n=3)
    world.publish("000000000002")
    world.store.prune(1)  # v1 leaves the store; the replica's mapped copy stays valid
    assert world.tick()
    assert world.service.holder.current().version == "000000000002"  # type: ignore[union-attr]
    assert captured.version == "000000000001"
    assert captured.snapshot.model.recommend("u0", n=3) == expected


def test_background_reloader_picks_up_a_new_version(world: World):
    world.service.start()
    try:
        world.publish("000000000002")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and world.get("/model")["version"] != "000000000002":
            time.sleep(0.02)
        assert world.get("/model")["version"] == "000000000002"
    finally:
        world.service.stop()


def test_concurrent_requests_during_reloads_never_fail(world: World):
    failures: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        client = world.app.test_client()
        while not stop.is_set():
            r = client.get("/users/u1/recommendations?n=5")
            if r.status_code != 200:
                failures.append(r.status_code)

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    for v in range(2, 6):
        world.publish(f"{v:012d}")
        assert world.tick()
    stop.set()
    for t in threads:
        t.join(10)
    assert failures == []


# --- metrics and the OpenAPI document -----------------------------------------------------

def _sample(name: str, **labels: str) -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_requests_by_route_rule_and_status(world: World):
    route = {"route": "/users/<user>/recommendations", "method": "GET", "status": "200"}
    before = _sample("streamrec_http_requests_total", **route)
    slow = _sample("streamrec_http_request_seconds_count", **route)
    world.get("/users/u0/recommendations")
    world.get("/users/someone-else/recommendations")
    world.get("/items/nope/similar", 404)
    r = world.client.get("/metrics")
    text = r.get_data(as_text=True)
    assert r.status_code == 200
    assert _sample("streamrec_http_requests_total", **route) == before + 2
    assert _sample("streamrec_http_request_seconds_count", **route) == slow + 2
    assert 'route="/items/<item>/similar"' in text and 'status="404"' in text
    assert "someone-else" not in text  # never the raw path


def test_metrics_name_the_served_version_and_its_age(world: World):
    assert _sample("streamrec_model_info", version="000000000001") == 1.0
    world.publish("000000000002")
    assert world.tick()
    assert _sample("streamrec_model_info", version="000000000002") == 1.0
    assert _sample("streamrec_model_info", version="000000000001") == 0.0  # gone
    text = world.client.get("/metrics").get_data(as_text=True)
    assert "streamrec_snapshot_age_seconds " in text


def test_metrics_count_reload_successes_and_refusals(world: World):
    loaded = _sample("streamrec_snapshot_reloads_total", result="loaded")
    refused = _sample("streamrec_snapshot_reloads_total", result="refused")
    world.publish("000000000002")
    assert world.tick()
    world.publish("000000000003")
    (world.store.root / "snapshots" / "000000000003" / "als.item_factors.npy").write_bytes(b"x")
    assert not world.tick()
    assert _sample("streamrec_snapshot_reloads_total", result="loaded") == loaded + 1
    assert _sample("streamrec_snapshot_reloads_total", result="refused") == refused + 1


def test_metrics_report_fold_in_lag_in_messages_and_seconds(world: World):
    foldin = world.service.foldin
    assert foldin is not None
    world.client.post("/interactions", json=[{"user": "u0", "item": "i1"}] * 3)
    foldin.step()  # opens the source at the snapshot's offsets, reads all three
    foldin.report_lag()
    assert _sample("streamrec_foldin_lag_messages") == 0.0
    assert _sample("streamrec_foldin_lag_seconds") == 0.0
    world.client.post("/interactions", json={"user": "u0", "item": "i3"})
    foldin.last_event_ts = 1_000.0
    foldin.report_lag(now=1_004.0)
    assert _sample("streamrec_foldin_lag_messages") == 1.0
    assert _sample("streamrec_foldin_lag_seconds") == 4.0


def _openapi_path(rule: str) -> str:
    import re

    return re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule)


def test_every_route_is_documented_in_openapi_and_vice_versa(world: World):
    doc = world.get("/openapi.json")
    assert doc["openapi"].startswith("3.1")
    routes: set[tuple[str, str]] = set()
    for rule in world.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                routes.add((_openapi_path(rule.rule), method.lower()))
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes == documented


def test_a_served_snapshot_keeps_the_model_but_not_the_trainers_window(world: World):
    served = world.service.holder.current()
    assert served is not None
    window = served.snapshot.window
    assert len(window) == 0 and window.user_ids == [] and window.item_ids == []
    assert window.capacity == world.window.contents().capacity
    assert len(served.snapshot.model.user_ids) == 12


def test_gunicorn_heartbeat_goes_to_a_writable_memory_directory_when_there_is_one(tmp_path):
    from streamrec.serving.server import heartbeat_dir

    assert heartbeat_dir(str(tmp_path)) == str(tmp_path)
    assert heartbeat_dir(str(tmp_path / "missing")) is None
