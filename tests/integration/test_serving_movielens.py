"""Every endpoint through the Flask test client, on a real snapshot fitted on MovieLens-100K.

The model is fitted on the whole of ML-100K (the recbole wheel's ``ml-100k.inter``) and served
from a `LocalStore` exactly as in production; ingest and fold-in use the in-memory log. Each
answer is checked against the data: a user's known items are their ratings, similar items and
"because" name real movies, the seed-compatible route answers the original service's shape.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from tests.support.memlog import MemLog, MemSink, MemSource

from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.core.events import Event
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow
from streamrec.data import movielens

TOPIC = "interactions"
VERSION = "000000000001"


class Served:
    def __init__(self, tmp: Path) -> None:
        ratings, self.titles = movielens.load()
        self.rated: dict[str, dict[str, float]] = defaultdict(dict)
        window = SlidingWindow(len(ratings))
        window.extend(Event(r.user, r.item, r.rating, r.timestamp) for r in ratings)
        for r in ratings:
            self.rated[r.user][r.item] = self.rated[r.user].get(r.item, 0.0) + r.rating
        self.popularity = Counter(r.item for r in ratings)
        model = fit(window.build(), ALSParams(factors=16, iterations=6, num_threads=1))
        store = LocalStore(tmp / "store")
        # The ratings were never in this (in-memory) log: it starts empty, at offset 0.
        write_snapshot(tmp / "build", model, window.contents(), {0: 0}, VERSION)
        store.publish(tmp / "build", VERSION)
        self.log = MemLog()
        self.log.create_topic(TOPIC)
        self.app = create_app_for(tmp, store, self.log)
        self.service = self.app.extensions["streamrec"]
        assert self.service.reloader.check_once()
        self.client: FlaskClient = self.app.test_client()

    def get(self, url: str, status: int = 200) -> dict:
        r = self.client.get(url)
        assert r.status_code == status, r.get_data(as_text=True)
        return r.get_json()


def create_app_for(tmp: Path, store: LocalStore, log: MemLog):  # type: ignore[no-untyped-def]
    from streamrec.serving.app import create_app

    return create_app(Config(cache_dir=str(tmp / "cache")), store=store, sink=MemSink(log),
                      source_factory=lambda offsets: MemSource(log, TOPIC))


@pytest.fixture(scope="module")
def ml(tmp_path_factory: pytest.TempPathFactory) -> Served:
    return Served(tmp_path_factory.mktemp("ml100k"))


def test_model_describes_the_movielens_snapshot(ml: Served) -> None:
    m = ml.get("/model")
    assert m["version"] == VERSION
    assert (m["sizes"]["users"], m["sizes"]["items"]) == (943, 1682)
    assert m["sizes"]["window"] == 100_000 and m["fresh_events"] == 0
    assert ml.get("/readyz") == {"ready": True, "model_version": VERSION}
    assert ml.get("/healthz")["status"] == "ok"


def test_personal_recommendations_skip_what_the_user_rated(ml: Served) -> None:
    for url in ("/users/196/recommendations?n=20", "/recommendations?user=196&n=20"):
        got = ml.get(url)
        items = [x["item"] for x in got["items"]]
        assert len(items) == 20 and len(set(items)) == 20
        assert not set(items) & set(ml.rated["196"])
        assert got["fallback"] is None and got["model_version"] == VERSION
        assert got["fresh_events"] == 0
        scores = [x["score"] for x in got["items"]]
        assert scores == sorted(scores, reverse=True)
    with_seen = ml.get("/users/196/recommendations?n=50&exclude_seen=false")
    assert {x["item"] for x in with_seen["items"]} & set(ml.rated["196"])


def test_seed_compatible_route_answers_the_original_shape(ml: Served) -> None:
    got = ml.get("/?userId=196&recommendationsNumber=7")
    assert set(got) == {"user_id", "recommended_items"}
    assert got["user_id"] == "196" and len(got["recommended_items"]) == 7
    personal = ml.get("/users/196/recommendations?n=7")
    assert got["recommended_items"] == [x["item"] for x in personal["items"]]


def test_whitelist_and_blacklist_filter_the_movielens_catalogue(ml: Served) -> None:
    allowed = [i for i in list(ml.titles)[:60] if i not in ml.rated["196"]][:10]
    got = ml.get(f"/users/196/recommendations?n=5&items={','.join(allowed)}")
    assert {x["item"] for x in got["items"]} <= set(allowed) and len(got["items"]) == 5
    top = [x["item"] for x in ml.get("/users/196/recommendations?n=5")["items"]]
    again = ml.get(f"/users/196/recommendations?n=5&exclude={','.join(top)}")
    assert not {x["item"] for x in again["items"]} & set(top)


def test_batch_answers_each_user_and_unknown_users_get_popular(ml: Served) -> None:
    got = ml.get("/recommendations/batch?users=196,186,nobody-yet&n=3")
    by_user = got["results"]
    assert set(by_user) == {"196", "186", "nobody-yet"}
    assert by_user["196"]["fallback"] is None and by_user["nobody-yet"]["fallback"] == "popular"
    assert all(len(r["items"]) == 3 for r in by_user.values())


def test_popular_is_the_most_rated_movies(ml: Served) -> None:
    got = ml.get("/popular?n=5")
    assert got["fallback"] == "popular"
    assert [x["item"] for x in got["items"]] == [i for i, _ in ml.popularity.most_common(5)]


def test_similar_items_and_because_name_real_movies(ml: Served) -> None:
    star_wars = "50"  # the most rated movie of ML-100K
    assert ml.titles[star_wars].startswith("Star Wars")
    similar = ml.get(f"/items/{star_wars}/similar?n=10")
    items = [x["item"] for x in similar["items"]]
    assert len(items) == 10 and star_wars not in items and set(items) <= set(ml.titles)
    rec = ml.get("/users/196/recommendations?n=1")["items"][0]["item"]
    why = ml.get(f"/users/196/because/{rec}")
    assert why["items"] and {x["item"] for x in why["items"]} <= set(ml.rated["196"])
    assert ml.get("/items/no-such-movie/similar", 404)["error"]


def test_known_items_are_the_users_ratings(ml: Served) -> None:
    got = ml.get("/users/196/items")
    assert {x["item"]: x["weight"] for x in got["items"]} == ml.rated["196"]
    assert got["fresh"] == [] and got["fresh_events"] == 0


def test_anonymous_session_recommends_around_its_items(ml: Served) -> None:
    r = ml.client.post("/recommendations", json={"items": ["50", "172", "181"], "n": 5})
    assert r.status_code == 200, r.get_data(as_text=True)
    items = [x["item"] for x in r.get_json()["items"]]
    assert len(items) == 5 and not {"50", "172", "181"} & set(items)


def test_an_ingested_event_is_folded_into_a_new_user(ml: Served) -> None:
    before = ml.get("/recommendations?user=ml-newcomer&n=5")
    assert before["fallback"] == "popular"
    r = ml.client.post("/interactions", json=[{"user": "ml-newcomer", "item": "50",
                                               "weight": 5}])
    assert r.status_code == 202 and r.get_json()["accepted"] == 1
    assert ml.service.foldin is not None
    ml.service.foldin.step()
    after = ml.get("/recommendations?user=ml-newcomer&n=5")
    assert after["fallback"] is None and after["fresh_events"] == 1
    assert "50" not in {x["item"] for x in after["items"]}
    known = ml.get("/users/ml-newcomer/items")
    assert known["items"] == [] and known["fresh"] == [{"item": "50", "weight": 5.0}]


def test_bad_requests_are_json_4xx(ml: Served) -> None:
    assert ml.get("/users/196/recommendations?n=0", 400)["error"]
    assert ml.get("/users/196/recommendations?n=1001", 400)["error"]
    assert ml.get("/users/196/recommendations?bogus=1", 400)["error"]
    assert ml.get("/?userId=196&recommendationsNumber=-3", 400)["error"]
    # A negative weight is negative feedback now (docs/feedback.md); a weight beyond the domain
    # (|w| <= 1e6, core/domains.py) is still refused.
    r = ml.client.post("/interactions", json=[{"user": "x", "item": "50", "weight": 1e9}])
    assert r.status_code == 400 and r.get_json()["error"]


def test_metrics_and_openapi_are_served(ml: Served) -> None:
    assert "streamrec_" in ml.client.get("/metrics").get_data(as_text=True)
    spec = ml.get("/openapi.json")
    assert spec["openapi"].startswith("3.1") and "/users/{user}/recommendations" in spec["paths"]
