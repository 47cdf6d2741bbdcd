"""Who may write, ids in paths and unambiguous bodies, on the app with a real model (test client).

The same behaviour under real gunicorn and waitress, chunked bodies and a browser's headers
included, is in tests/faults/test_write_guards.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.unit import test_serving_api as api
from tests.unit.test_serving_api import World

from streamrec.core.scoring.model import Model
from streamrec.core.window.sliding import SlidingWindow

EVENT = b'{"user": "u1", "item": "i3"}'
# The serving API tests' fixtures (model and window module-scoped), shared, not copied.
model, window = api.model, api.window


world = api.world
_world = World.serving


def _post(world: World, body: bytes = EVENT, path: str = "/interactions", **headers: str):  # type: ignore[no-untyped-def]
    return world.client.post(path, data=body, headers=headers)


def _produced(world: World) -> int:
    """Records on every topic of the world's log (events, item records, erasures)."""
    return sum(sum(world.log.end_offsets(t).values()) for t in
               ("interactions", "interactions.items"))


# --- content type ---------------------------------------------------------------------------

@pytest.mark.parametrize("ctype", [
    "application/json", "application/json; charset=utf-8", "Application/JSON",
    "application/json;charset=UTF-8",
])
def test_a_json_body_is_accepted_with_or_without_a_charset(world: World, ctype: str):
    assert _post(world, **{"Content-Type": ctype}).status_code == 202


@pytest.mark.parametrize("ctype", [
    None, "text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x", "application/jsonp", "application/json-patch+json",
    "text/json",
])
@pytest.mark.parametrize("path", ["/interactions", "/items", "/recommendations"])
def test_a_body_that_is_not_declared_json_is_a_415_and_nothing_is_written(
    world: World, ctype: str | None, path: str
):
    headers = {} if ctype is None else {"Content-Type": ctype}
    body = b'[{"item": "i1"}]' if path == "/items" else EVENT
    r = _post(world, body, path, **headers)
    assert r.status_code == 415, r.get_data(as_text=True)
    assert r.get_json()["error"] == "unsupported_media_type"
    assert _produced(world) == 0


def test_a_put_with_a_text_body_is_a_415(world: World):
    r = world.client.put("/items/i1", data=b'{"item": "i1"}', content_type="text/plain")
    assert r.status_code == 415


def test_a_delete_without_a_body_needs_no_content_type(world: World):
    assert world.client.delete("/users/u1").status_code == 202


# --- cross-site browser requests ------------------------------------------------------------

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize("headers", [
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example"},
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "null"},  # sandboxed frames, file: pages
    {"Origin": "http://localhost:8080"},  # same host, another port: another origin
    {"Origin": "http://localhost.evil.example"},
    {"Origin": "http://localhost:80", "Sec-Fetch-Site": "cross-site"},  # Fetch Metadata wins
    {"Origin": "garbage"},
])
def test_a_cross_site_browser_write_is_a_403_and_nothing_is_written(world: World, headers):
    r = _post(world, **JSON, **headers)
    assert r.status_code == 403, r.get_data(as_text=True)
    assert r.get_json()["error"] == "cross_site"
    assert world.client.delete("/users/u1", headers=headers).status_code == 403
    assert world.client.put("/items/i1", json={"item": "i1"}, headers=headers).status_code == 403
    assert _produced(world) == 0


@pytest.mark.parametrize("headers", [
    {},  # curl, a backend: no browser headers at all
    {"Sec-Fetch-Site": "same-origin", "Origin": "http://localhost"},  # the console
    {"Origin": "http://localhost"},  # an older browser: no Fetch Metadata
    {"Origin": "HTTP://LOCALHOST:80/"},
    {"Sec-Fetch-Site": "none"},  # typed by the user
    {"Sec-Fetch-Site": "same-origin"},
])
def test_same_origin_and_non_browser_writes_pass(world: World, headers):
    assert _post(world, **JSON, **headers).status_code == 202


def test_an_allowed_origin_may_write_cross_site_and_no_other(tmp_path: Path, model: Model,
                                                             window: SlidingWindow):
    w = _world(tmp_path, model, window,
               allowed_origins=("https://shop.example", "http://127.0.0.1:3000"))
    for origin in ("https://shop.example", "https://SHOP.example:443", "http://127.0.0.1:3000"):
        r = _post(w, **JSON, Origin=origin, **{"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 202, (origin, r.get_data(as_text=True))
    for origin in ("http://shop.example", "https://shop.example:8443", "https://x.shop.example",
                   "http://127.0.0.1:3001"):
        assert _post(w, **JSON, Origin=origin).status_code == 403, origin


def test_reads_are_never_guarded(world: World):
    headers = {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}
    assert world.client.get("/users/u1/recommendations", headers=headers).status_code == 200


# --- ids in paths ----------------------------------------------------------------------------

def test_every_user_route_works_for_an_id_holding_a_slash(world: World):
    world.client.post("/interactions", json={"user": "org/u9", "item": "i1", "weight": 5})
    world.fold()
    recs = world.get("/users/org%2Fu9/recommendations?n=3")
    assert recs["user"] == "org/u9" and recs["fresh_events"] == 1
    assert world.get("/users/org%2Fu9/items")["fresh"] == [{"item": "i1", "weight": 5.0}]
    why = world.get("/users/org%2Fu9/because/i3")
    assert why["user"] == "org/u9" and why["item"] == "i3"
    # The same ids with the slash percent-encoded twice are other ids: "org%2Fu9" itself.
    assert world.get("/users/org%252Fu9/recommendations")["user"] == "org%2Fu9"


@pytest.mark.parametrize("user", ["a/b", "/lead", "trail/", "a//b", "u/items", "x/recommendations",
                                  "a/because/b", "%", "é/ü", "a?b", "a#b", "a b"])
def test_any_valid_user_id_round_trips_through_every_user_route(world: World, user: str):
    from urllib.parse import quote

    path = quote(user, safe="")
    assert world.get(f"/users/{path}/recommendations")["user"] == user
    assert world.get(f"/users/{path}/items", 404)["error"] == "unknown_user"
    assert world.get(f"/users/{path}/because/i3", 404)["error"] == "unknown_user"
    r = world.client.delete(f"/users/{path}")
    assert r.status_code == 202 and r.get_json()["id"] == user


@pytest.mark.parametrize("item", ["sku/7", "a/similar", "/x", "x/"])
def test_any_valid_item_id_round_trips_through_every_item_route(world: World, item: str):
    from urllib.parse import quote

    path = quote(item, safe="")
    assert world.client.put(f"/items/{path}", json={"item": item}).status_code == 202
    assert world.get(f"/items/{path}/similar", 404)["error"] == "unknown_item"
    assert world.get(f"/users/u1/because/{path}", 404)["error"] == "unknown_item"
    assert world.client.delete(f"/items/{path}").get_json()["id"] == item


@pytest.mark.parametrize("path", [
    "/users/%FF/recommendations", "/users/%C3%28/items", "/users/u1/because/%80",
    "/items/%FFx/similar", "/items/%ED%A0%80", "/users/%C0%AF/recommendations",
])
def test_a_path_id_that_is_not_utf8_is_a_400_never_a_replacement(world: World, path: str):
    r = world.client.get(path)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["error"] == "bad_id"
    assert "UTF-8" in r.get_json()["message"]
    assert world.client.delete("/users/%FF").status_code == 400


def test_a_route_suffix_is_not_swallowed_into_an_id(world: World):
    r = world.client.delete("/users/u1/recommendations")
    assert r.status_code == 405 and "GET" in r.headers["Allow"]


# --- unambiguous bodies ----------------------------------------------------------------------

@pytest.mark.parametrize(("path", "body", "key"), [
    ("/interactions", b'{"user": "a", "user": "b", "item": "i1"}', "user"),
    ("/interactions", b'[{"user": "a", "item": "i1", "item": "i2"}]', "item"),
    ("/interactions", b'{"user": "a", "item": "i1", "weight": 1, "weight": 9}', "weight"),
    ("/recommendations", b'{"items": ["i1"], "n": 3, "n": 5}', "n"),
    ("/items", b'[{"item": "i1", "title": "a", "title": "b"}]', "title"),
    ("/items", b'[{"item": "i1", "labels": {"k": "a", "k": "b"}}]', "k"),
])
def test_a_key_given_twice_in_a_json_body_is_a_400_naming_it(world: World, path, body, key):
    r = _post(world, body, path, **JSON)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["error"] == "duplicate_key"
    assert repr(key) in r.get_json()["message"]
    assert _produced(world) == 0


@pytest.mark.parametrize("fields", ['"ts": 1, "timestamp": 1', '"weight": 2, "rating": 2',
                                    '"timestamp": 1, "ts": 2', '"rating": 1, "weight": 1'])
def test_a_field_with_its_alias_in_an_event_is_a_400(world: World, fields: str):
    r = _post(world, f'{{"user": "u", "item": "i1", {fields}}}'.encode(), **JSON)
    assert r.status_code == 400
    assert "ambiguous_field" in r.get_json()["message"]
    assert _produced(world) == 0


def test_a_body_past_the_limit_is_a_413_and_one_at_the_limit_is_read(world: World):
    from streamrec.serving.http.writes import MAX_BODY

    at_limit = b'{"user": "u1", "item": "i3"}'.ljust(MAX_BODY)
    assert _post(world, at_limit, **JSON).status_code == 202
    assert _post(world, at_limit + b" ", **JSON).status_code == 413


def test_only_an_allowed_origin_gets_cors_so_only_its_page_can_send_json_writes(
    tmp_path: Path, model: Model, window: SlidingWindow
):
    w = _world(tmp_path, model, window, allowed_origins=("https://shop.example",))
    preflight = {"Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type,authorization"}
    r = w.client.options("/interactions", headers={"Origin": "https://shop.example", **preflight})
    assert r.status_code == 200
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert {"content-type", "authorization"} <= {
        h.strip().lower() for h in r.headers["Access-Control-Allow-Headers"].split(",")}
    assert "Origin" in r.headers["Vary"]
    r = _post(w, **JSON, Origin="https://shop.example")
    assert r.status_code == 202 and r.headers["Access-Control-Allow-Origin"] == \
        "https://shop.example"
    for origin in ("https://evil.example", "null"):
        r = w.client.options("/interactions", headers={"Origin": origin, **preflight})
        assert "Access-Control-Allow-Origin" not in r.headers
    # Without an allow-list, no CORS header at all, for anyone.
    plain = _world(tmp_path / "plain", model, window)
    r = plain.client.options("/interactions", headers={"Origin": "https://shop.example",
                                                       **preflight})
    assert "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize("url", ["/recommendations?user=%FF", "/?userId=%C3%28",
                                 "/recommendations/batch?users=u1,%80", "/popular?exclude=%FE",
                                 "/users/u1/recommendations?items=%ED%A0%80"])
def test_a_query_id_that_is_not_utf8_is_a_400_never_the_literal_escape(world: World, url: str):
    r = world.client.get(url)
    assert r.status_code == 400, r.get_data(as_text=True)
    assert r.get_json()["error"] == "bad_id"


@pytest.mark.parametrize(("host", "origin", "status"), [
    ("shop.example:80", "http://shop.example", 202),
    ("shop.example", "http://shop.example:80", 202),
    ("shop.example:443", "https://shop.example", 202),
    ("SHOP.example", "http://shop.EXAMPLE", 202),
    ("shop.example:8080", "http://shop.example", 403),
    ("shop.example", "http://shop.example:8080", 403),
    ("[::1]:8000", "http://[::1]:8000", 202), ("bad host/x", "http://shop.example", 403),
])
def test_the_servers_own_origin_is_its_host_with_default_ports_normalised(
    world: World, host: str, origin: str, status: int
):
    r = world.client.post("/interactions", data=EVENT, headers={**JSON, "Origin": origin},
                          environ_overrides={"HTTP_HOST": host})
    assert r.status_code == status, r.get_data(as_text=True)
