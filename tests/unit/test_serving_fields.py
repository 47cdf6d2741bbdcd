"""``fields=``: catalogue fields added to each item of every list route (serving/http/fields.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.unit import test_serving_catalog as catalog_tests
from tests.unit.test_serving_catalog import ITEMS, LIST_ROUTES, World

from streamrec.core.catalog.records import Catalogue, ItemRecord
from streamrec.core.scoring.model import Model
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.http.errors import ApiError
from streamrec.serving.http.fields import FIELDS, add_fields, parse_fields, parse_fields_body

#: The list routes beyond LIST_ROUTES' five: because and a user's known items.
MORE_ROUTES = ("/users/u0/because/i2?", "/users/u0/items?")


#: The catalogue tests' small window and its fitted model (module-scoped fixtures).
window = catalog_tests.window
model = catalog_tests.model


def _catalogue() -> Catalogue:
    """Records for i0..i9 (i10 and i11 have none): parity as category, a title, a label."""
    return Catalogue(ItemRecord(f"i{i}", ("even",) if i % 2 == 0 else ("odd",),
                                labels={"shelf": str(i % 3)}, title=f"T{i}") for i in range(10))


@pytest.fixture
def world(tmp_path: Path, model: Model, window: SlidingWindow) -> World:
    w = World(tmp_path, model, window)
    w.publish("000000000001", _catalogue())
    return w


def listed_items(world: World, url: str) -> list[dict[str, Any]]:
    """Every item object of the answer: each batch user's, and known plus fresh items."""
    body = world.get(url)
    if "results" in body:
        return [x for r in body["results"].values() for x in r["items"]]
    return [*body["items"], *body.get("fresh", [])]


def expected(item: str, fields: tuple[str, ...]) -> dict[str, Any]:
    k = int(item[1:])
    record = {"categories": ["even" if k % 2 == 0 else "odd"], "labels": {"shelf": str(k % 3)},
              "hidden": False, "expires_at": None, "title": f"T{k}"} if k < 10 else {
              "categories": [], "labels": {}, "hidden": False, "expires_at": None, "title": None}
    return {f: record[f] for f in fields}


def test_without_fields_every_list_is_ids_and_scores_exactly_as_before(world: World) -> None:
    for url in (*LIST_ROUTES, *MORE_ROUTES):
        items = listed_items(world, url)
        assert items, url
        keys = {"item", "weight"} if url.startswith("/users/u0/items") else {"item", "score"}
        assert all(set(x) == keys for x in items), (url, items[:2])
    session = world.client.post("/recommendations", json={"items": ["i1"], "n": 3}).get_json()
    assert all(set(x) == {"item", "score"} for x in session["items"])


@pytest.mark.parametrize("fields", [("title", "categories"), ("labels",), FIELDS])
def test_fields_adds_the_records_values_to_each_item_of_every_list_route(
        world: World, fields: tuple[str, ...]) -> None:
    world.client.post("/interactions", json={"user": "u0", "item": "i11"})  # a fresh item too
    assert world.service.foldin is not None and world.service.foldin.step()
    fresh = world.get(f"/users/u0/items?fields={','.join(fields)}")["fresh"]
    assert fresh == [{"item": "i11", "weight": 1.0, **expected("i11", fields)}]
    for url in (*LIST_ROUTES, *MORE_ROUTES):
        items = listed_items(world, f"{url}n=12&fields={','.join(fields)}".replace(
            "items?n=12&", "items?"))
        assert items, url
        for x in items:
            assert {k: v for k, v in x.items() if k not in ("item", "score", "weight")} == \
                expected(x["item"], fields), (url, x)
            assert list(x)[2:] == list(fields)  # in the order asked for, after id and score
    body = {"items": ["i1"], "n": 12, "exclude_seen": False, "fields": list(fields)}
    session = world.client.post("/recommendations", json=body).get_json()
    assert {x["item"] for x in session["items"]} >= {"i10", "i11"}  # items with no record
    assert all({k: x[k] for k in fields} == expected(x["item"], fields)
               for x in session["items"])


def test_the_lists_and_their_order_do_not_change_with_fields(world: World) -> None:
    for url in LIST_ROUTES:
        plain = [(x["item"], x["score"]) for x in listed_items(world, f"{url}n=5")]
        rich = [(x["item"], x["score"]) for x in listed_items(world, f"{url}n=5&fields=title")]
        assert rich == plain, url


def test_a_title_put_through_the_items_topic_shows_in_lists_once_followed(world: World) -> None:
    top = world.get("/popular?n=1&fields=title")["items"][0]
    assert world.client.put(f"/items/{top['item']}", json={"title": "Renamed"}).status_code == 202
    assert world.get("/popular?n=1&fields=title")["items"][0]["title"] == top["title"]
    assert world.follow() == 1 and world.log.end_offsets(ITEMS) == {0: 1}
    assert world.get("/popular?n=1&fields=title")["items"][0] == {**top, "title": "Renamed"}


@pytest.mark.parametrize("raw", ["colour", "title,colour,price", "Title", "item", "score"])
def test_an_unknown_field_is_a_400_naming_it_on_every_list_route(world: World,
                                                                raw: str) -> None:
    unknown = [n for n in raw.split(",") if n not in FIELDS]
    for url in (*LIST_ROUTES, *MORE_ROUTES):
        body = world.get(f"{url}fields={raw}", 400)
        assert body["error"] == "unknown_field", (url, body)
        assert all(repr(n) in body["message"] for n in unknown) and "title" in body["message"]
    r = world.client.post("/recommendations", json={"items": ["i1"], "fields": raw.split(",")})
    assert r.status_code == 400 and r.get_json()["error"] == "unknown_field"


@pytest.mark.parametrize(("query", "error"), [
    ("fields=", "empty_parameter"),
    ("fields=title&fields=labels", "repeated_parameter"),
    ("fields=title,,labels", "bad_parameter"),
    ("fields=title,", "bad_parameter"),
    ("fields=%20", "bad_parameter"),
])
def test_empty_and_repeated_fields_are_400_like_every_other_parameter(world: World, query: str,
                                                                     error: str) -> None:
    for url in (*LIST_ROUTES, *MORE_ROUTES):
        body = world.get(f"{url}{query}", 400)
        assert body["error"] == error and "fields" in body["message"], (url, body)


def test_names_are_stripped_and_a_repeated_name_counts_once(world: World) -> None:
    items = world.get("/popular?n=2&fields=title,%20title%20,categories")["items"]
    assert [list(x) for x in items] == [["item", "score", "title", "categories"]] * 2


@pytest.mark.parametrize(("fields", "error"), [
    ([], "bad_body"), ("", "bad_parameter"), (["title", 3], "bad_body"), (7, "bad_body"),
    ({"title": True}, "bad_body"), (["title", ""], "bad_parameter"),
])
def test_a_bad_fields_value_in_a_session_body_is_a_400(world: World, fields: object,
                                                       error: str) -> None:
    r = world.client.post("/recommendations", json={"items": ["i1"], "fields": fields})
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"] == error and "fields" in r.get_json()["message"]


def test_a_session_body_takes_fields_as_one_comma_separated_string_too(world: World) -> None:
    r = world.client.post("/recommendations", json={"items": ["i1"], "n": 2,
                                                    "fields": "title,labels"})
    assert r.status_code == 200
    assert all(list(x)[2:] == ["title", "labels"] for x in r.get_json()["items"])


def test_the_compatibility_route_keeps_its_bare_ids_and_refuses_fields(world: World) -> None:
    body = world.get("/?userId=u0&recommendationsNumber=3&fields=title", 400)
    assert body["error"] == "unknown_parameter" and "fields" in body["message"]


def test_an_erased_item_is_neither_listed_nor_described(world: World) -> None:
    top = world.get("/popular?n=1")["items"][0]["item"]
    assert world.client.delete(f"/items/{top}").status_code == 202
    world.service.foldin.step()  # type: ignore[union-attr]
    items = world.get("/popular?n=12&fields=title")["items"]
    assert top not in [x["item"] for x in items] and all(x["title"] for x in items
                                                         if int(x["item"][1:]) < 10)


def test_every_list_route_documents_fields_with_the_served_names(world: World) -> None:
    doc = world.get("/openapi.json")
    param = doc["components"]["parameters"]["Fields"]
    listing = {"/users/{user}/recommendations", "/recommendations", "/recommendations/batch",
               "/items/{item}/similar", "/items/{item}/next", "/users/{user}/items", "/popular",
               "/users/{user}/because/{item}"}
    for path, ops in doc["paths"].items():
        refs = [p.get("$ref") for op in ops.values() for p in op.get("parameters", [])]
        assert (path in listing) == ("#/components/parameters/Fields" in refs), path
    assert all(f in param["description"] for f in FIELDS)
    # "mark": what a placement put in the slot (docs/placements.md), not a catalogue field.
    assert set(doc["components"]["schemas"]["Scored"]["properties"]) == {"item", "score", "mark",
                                                                          *FIELDS}
    assert doc["components"]["schemas"]["Session"]["properties"]["fields"]["oneOf"][1][
        "items"]["enum"] == list(FIELDS)


def test_fields_are_the_records_fields_besides_its_id() -> None:
    assert set(FIELDS) == set(ItemRecord("x").to_dict()) - {"item"}


def test_add_fields_copies_so_an_answer_never_shares_the_catalogues_lists() -> None:
    catalogue = Catalogue([ItemRecord("a", ("c",), labels={"k": "v"}, title="A")])
    items = add_fields([{"item": "a", "score": 1.0}, {"item": "b", "score": 0.5}],
                       ("categories", "labels"), catalogue)
    items[0]["categories"].append("x")
    items[0]["labels"]["k"] = "changed"
    record = catalogue.get("a")
    assert record is not None and record.categories == ("c",) and record.labels == {"k": "v"}
    assert items[1] == {"item": "b", "score": 0.5, "categories": [], "labels": {}}
    plain = [{"item": "a", "score": 1.0}]
    assert add_fields(plain, (), catalogue) == [{"item": "a", "score": 1.0}]


def test_parse_fields_reports_every_unknown_name_once() -> None:
    with pytest.raises(ApiError) as e:
        parse_fields(["nope,title,nope", "zzz"])
    assert e.value.status == 400 and e.value.code == "unknown_field"
    assert e.value.message.count("'nope'") == 1 and "'zzz'" in e.value.message
    assert parse_fields([]) == () and parse_fields_body(None) == ()
