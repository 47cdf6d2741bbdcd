"""``GET /items/{item}/next``: what most often came next, with the catalogue filters, for
unknown, erased and successor-less items, and through a model without the sequential scorer."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from tests.unit.test_serving_catalog import World

from streamrec.core.catalog.records import Catalogue, ItemRecord
from streamrec.core.events import Event
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.scoring.sequential import SequentialParams
from streamrec.core.scoring.training import fit, with_scorer, with_scoring
from streamrec.core.window.sliding import SlidingWindow

ITEMS = 12
#: The snapshot's scoring: the sequential term leads, so a session's order decides its answer.
SCORING = ScoringParams(scorer_weights=(("als", 0.2), ("item_item", 0.1), ("sequential", 0.7)))


@pytest.fixture(scope="module")
def window() -> SlidingWindow:
    """30 users walk the chain i0 → i1 → ... → i11 for 6 steps from a random start."""
    window = SlidingWindow(1_000)
    rng = np.random.default_rng(3)
    for u in range(30):
        start = int(rng.integers(0, ITEMS - 6 + 1))
        window.extend(Event(f"u{u}", f"i{i}", 1.0, 1_700_000_000.0 + 10 * u + i)
                      for i in range(start, start + 6))
    return window


@pytest.fixture(scope="module")
def model(window: SlidingWindow) -> Model:
    m = fit(window.build(), ALSParams(factors=4, iterations=5, num_threads=1))
    m = with_scoring(m, window.contents(), SCORING)
    m = with_scorer(m, "item_item", None, threads=1)
    # The query halves per position back (decay ln 2; the default 0.3 weighs the one before
    # the newest 0.74), so a three-item session's newest item drives the answer.
    return with_scorer(m, "sequential", SequentialParams(query_decay=math.log(2)), threads=1)


def _catalogue() -> Catalogue:
    return Catalogue(ItemRecord(f"i{i}", ("even",) if i % 2 == 0 else ("odd",), title=f"T{i}",
                                hidden=i == 9)
                     for i in range(ITEMS))


@pytest.fixture
def world(tmp_path: Path, model: Model, window: SlidingWindow) -> World:
    w = World(tmp_path, model, window)
    w.publish("000000000001", _catalogue())
    return w


def _items(body: dict) -> list[str]:
    return [x["item"] for x in body["items"]]


def test_next_lists_what_most_often_came_next_heaviest_first(world: World) -> None:
    body = world.get("/items/i3/next?n=3")
    assert body["item"] == "i3" and body["fallback"] is None
    assert _items(body) == ["i4", "i5", "i6"]  # 1, 1/2, 1/3 of the distance, per walk
    scores = [x["score"] for x in body["items"]]
    assert scores == sorted(scores, reverse=True) and scores[0] > scores[1] > 0
    assert body["model_version"] == "000000000001"


def test_next_applies_the_catalogue_filters_and_exclude(world: World) -> None:
    assert _items(world.get("/items/i3/next?n=2&category=even")) == ["i4", "i6"]
    assert "i4" not in _items(world.get("/items/i3/next?n=3&exclude=i4"))
    assert "i9" not in _items(world.get("/items/i7/next?n=5"))  # hidden in the catalogue
    titled = world.get("/items/i3/next?n=1&fields=title")["items"]
    assert titled == [{"item": "i4", "score": titled[0]["score"], "title": "T4"}]


def test_an_item_nothing_came_after_gets_similar_items_marked_as_such(world: World) -> None:
    body = world.get("/items/i11/next?n=3")
    assert body["fallback"] == "similar" and len(body["items"]) == 3
    assert "i11" not in _items(body)


def test_a_filter_nothing_passes_is_an_empty_list_not_a_fallback(world: World) -> None:
    for url in ("/items/i3/next?category=Nope", "/items/i11/next?category=Nope"):
        body = world.get(url)
        assert body["items"] == [] and body["fallback"] is None, url


def test_next_of_an_unknown_or_erased_item_is_a_404_and_erased_items_never_come_next(
        world: World) -> None:
    assert world.get("/items/nope/next", 404)["error"] == "unknown_item"
    assert world.client.delete("/items/i4").status_code == 202
    assert world.get("/items/i4/next", 404)["error"] == "unknown_item"
    assert _items(world.get("/items/i3/next?n=2")) == ["i5", "i6"]


def test_bad_query_parameters_on_next_are_400s(world: World) -> None:
    for url in ("/items/i3/next?n=0", "/items/i3/next?k=3", "/items/i3/next?n=1&n=2"):
        body = world.get(url, 400)
        assert body["error"] and body["message"]


def test_a_session_in_the_order_given_gets_what_follows_its_newest_item(world: World) -> None:
    r = world.client.post("/recommendations", json={"items": ["i1", "i2", "i7"], "n": 1})
    assert r.status_code == 200
    body = r.get_json()
    assert _items(body) == ["i8"]
    reordered = world.client.post("/recommendations", json={"items": ["i7", "i1", "i2"], "n": 1})
    assert _items(reordered.get_json()) == ["i3"]


def test_because_names_the_transition_when_the_sequential_scorer_drives_the_item(
        world: World) -> None:
    for item in ("i1", "i2"):
        assert world.client.post("/interactions", json={"user": "walker", "item": item}
                                 ).status_code == 202
    assert world.service.foldin is not None
    assert world.service.foldin.step() + world.service.foldin.step() == 2
    body = world.get("/users/walker/because/i3?fields=title")
    assert body["driven_by"] == "sequential" and body["fresh_events"] == 2
    first = body["transitions"][0]
    assert (first["item"], first["position"], first["title"]) == ("i2", 1, "T2")
    assert [t["item"] for t in body["transitions"]] == ["i2", "i1"]  # i3 came after both
    assert first["score"] > body["transitions"][1]["score"] > 0
