"""Writes only from the application, ids with "/", and unambiguous bodies, on both real servers.

`streamrec serve` (gunicorn, real Kafka) and `streamrec run` (waitress, the embedded log) get the
same requests over real sockets: a browser page of another site trying a "simple" write, bodies
that are not declared JSON, a chunked body past the limit, duplicate keys, ids holding "/" and
path bytes that are not UTF-8. Nothing refused may reach the log: each check ends by writing a
sentinel event and waiting until it is folded in, so a refused event would have been too.
"""

from __future__ import annotations

import contextlib
import json
import socket
import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests
from tests.support.embedded import Embedded, until
from tests.support.serving import publish_snapshot, serve

from streamrec.adapters.stores import LocalStore
from streamrec.serving.http.writes import MAX_BODY

SERVERS = ["gunicorn", "waitress"]
#: Allowed by env under gunicorn, by flag under waitress: both ways a setting arrives.
SHOP = "https://shop.example"


@pytest.fixture(scope="module", params=SERVERS)
def base(request, tmp_path_factory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "gunicorn":
        kafka = request.getfixturevalue("kafka")
        store = LocalStore(tmp / "store")
        publish_snapshot(store, tmp / "build", 1)
        topic = kafka.create_topic(f"guards-{uuid.uuid4().hex[:8]}")
        with serve(tmp, store.root, bootstrap=kafka.bootstrap, topic=topic, workers=1,
                   env={"STREAMREC_ALLOWED_ORIGINS": SHOP}) as s:
            yield s.base
    else:
        e = Embedded(tmp / "data", "--allowed-origins", SHOP)
        try:
            for k in range(3):  # a first snapshot, so that every route has a model
                r = requests.post(f"{e.url}/interactions", timeout=10, json=[
                    {"user": f"seed{u}", "item": f"i{(u + k) % 7}"} for u in range(40)])
                assert r.status_code == 202, r.text
            until("a snapshot", lambda: requests.get(f"{e.url}/readyz", timeout=5).ok, 120)
            yield e.url
        finally:
            e.cleanup()


def _folded(base: str, user: str) -> bool:
    """``user``'s event reached the model: folded in, or (under `streamrec run`, whose trainer
    retrains every second) already in a newer snapshot, where it is no longer fresh."""
    r = requests.get(f"{base}/users/{quote(user, safe='')}/items", timeout=5)
    return r.status_code == 200 and bool(r.json()["fresh"] or r.json()["items"])


def assert_nothing_written(base: str, user: str) -> None:
    """A sentinel posted after the refused writes is folded in; ``user``'s events are not."""
    sentinel = f"sentinel-{uuid.uuid4().hex[:8]}"
    assert requests.post(f"{base}/interactions", json={"user": sentinel, "item": "i1"},
                         timeout=10).status_code == 202
    until("the sentinel's fold-in", lambda: _folded(base, sentinel), 30)
    assert requests.get(f"{base}/users/{quote(user, safe='')}/items",
                        timeout=5).status_code == 404


def _raw(base: str, head: bytes, chunks: list[bytes]) -> tuple[int, bytes]:
    """Send a request head and its body in chunked framing over a socket; (status, body)."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as s:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            s.sendall(head)
            for chunk in chunks:
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            s.sendall(b"0\r\n\r\n")
        data = b""
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            while part := s.recv(65536):
                data += part
    status = data.split(b"\r\n", 1)[0].split()
    return (int(status[1]) if len(status) > 1 else 0), data.split(b"\r\n\r\n", 1)[-1]


CHUNKED = (b"POST /interactions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")


def test_a_cross_site_simple_write_from_a_browser_page_is_refused(base: str):
    # What a page elsewhere can send with fetch(..., {mode: "no-cors"}): text/plain, its Origin.
    user = f"csrf-{uuid.uuid4().hex[:8]}"
    for headers in ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site",
                     "Content-Type": "text/plain;charset=UTF-8"},
                    {"Origin": "https://evil.example", "Content-Type": "application/json"},
                    {"Sec-Fetch-Site": "cross-site", "Content-Type": "application/json"}):
        r = requests.post(f"{base}/interactions", data=json.dumps({"user": user, "item": "i1"}),
                          headers=headers, timeout=10)
        assert r.status_code == 403, r.text
        assert r.json()["error"] == "cross_site"
        r = requests.delete(f"{base}/items/i1", headers=headers, timeout=10)
        assert r.status_code == 403
    assert_nothing_written(base, user)


def test_the_servers_own_page_and_plain_clients_may_write(base: str):
    host = base.removeprefix("http://")
    user = f"own-{uuid.uuid4().hex[:8]}"
    for headers in ({"Origin": base, "Sec-Fetch-Site": "same-origin"}, {"Origin": base}, {}):
        r = requests.post(f"{base}/interactions", json={"user": user, "item": "i2"},
                          headers=headers, timeout=10)
        assert r.status_code == 202, (headers, host, r.text)
    until("the fold-in", lambda: _folded(base, user), 30)


@pytest.mark.parametrize("ctype", [None, "text/plain", "application/x-www-form-urlencoded",
                                   "multipart/form-data; boundary=b"])
def test_a_body_not_declared_json_is_a_415(base: str, ctype: str | None):
    user = f"ctype-{uuid.uuid4().hex[:8]}"
    body = json.dumps({"user": user, "item": "i1"}).encode()
    headers = {} if ctype is None else {"Content-Type": ctype}
    r = requests.post(f"{base}/interactions", data=body, headers=headers, timeout=10)
    assert r.status_code == 415, r.text
    assert r.json()["error"] == "unsupported_media_type"
    assert_nothing_written(base, user)


def test_a_chunked_body_past_the_limit_is_a_413_and_one_within_it_is_read(base: str):
    user = f"chunked-{uuid.uuid4().hex[:8]}"
    event = json.dumps({"user": user, "item": "i3"}).encode()
    # Valid JSON all the way (a list padded with spaces), so only the size can refuse it.
    big = [b"[" + event] + [b" " * 65536] * (MAX_BODY // 65536 + 2) + [b"]"]
    status, body = _raw(base, CHUNKED, big)
    assert status == 413, body[:300]
    assert json.loads(body)["error"] == "request_entity_too_large"
    status, body = _raw(base, CHUNKED, [b"[" + event, b" " * 1000, b"]"])
    assert status == 202, body[:300]
    until("the fold-in", lambda: _folded(base, user), 30)


def test_a_content_length_past_the_limit_is_a_413(base: str):
    r = requests.post(f"{base}/interactions", data=b" " * (MAX_BODY + 1),
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 413


@pytest.mark.parametrize(("body", "code"), [
    ('{{"user": "{u}", "user": "other", "item": "i1"}}', "duplicate_key"),
    ('[{{"user": "{u}", "item": "i1", "weight": 1, "weight": 5}}]', "duplicate_key"),
    ('{{"user": "{u}", "item": "i1", "ts": 1, "timestamp": 2}}', "invalid_event"),
    ('{{"user": "{u}", "item": "i1", "weight": 1, "rating": 4}}', "invalid_event"),
])
def test_an_ambiguous_body_is_a_400_and_nothing_is_written(base: str, body: str, code: str):
    user = f"dup-{uuid.uuid4().hex[:8]}"
    r = requests.post(f"{base}/interactions", data=body.format(u=user), timeout=10,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == code
    assert_nothing_written(base, user)
    assert requests.get(f"{base}/users/other/items", timeout=5).status_code == 404


@pytest.mark.parametrize("user", ["org/u1", "/x", "y/", "a/items", "%2F", "é/ü"])
def test_every_user_route_answers_for_an_id_holding_a_slash(base: str, user: str):
    user = f"{user}-{uuid.uuid4().hex[:6]}"
    path = quote(user, safe="")
    assert requests.post(f"{base}/interactions", json={"user": user, "item": "i1"},
                         timeout=10).status_code == 202
    until("the fold-in", lambda: _folded(base, user), 30)
    recs = requests.get(f"{base}/users/{path}/recommendations?n=3", timeout=5)
    assert recs.status_code == 200 and recs.json()["user"] == user, recs.text
    known = requests.get(f"{base}/users/{path}/items", timeout=5)
    assert known.status_code == 200 and known.json()["user"] == user
    why = requests.get(f"{base}/users/{path}/because/i1", timeout=5)
    assert why.status_code in (200, 404) and why.json().get("error") != "method_not_allowed"
    assert requests.delete(f"{base}/users/{path}", timeout=10).json()["id"] == user


@pytest.mark.parametrize("path", ["/users/%FF/recommendations", "/users/%C3%28/items",
                                  "/users/u1/because/%80", "/items/%FE/similar",
                                  "/items/%C0%AF"])
def test_a_path_id_that_is_not_utf8_is_a_400(base: str, path: str):
    r = requests.get(base + path, timeout=5)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_id"


def test_an_allowed_origin_passes_its_preflight_and_writes(base: str):
    user = f"shop-{uuid.uuid4().hex[:8]}"
    pre = requests.options(f"{base}/interactions", timeout=10, headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type"})
    assert pre.headers.get("Access-Control-Allow-Origin") == SHOP, pre.headers
    assert "POST" in pre.headers["Access-Control-Allow-Methods"]
    r = requests.post(f"{base}/interactions", json={"user": user, "item": "i1"}, timeout=10,
                      headers={"Origin": SHOP, "Sec-Fetch-Site": "cross-site"})
    assert r.status_code == 202, r.text
    assert r.headers["Access-Control-Allow-Origin"] == SHOP
    until("the fold-in", lambda: _folded(base, user), 30)
    other = requests.options(f"{base}/interactions", timeout=10, headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in other.headers
