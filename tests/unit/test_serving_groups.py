"""Serving groups: who owns a user, the forwarding hop between two real HTTP servers, its 503,
the batch split by owner, fold-in of a group's own users only, and the settings' rules.

Two apps over the same snapshot, each served by werkzeug on 127.0.0.1 (real HTTP between
them): group 0 is asked through its test client and forwards to group 1's server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.infra.process import free_port
from tests.unit.test_serving_api import PARAMS, World, board_window
from werkzeug.serving import make_server

from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.config import Config, ConfigError
from streamrec.core.events.partitioning import partition_for
from streamrec.core.groups import GroupLayout
from streamrec.core.scoring.model import Model
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.groups.forward import FORWARDED_HEADER, GROUP_HEADER
from streamrec.serving.http.groups import BATCH_ROUTE, LOCAL_USER_ROUTES, USER_ROUTES

#: With 4 partitions and 2 groups (murmur2, as Kafka's Java client): u5 and u11 are group 1's.
GROUP_1_USERS = ("u5", "u11")
GROUP_0_USERS = ("u0", "u1", "u2")


@pytest.fixture(scope="module")
def board() -> tuple[Model, SlidingWindow]:
    """The serving API tests' checker board and its model (``test_serving_api.py``)."""
    window = board_window()
    return fit(window.build(), PARAMS), window


# --- who owns whom (pure) -----------------------------------------------------------------

def test_a_users_group_is_their_kafka_partition_modulo_the_groups() -> None:
    layout = GroupLayout(groups=3, group=1, partitions=8)
    for k in range(500):
        user = f"user-{k}"
        assert layout.owner(user) == partition_for(user, 8) % 3
        assert layout.owns(user) == (layout.owner(user) == 1)
    assert layout.owned == (1, 4, 7)


def test_the_groups_partitions_cover_the_topic_once_and_group_g_reads_partition_g() -> None:
    layout = GroupLayout(groups=3, group=0, partitions=8)
    parts = [p for g in range(3) for p in layout.partitions_of(g)]
    assert sorted(parts) == list(range(8))
    assert all(g in layout.partitions_of(g) for g in range(3))


def test_one_group_owns_everyone_without_hashing() -> None:
    layout = GroupLayout()
    assert not layout.sharded and layout.owner("anyone") == 0 and layout.owns("anyone")
    assert layout.erasure_partitions("user", "u1") == (None,)


@pytest.mark.parametrize(("kw", "says"), [
    ({"groups": 0}, "groups must be >= 1"),
    ({"groups": 2, "group": 2, "partitions": 4}, "group must be in [0, 2)"),
    ({"groups": 4, "group": 0, "partitions": 3}, "4 groups need at least as many partitions"),
])
def test_an_impossible_layout_is_refused_naming_the_problem(kw: dict[str, int],
                                                            says: str) -> None:
    with pytest.raises(ValueError, match=r"^" + says.replace("[", r"\[").replace(")", r"\)")):
        GroupLayout(**kw)


def test_an_erasure_reaches_every_group_once_and_a_users_owner_on_their_partition() -> None:
    layout = GroupLayout(groups=3, group=2, partitions=8)
    for user in ("u5", "u6", "u7", "u8"):
        where = layout.erasure_partitions("user", user)
        assert where[0] == partition_for(user, 8)  # in order with the user's events
        assert sorted(p % 3 for p in where) == [0, 1, 2], (user, where)
    assert layout.erasure_partitions("item", "i1") == (0, 1, 2)
    assert {p % 3 for p in layout.erasure_partitions("item", "i1")} == {0, 1, 2}


def test_split_keeps_each_groups_users_in_the_asked_order() -> None:
    layout = GroupLayout(groups=2, group=0, partitions=4)
    assert layout.split(["u5", "u0", "u11", "u1"]) == {1: ["u5", "u11"], 0: ["u0", "u1"]}


# --- settings -----------------------------------------------------------------------------

def test_groups_without_the_partition_count_or_the_urls_are_refused_naming_the_field() -> None:
    env = {"STREAMREC_SERVING_GROUPS": "2"}
    with pytest.raises(ConfigError, match="topic_partitions.*required"):
        Config.load(None, env, "serve")
    env["STREAMREC_TOPIC_PARTITIONS"] = "1"
    with pytest.raises(ConfigError, match="topic_partitions.*at least serving_groups"):
        Config.load(None, env, "serve")
    env["STREAMREC_TOPIC_PARTITIONS"] = "4"
    with pytest.raises(ConfigError, match="group_urls.*must list 2 URLs"):
        Config.load(None, env, "serve")
    env["STREAMREC_GROUP_URLS"] = "http://a:8000,http://b:8000"
    env["STREAMREC_SERVING_GROUP"] = "2"
    with pytest.raises(ConfigError, match="serving_group.*below serving_groups"):
        Config.load(None, env, "serve")
    env["STREAMREC_SERVING_GROUP"] = "1"
    config = Config.load(None, env, "serve")
    assert config.groups == GroupLayout(2, 1, 4)
    env["STREAMREC_GROUP_URLS"] = "http://a:8000/path,http://b:8000"
    with pytest.raises(ConfigError, match="group_urls"):
        Config.load(None, env, "serve")


def test_the_trainer_reads_the_groups_from_the_shared_configmap_without_their_urls() -> None:
    # The ConfigMap gives every component the serving groups; the trainer splits the
    # snapshot's users by partition for them but forwards nothing, so it takes no URLs.
    env = {"STREAMREC_SERVING_GROUPS": "2", "STREAMREC_TOPIC_PARTITIONS": "4"}
    config = Config.load(None, env, "trainer")
    assert config.serving_groups == 2 and config.user_partitions == 4
    with pytest.raises(ConfigError, match="topic_partitions.*required"):
        Config.load(None, {"STREAMREC_SERVING_GROUPS": "2"}, "trainer")


def test_every_route_that_names_a_user_is_forwarded_or_declared_the_same_everywhere(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    app = World(tmp_path, *board).app
    named = {rule.endpoint for rule in app.url_map.iter_rules()
             if "user" in rule.rule and rule.endpoint != "static"}
    # ?user=, ?userId=, ?users=: named in the query, not the rule
    named |= {"recommend.query_recommendations", "recommend.compat", BATCH_ROUTE}
    assert named == set(USER_ROUTES) | LOCAL_USER_ROUTES | {BATCH_ROUTE}


# --- two groups over HTTP -----------------------------------------------------------------

class Pair:
    """Group 0 (a test client) and group 1 (a werkzeug server on 127.0.0.1)."""

    def __init__(self, zero: World, one: World) -> None:
        self.zero, self.one = zero, one


def _config(urls: tuple[str, str], group: int, **kw: object) -> dict[str, object]:
    return {"serving_groups": 2, "serving_group": group, "topic_partitions": 4,
            "group_urls": urls, "forward_timeout": 2.0, **kw}


@pytest.fixture
def pair(tmp_path: Path, board: tuple[Model, SlidingWindow]) -> Iterator[Pair]:
    ports = free_port(), free_port()
    urls = (f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}")
    zero = World.serving(tmp_path / "g0", *board, **_config(urls, 0))
    one = World.serving(tmp_path / "g1", *board, **_config(urls, 1))
    server = make_server("127.0.0.1", ports[1], one.app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Pair(zero, one)
    finally:
        server.shutdown()
        thread.join(10)
        for w in (zero, one):
            w.service.stop()


def _items(body: dict) -> list[str]:
    return [x["item"] for x in body["items"]]


def test_another_groups_user_gets_their_owners_answer_through_one_hop(pair: Pair) -> None:
    for user in GROUP_1_USERS:
        r = pair.zero.client.get(f"/users/{user}/recommendations?n=4")
        assert r.status_code == 200, r.get_data(as_text=True)
        assert r.headers[GROUP_HEADER] == "1"
        direct = pair.one.get(f"/users/{user}/recommendations?n=4")
        assert _items(r.get_json()) == _items(direct) and r.get_json()["user"] == user
        # The owner tracked the list it made: the id is its worker's.
        assert r.get_json()["recommendation_id"].split("-")[0] == \
            direct["recommendation_id"].split("-")[0]
    for route in ("/recommendations?user=u5&n=3", "/users/u5/items",
                  "/users/u5/because/i1"):
        r = pair.zero.client.get(route)
        assert r.status_code == pair.one.client.get(route).status_code, route
        assert r.headers[GROUP_HEADER] == "1", route
        assert r.get_json() == pair.one.client.get(route).get_json() or \
            "recommendation_id" in r.get_json(), route
    legacy = pair.zero.client.get("/?userId=u11&recommendationsNumber=3")
    assert legacy.status_code == 200 and legacy.headers["X-Recommendation-Id"]
    assert legacy.get_json()["recommended_items"] == \
        pair.one.get("/?userId=u11&recommendationsNumber=3")["recommended_items"]


def test_an_owned_user_and_a_request_for_no_user_are_answered_locally(pair: Pair) -> None:
    for route in (f"/users/{GROUP_0_USERS[0]}/recommendations?n=3", "/popular?n=3",
                  "/items/i1/similar?n=3"):
        r = pair.zero.client.get(route)
        assert r.status_code == 200 and r.headers[GROUP_HEADER] == "0", route


def test_an_owners_error_comes_back_as_it_gave_it(pair: Pair) -> None:
    r = pair.zero.client.get("/users/u5/recommendations?n=0")
    assert r.status_code == 400 and r.get_json()["error"] == "bad_parameter"
    assert r.headers[GROUP_HEADER] == "1"


def test_a_forwarded_request_is_never_forwarded_again(pair: Pair) -> None:
    r = pair.zero.client.get("/users/u5/recommendations?n=3", headers={FORWARDED_HEADER: "1"})
    assert r.status_code == 200 and r.headers[GROUP_HEADER] == "0"


def test_a_request_forwarded_to_a_replica_that_holds_only_its_own_users_gets_a_503(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    # While the group count changes, a pod of the old layout may forward a user to a pod of
    # the new one that does not own them; with a snapshot split by partition it has no answer.
    model, window = board
    urls = ("http://127.0.0.1:1", "http://127.0.0.1:2")
    world = World(tmp_path, model, window, **_config(urls, 0))
    build = tmp_path / "build" / "000000000001"
    write_snapshot(build, model, window.contents(), {0: 0}, "000000000001", user_partitions=4)
    world.store.publish(build, "000000000001")
    assert world.tick()
    try:
        r = world.client.get("/users/u5/recommendations?n=3", headers={FORWARDED_HEADER: "1"})
        assert r.status_code == 503 and r.get_json()["error"] == "owner_unavailable"
        assert r.headers["Retry-After"] == "1"
        mine = world.client.get(f"/users/{GROUP_0_USERS[0]}/recommendations?n=3",
                                headers={FORWARDED_HEADER: "1"})
        assert mine.status_code == 200  # its own users it answers, forwarded or not
        assert world.get("/model")["group"]["mapped_users"] < len(model.user_ids)
    finally:
        world.service.stop()


def test_a_batch_asks_each_owner_for_its_users_and_keeps_the_asked_order(pair: Pair) -> None:
    users = ["u5", "u0", "u11", "u1"]
    body = pair.zero.get(f"/recommendations/batch?users={','.join(users)}&n=3")
    assert list(body["results"]) == users
    for user in users:
        owner = pair.one if user in GROUP_1_USERS else pair.zero
        alone = owner.get(f"/users/{user}/recommendations?n=3")
        assert _items(body["results"][user]) == _items(alone), user
    only_theirs = pair.zero.get("/recommendations/batch?users=u11,u5&n=2")
    assert list(only_theirs["results"]) == ["u11", "u5"]
    assert only_theirs["model_version"] == "000000000001"


def test_a_group_that_does_not_answer_gives_its_users_a_503_and_nobody_else(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    urls = (f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}")  # closed
    zero = World.serving(tmp_path, *board, **_config(urls, 0, forward_timeout=0.5))
    r = zero.client.get("/users/u5/recommendations")
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    body = r.get_json()
    assert body["error"] == "owner_unavailable" and "serving group 1" in body["message"]
    assert "could not be reached" in body["message"]  # refused at once, not a timeout
    batch = zero.client.get("/recommendations/batch?users=u0,u5")
    assert batch.status_code == 503 and batch.get_json()["error"] == "owner_unavailable"
    assert zero.client.get("/users/u0/recommendations").status_code == 200
    assert zero.client.get("/popular").status_code == 200
    zero.service.stop()


def test_fold_in_keeps_only_its_own_users_events(pair: Pair) -> None:
    zero = pair.zero
    for user in ("u0", "u5"):
        zero.log.append("interactions", f"{user}:i3:1".encode(), user.encode(), ())
    assert zero.fold() == 1
    assert zero.service.fresh.count("u0") == 1 and zero.service.fresh.count("u5") == 0


def test_the_model_route_names_the_group_and_its_partitions(pair: Pair) -> None:
    group = pair.one.get("/model")["group"]
    assert group["group"] == 1 and group["groups"] == 2 and group["partitions"] == [1, 3]
    assert len(group["urls"]) == 2


def test_an_unsharded_server_says_nothing_about_groups(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    world = World.serving(tmp_path, *board)
    r = world.client.get("/users/u5/recommendations")
    assert r.status_code == 200 and GROUP_HEADER not in r.headers
    model, _ = board
    assert world.get("/model")["group"] == {"group": 0, "groups": 1, "partitions": None,
                                            "mapped_users": len(model.user_ids), "urls": []}


def test_a_groups_ingress_path_answers_as_the_route_itself(pair: Pair) -> None:
    direct = pair.one.get("/users/u5/recommendations?n=3")
    prefixed = pair.one.get("/groups/1/users/u5/recommendations?n=3")
    assert _items(prefixed) == _items(direct)
    # Another group's prefix still reaches the owner (a stale client): one hop.
    r = pair.zero.client.get("/groups/0/users/u5/recommendations?n=3")
    assert r.status_code == 200 and r.headers[GROUP_HEADER] == "1"
    assert _items(r.get_json()) == _items(direct)
    # Ids keep their "/" under the prefix (pathids.py); "a/0" is group 1's.
    ids = pair.one.get("/groups/1/users/a%2F0/items", 404)
    assert ids["error"] == "unknown_user" and "a/0" in ids["message"]


def test_a_dot_id_is_forwarded_as_an_id_not_as_a_path_step(pair: Pair) -> None:
    # "." is group 1's user; an HTTP client would resolve /users/./items to /users/items.
    via = pair.zero.client.get("/users/%2E/items")
    direct = pair.one.client.get("/users/%2E/items")
    assert via.headers[GROUP_HEADER] == "1"
    assert (via.status_code, via.get_json()) == (direct.status_code, direct.get_json())
    assert via.get_json()["error"] == "unknown_user" and "'.'" in via.get_json()["message"]


def test_a_cors_preflight_is_answered_where_it_arrives(pair: Pair) -> None:
    r = pair.zero.client.options("/users/u5/recommendations")
    assert r.headers.get(GROUP_HEADER) == "0"


def test_a_forwarded_head_says_the_length_of_the_owners_answer(pair: Pair) -> None:
    head = pair.zero.client.head("/users/u5/recommendations?n=3")
    owners = pair.one.client.get("/users/u5/recommendations?n=3")
    assert head.status_code == 200 and head.headers[GROUP_HEADER] == "1"
    assert int(head.headers["Content-Length"]) > 0 and head.get_data() == b""
    assert abs(int(head.headers["Content-Length"]) - len(owners.get_data())) < 40  # the id
