"""Issue 16 at the HTTP edge: extreme accepted input never gives a 500, bad input a clear 400."""

from __future__ import annotations

import pytest
import test_serving_api as serving_api
from test_serving_api import World

from streamrec.adapters.stores import LocalStore
from streamrec.core.domains import MAX_WEIGHT
from streamrec.core.snapshot.trainingstatus import TrainingStatus

# The serving tests' small real model and the app wired around it, shared.
window, model, world = serving_api.window, serving_api.model, serving_api.world


def _error(world: World, response, status: int = 400) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error", "message"}
    return body


def test_the_1e30_event_is_a_400_naming_the_weight_domain_not_a_202(world: World):
    r = world.client.post("/interactions", json={"user": "u1", "item": "50", "weight": 1e30})
    body = _error(world, r)
    assert body["error"] == "invalid_event" and "[-1e6, 1e6]" in body["message"]
    assert world.service.sink is not None and world.log.end_offsets("interactions") == {0: 0}


def test_a_ts_in_milliseconds_or_far_ahead_is_a_400(world: World):
    r = world.client.post("/interactions", json={"user": "u", "item": "i1", "ts": 1.75e12})
    assert "milliseconds" in _error(world, r)["message"]
    r = world.client.post("/interactions", json={"user": "u", "item": "i1", "ts": 4.1e9})
    assert "future_timestamp" in _error(world, r)["message"]


def test_the_heaviest_accepted_history_gets_a_ranked_list_on_every_user_route(world: World):
    events = [{"user": "u1", "item": f"i{k % 12}", "weight": MAX_WEIGHT} for k in range(600)]
    for start in range(0, 600, 200):
        assert world.client.post("/interactions", json=events[start:start + 200]).status_code == 202
    world.fold()
    for url in ("/users/u1/recommendations?n=3", "/recommendations?user=u1&n=3&exclude_seen=false",
                "/?userId=u1&recommendationsNumber=3", "/users/u1/because/i2",
                "/recommendations/batch?users=u1,u2&n=3"):
        assert world.client.get(url).status_code == 200, url
    body = world.get("/users/u1/recommendations?n=3&exclude_seen=false")
    assert len(body["items"]) == 3 and body["fallback"] is None


def test_a_session_at_the_weight_limit_is_answered_and_above_it_refused(world: World):
    ok = world.client.post("/recommendations",
                           json={"items": [{"item": "i1", "weight": MAX_WEIGHT}] * 50, "n": 3})
    assert ok.status_code == 200 and len(ok.get_json()["items"]) == 3
    r = world.client.post("/recommendations", json={"items": [{"item": "50", "weight": 1e20}],
                                                    "n": 3})
    assert "(0, 1e6]" in _error(world, r)["message"]
    r = world.client.post("/recommendations", json={"items": [{"item": "i1", "weight": 10**400}]})
    _error(world, r)


def test_an_unknown_body_key_is_reported_as_a_body_key(world: World):
    r = world.client.post("/recommendations", json={"items": ["i1"], "nn": 3})
    assert _error(world, r)["message"] == "unknown body key(s): nn"


@pytest.mark.parametrize("body", [b'{"user": "u1", "item": "i', b"", b"\xff\xfe", b"[1,"])
def test_a_body_that_is_not_json_is_reported_as_invalid_json(world: World, body: bytes):
    for url in ("/interactions", "/recommendations"):
        r = world.client.post(url, data=body, content_type="application/json")
        assert _error(world, r)["error"] == "bad_json", url


@pytest.mark.parametrize(("query", "code"), [
    ("n=", "empty_parameter"), ("n=3&n=5", "repeated_parameter"), ("exclude=", "empty_parameter"),
    ("n=%C2%B2", "bad_parameter"), ("n=" + "9" * 5000, "bad_parameter"),
    ("n=%D9%A3", "bad_parameter")])
def test_empty_repeated_and_non_ascii_query_values_are_refused(world: World, query, code):
    for path in ("/users/u1/recommendations", "/popular"):
        assert _error(world, world.client.get(f"{path}?{query}"))["error"] == code


def test_more_than_500_fresh_events_never_bring_back_a_seen_item(world: World):
    # u3 took i0, i2, i4, i6 (not in its snapshot row), then i8 500 times: the fold-in history
    # keeps only the newest 500 events, yet all five items stay seen.
    taken = ["i0", "i2", "i4", "i6"] + ["i8"] * 500
    for start in range(0, len(taken), 200):
        world.client.post("/interactions",
                          json=[{"user": "u3", "item": i} for i in taken[start:start + 200]])
    world.fold()
    assert world.service.fresh.count("u3") == 500
    assert world.service.fresh.beyond_history("u3") == ["i0", "i2", "i4", "i6"]
    for url in ("/users/u3/recommendations?n=1000", "/?userId=u3&recommendationsNumber=1000"):
        body = world.get(url)
        got = {x["item"] for x in body["items"]} if "items" in body else set(
            body["recommended_items"])
        assert got and not set(taken) & got, url
    batch = world.get("/recommendations/batch?users=u3,u1&n=1000")["results"]
    assert not set(taken) & {x["item"] for x in batch["u3"]["items"]}


def test_model_shows_its_age_and_the_last_fit_error(world: World):
    assert isinstance(world.store, LocalStore)
    body = world.get("/model")
    assert body["age_seconds"] >= 0 and body["last_fit_error"] is None
    assert body["training"]["available"] is False
    report = TrainingStatus().succeeded("000000000001", 1.0, None).failed(
        "nonfinite_factors", "fit failed (nonfinite_factors): NaN", 2.0)
    world.store.put_training_status(report.to_bytes())
    world.service._training = None  # the cached report is one reload interval old
    body = world.get("/model")
    assert body["last_fit_error"] == {"reason": "nonfinite_factors", "at": 2.0, "failing": True,
                                      "message": "fit failed (nonfinite_factors): NaN"}
    assert body["training"]["failures"] == 1 and body["training"]["version"] == "000000000001"


def test_ids_in_query_lists_are_checked_like_every_other_id(world: World):
    body = _error(world, world.client.get("/users/u1/recommendations?exclude=i1,%01x"))
    assert body["error"] == "bad_id"
    body = _error(world, world.client.get("/popular?exclude=" + "x" * 300))
    assert body["error"] == "bad_id" and "256" in body["message"]


@pytest.mark.parametrize("url", ["/recommendations?n=2", "/interactions?weight=5"])
def test_a_query_string_on_a_post_route_is_refused_not_ignored(world: World, url: str):
    body = {"items": ["i1"]} if url.startswith("/recommendations") else {"user": "u", "item": "i1"}
    r = world.client.post(url, json=body)
    assert _error(world, r)["error"] == "unknown_parameter"
    assert world.log.end_offsets("interactions") == {0: 0}  # nothing was ingested
