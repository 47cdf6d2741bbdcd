"""Placements in serving: ``placement=`` on every list route, a watched file, rotation shared by
two workers through the impressions topic, weak negatives, per-placement online metrics."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.support.memlog import MemLog, MemSink, MemSource
from tests.unit import test_serving_catalog as catalog_tests
from tests.unit.test_serving_catalog import ITEMS, LIST_ROUTES, TOPIC

from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.core.catalog.records import Catalogue, ItemRecord
from streamrec.core.experiments.assign import arm_of
from streamrec.core.experiments.spec import parse_experiments
from streamrec.core.scoring.model import Model
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.app import create_app
from streamrec.serving.service import Service
from streamrec.settings.placements import Placements

window = catalog_tests.window
model = catalog_tests.model
IMPRESSIONS = f"{TOPIC}.impressions"

PLACEMENTS = [
    {"name": "odd", "filter": "'odd' in categories"},
    {"name": "rotate", "rotation": {"seconds": 600, "factor": 0.001}},
    {"name": "skip", "rotation": {"seconds": 600, "factor": 0.999, "skipWeight": -0.5}},
    {"name": "promo", "promotions": {"filter": "'promo' in labels", "share": 0.2},
     "excludeSeen": False},
]


class Worker:
    """One serving worker on a shared in-memory log and store (gunicorn's workers share
    nothing else)."""

    def __init__(self, tmp: Path, log: MemLog, placements: str) -> None:
        config = Config(cache_dir=str(tmp / f"cache-{id(self)}"),
                        placements=Placements().parse(placements))
        self.app = create_app(config, store=LocalStore(tmp / "store"), sink=MemSink(log),
                              source_factory=lambda _o: MemSource(log, TOPIC),
                              items_factory=lambda: MemSource(log, ITEMS),
                              impressions_factory=lambda: MemSource(log, IMPRESSIONS))
        self.service: Service = self.app.extensions["streamrec"]
        self.client: FlaskClient = self.app.test_client()

    def get(self, url: str, status: int = 200) -> dict[str, Any]:
        r = self.client.get(url)
        assert r.status_code == status, r.get_data(as_text=True)
        return r.get_json()

    def items(self, url: str) -> list[str]:
        return [x["item"] for x in self.get(url)["items"]]

    def read_impressions(self) -> int:
        follower = self.service.placer.follower
        assert follower is not None
        return follower.step() + follower.step()


def _catalogue() -> Catalogue:
    return Catalogue(ItemRecord(f"i{i}", ("even",) if i % 2 == 0 else ("odd",),
                                labels={"promo": "y"} if i == 11 else {}) for i in range(12))


@pytest.fixture
def placements_file(tmp_path: Path) -> Path:
    path = tmp_path / "placements.json"
    path.write_text(json.dumps(PLACEMENTS))
    return path


def _published(tmp_path: Path, model: Model, window: SlidingWindow) -> MemLog:
    """A snapshot of ``model`` with the catalogue in the store the workers read; their log."""
    path = tmp_path / "build" / "000000000001"
    write_snapshot(path, model, window.contents(), {0: 0}, "000000000001",
                   catalog=_catalogue().to_arrays({}))
    LocalStore(tmp_path / "store").publish(path, "000000000001")
    return MemLog()


@pytest.fixture
def two(tmp_path: Path, model: Model, window: SlidingWindow,
        placements_file: Path) -> tuple[Worker, Worker]:
    log = _published(tmp_path, model, window)
    workers = (Worker(tmp_path, log, str(placements_file)),
               Worker(tmp_path, log, str(placements_file)))
    for w in workers:
        assert w.service.reloader.check_once()
    return workers


def test_every_list_route_takes_a_placement_and_names_it(two: tuple[Worker, Worker]) -> None:
    a, _ = two
    for url in LIST_ROUTES:
        body = a.get(f"{url}placement=odd&n=4")
        lists = [r["items"] for r in body["results"].values()] if "results" in body \
            else [body["items"]]
        assert body["placement"] == "odd", url
        for items in lists:
            assert items and all(int(x["item"][1:]) % 2 == 1 for x in items), (url, items)
        assert a.get(f"{url}n=4")["placement"] is None
    session = a.client.post("/recommendations", json={"items": ["i1"], "n": 3,
                                                      "placement": "odd"}).get_json()
    assert session["placement"] == "odd"
    assert all(int(x["item"][1:]) % 2 == 1 for x in session["items"])


def test_an_unknown_placement_is_a_400_naming_it(two: tuple[Worker, Worker]) -> None:
    a, _ = two
    body = a.get("/users/u0/recommendations?placement=nope", 400)
    assert body["error"] == "unknown_placement" and "'nope'" in body["message"]
    assert "odd" in body["message"]
    r = a.client.post("/recommendations", json={"items": ["i1"], "placement": 3})
    assert r.status_code == 400 and r.get_json()["error"] == "bad_body"


def test_rotation_on_one_worker_demotes_on_the_other(two: tuple[Worker, Worker]) -> None:
    a, b = two
    first = a.items("/users/u0/recommendations?placement=rotate&n=3")
    assert b.read_impressions() == 1
    second = b.items("/users/u0/recommendations?placement=rotate&n=3")
    assert not set(first) & set(second), (first, second)
    assert a.read_impressions() == 1  # b's list, read back by a (its own are skipped)
    third = a.items("/users/u0/recommendations?placement=rotate&n=1")
    assert third == ["i9"]  # the best of u0's candidates never shown yet (i7, i9)
    plain = a.items("/users/u0/recommendations?n=3")
    assert plain == first  # without the placement nothing rotates


def test_a_promoted_slot_is_marked_and_excludeseen_comes_from_the_placement(
        two: tuple[Worker, Worker]) -> None:
    a, _ = two
    body = a.get("/users/u1/recommendations?placement=promo&n=5")
    marks = {x["item"]: x.get("mark") for x in body["items"]}
    assert marks.get("i11") == "promoted" and list(marks.values()).count("promoted") == 1
    seen = {i for i, _ in a.service.live.known_items("u1").known}
    assert seen & set(a.items("/users/u1/recommendations?placement=promo&n=12"))
    assert not seen & set(a.items("/users/u1/recommendations?placement=promo&n=12"
                                  "&exclude_seen=true"))


def test_a_skip_weight_folds_shown_items_in_as_negative_feedback(
        two: tuple[Worker, Worker]) -> None:
    a, _ = two
    first = a.items("/users/u0/recommendations?placement=skip&n=2")
    second = a.items("/users/u0/recommendations?placement=skip&n=2")
    assert not set(first) & set(second)  # a net weight <= 0 is never shown (negatives.py)
    third = a.items("/users/u0/recommendations?placement=rotate&n=2")
    assert set(third) != set(first)


def test_a_changed_file_is_taken_and_a_broken_one_refused_keeping_the_last(
        two: tuple[Worker, Worker], placements_file: Path) -> None:
    a, _ = two
    assert a.service.placer.book.check() is False
    placements_file.write_text(json.dumps([{"name": "even", "filter": "'even' in categories"}]))
    os.utime(placements_file, ns=(1, 1))  # a new mtime even within the clock's resolution
    assert a.service.placer.book.check() is True
    assert all(int(i[1:]) % 2 == 0 for i in a.items("/popular?placement=even"))
    a.get("/popular?placement=odd", 400)
    placements_file.write_text('[{"name": "even", "filter": "1 +"}]')
    assert a.service.placer.book.check() is False
    listed = a.get("/placements")
    assert "[0].filter" in listed["error"] and [p["name"] for p in listed["placements"]] == [
        "even"]
    assert a.items("/popular?placement=even")  # the last good set still serves


def test_stats_per_placement_count_lists_clicks_slots_and_coverage(
        two: tuple[Worker, Worker]) -> None:
    a, _ = two
    body = a.get("/users/u1/recommendations?placement=promo&n=5")
    rid, clicked = body["recommendation_id"], body["items"][0]["item"]
    assert rid.endswith(".@promo")
    a.client.post("/interactions", json={"user": "u1", "item": clicked, "recommendation_id": rid})
    assert a.service.foldin is not None and a.service.foldin.step()
    got = a.get("/placements/promo")["online"]
    assert got["lists"] == 1 and got["clicked_lists"] == 1 and got["slots"] == 5
    assert got["promoted_share"] == 0.2 and got["exploration_share"] == 0.0
    assert got["distinct_items"] == 5 and got["coverage"] == pytest.approx(5 / 12, rel=1e-3)
    assert got["ctr"]["low"] < 1 <= got["ctr"]["high"] + 1e-9
    text = a.client.get("/metrics").get_data(as_text=True)
    assert 'streamrec_placement_lists_total{placement="promo"} 1.0' in text
    assert 'streamrec_placement_slots_total{kind="promoted",placement="promo"} 1.0' in text
    assert a.get("/placements/nope", 404)["error"] == "unknown_placement"
    assert a.get("/stats")["placements"]["promo"] == got  # /stats carries them too


def test_an_erased_user_leaves_the_impressions(two: tuple[Worker, Worker]) -> None:
    a, _ = two
    a.items("/users/u0/recommendations?placement=rotate&n=3")
    assert a.service.placer.impressions.shown("u0", 0)
    assert a.client.delete("/users/u0").status_code in (200, 202)
    assert a.service.placer.impressions.shown("u0", 0) == {}


def test_an_erased_item_leaves_the_impressions_and_the_exploration_counts(
        two: tuple[Worker, Worker]) -> None:
    a, _ = two
    shown = a.items("/users/u0/recommendations?placement=rotate&n=3")
    a.service.placer.impressions.explored[shown[0]] = [3, 1]
    assert a.client.delete(f"/items/{shown[0]}").status_code in (200, 202)
    assert shown[0] not in a.service.placer.impressions.shown("u0", 0)
    assert shown[0] not in a.service.placer.impressions.explored
    assert set(a.service.placer.impressions.shown("u0", 0)) == set(shown[1:])


def _arms_world(tmp_path: Path, model: Model, window: SlidingWindow,
                experiment: dict[str, Any]) -> Worker:
    w = Worker(tmp_path, _published(tmp_path, model, window), json.dumps(PLACEMENTS))
    w.service.config = dataclasses.replace(
        w.service.config, experiments=parse_experiments([experiment]))
    assert w.service.reloader.check_once()
    return w


EXPERIMENT = {"name": "pages", "start": "2020-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z",
              "arms": [{"name": "control"}, {"name": "odd-page", "placement": "odd"}]}


def test_a_placement_arm_serves_its_users_with_its_placement(
        tmp_path: Path, model: Model, window: SlidingWindow) -> None:
    w = _arms_world(tmp_path, model, window, EXPERIMENT)
    (experiment,) = w.service.config.experiments
    for k in range(12):
        user = f"u{k}"
        arm = arm_of(experiment, user)
        assert arm is not None
        body = w.get(f"/users/{user}/recommendations?n=4")
        assert body["experiment"] == {"name": "pages", "arm": arm.name}
        if arm.name == "odd-page":
            assert body["placement"] == "odd" and body["recommendation_id"].endswith(
                ".pages.odd-page@odd")
            assert all(int(x["item"][1:]) % 2 == 1 for x in body["items"])
        else:
            assert body["placement"] is None
        # A request naming a placement keeps it: this experiment tests no placement.
        assert w.get(f"/users/{user}/recommendations?n=4&placement=promo")["placement"] == \
            "promo"
    counts = w.service.online.arms() if w.service.online is not None else {}
    assert "pages.odd-page" in counts and "@odd" in counts


def test_an_experiment_on_a_placement_applies_to_requests_asking_for_it_only(
        tmp_path: Path, model: Model, window: SlidingWindow) -> None:
    w = _arms_world(tmp_path, model, window, {**EXPERIMENT, "placement": "promo"})
    (experiment,) = w.service.config.experiments
    users = [f"u{k}" for k in range(12)]
    in_odd = [u for u in users if (a := arm_of(experiment, u)) and a.name == "odd-page"]
    assert in_odd
    for user in in_odd:
        assert w.get(f"/users/{user}/recommendations?n=4")["experiment"] is None
        body = w.get(f"/users/{user}/recommendations?n=4&placement=promo")
        assert body["placement"] == "odd" and body["experiment"]["arm"] == "odd-page"
    batch = w.get(f"/recommendations/batch?users={','.join(users)}&placement=promo&n=3")
    for user in users:
        want = "odd" if user in in_odd else "promo"
        assert batch["results"][user]["placement"] == want, user


def test_an_arm_naming_an_unknown_placement_is_refused_at_start(tmp_path: Path) -> None:
    from streamrec.config import ConfigError
    with pytest.raises(ConfigError) as e:
        Config.load(None, {"STREAMREC_EXPERIMENTS": json.dumps([EXPERIMENT]),
                           "STREAMREC_PLACEMENTS": json.dumps([{"name": "even"}])},
                    service="serve")
    assert e.value.field == "experiments" and "[0].arms[1].placement" in str(e.value)
    assert "'odd'" in str(e.value)
