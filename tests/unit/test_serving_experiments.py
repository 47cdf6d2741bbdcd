"""Experiments through the serving app: the arm scores the list, the answer and its id name
it, per-arm counts in /stats and /metrics, the arm route, results kept in the store."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from tests.unit.test_serving_api import PARAMS, World, board_window

from streamrec.core.experiments.assign import arm_of
from streamrec.core.experiments.spec import Experiment, parse_experiments
from streamrec.core.scoring.model import Model
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow

VERSION = "000000000001"
USERS = [f"u{k}" for k in range(12)]


@pytest.fixture(scope="module")
def board() -> tuple[Model, SlidingWindow]:
    window = board_window()
    return fit(window.build(), PARAMS), window


def _experiment(name: str = "cap", start: float | None = None,
                end: float | None = None) -> Experiment:
    now = time.time()
    (exp,) = parse_experiments([{
        "name": name, "start": now - 60 if start is None else start,
        "end": now + 3600 if end is None else end,
        # historyCap 1: the arm scores from the user's newest event alone, so it differs.
        "arms": [{"name": "control"},
                 {"name": "newest", "scoring": {"historyCap": 1, "recencyDecay": 1.0}}]}])
    return exp


def _world(tmp: Path, board: tuple[Model, SlidingWindow], *experiments: Experiment) -> World:
    w = World(tmp, *board, experiments=experiments)
    w.publish(VERSION)
    assert w.tick()
    return w


def _expected(w: World, exp: Experiment, user: str, n: int = 4) -> list[str]:
    served = w.service.live.served().snapshot.model
    arm = arm_of(exp, user)
    assert arm is not None
    return served.recommend(user, n=n, scoring=arm.scoring_for(served.scoring)).items


def test_a_user_in_an_arm_gets_the_arms_scoring_and_the_answer_and_id_name_it(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    exp = _experiment()
    w = _world(tmp_path, board, exp)
    arms, differ = set(), 0
    for user in USERS:
        body = w.get(f"/users/{user}/recommendations?n=4")
        arm = arm_of(exp, user)
        assert arm is not None
        arms.add(arm.name)
        assert body["experiment"] == {"name": "cap", "arm": arm.name}
        assert body["recommendation_id"].endswith(f".cap.{arm.name}")
        assert [x["item"] for x in body["items"]] == _expected(w, exp, user)
        control = w.service.live.served().snapshot.model.recommend(user, n=4).items
        differ += control != _expected(w, exp, user)
    assert arms == {"control", "newest"} and differ > 0  # the two arms really rank differently
    batch = w.get(f"/recommendations/batch?users={','.join(USERS)}&n=4")["results"]
    for user in USERS:
        assert [x["item"] for x in batch[user]["items"]] == _expected(w, exp, user)
        assert batch[user]["experiment"]["arm"] == arm_of(exp, user).name  # type: ignore[union-attr]
    compat = w.client.get("/?userId=u3&recommendationsNumber=4")
    assert compat.get_json()["recommended_items"] == _expected(w, exp, "u3")
    assert compat.headers["X-Recommendation-Id"].endswith(f".cap.{arm_of(exp, 'u3').name}")  # type: ignore[union-attr]


def test_outside_the_time_range_nobody_is_in_the_experiment(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    now = time.time()
    w = _world(tmp_path, board, _experiment("later", start=now + 3600, end=now + 7200))
    body = w.get("/users/u1/recommendations")
    assert body["experiment"] is None and re.fullmatch(r"[0-9a-f]+-[0-9a-f]+",
                                                       body["recommendation_id"])
    arm = w.get("/experiments/later/users/u1")
    assert arm["state"] == "scheduled" and arm["arm"] is None and arm["drawn_arm"] is not None
    assert arm["reason"] == "the experiment is not running"


def test_the_arm_route_answers_the_served_arm_and_404s_an_unknown_experiment(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    exp = _experiment()
    w = _world(tmp_path, board, exp)
    for user in USERS:
        body = w.get(f"/experiments/cap/users/{user}")
        assert body["arm"] == body["drawn_arm"] == arm_of(exp, user).name  # type: ignore[union-attr]
        assert body["state"] == "running" and body["reason"] is None
    missing = w.get("/experiments/nope/users/u1", status=404)
    assert missing["error"] == "unknown_experiment" and "nope" in missing["message"]
    assert w.get("/experiments/nope", status=404)["error"] == "unknown_experiment"


def test_a_name_no_experiment_can_have_is_a_404_with_tracking_on(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    w = _world(tmp_path, board, _experiment())
    assert w.service.archive is not None
    for name in ("%C2%84", "..", "Cap", "a" * 40, "-cap"):
        body = w.get(f"/experiments/{name}", status=404)
        assert body["error"] == "unknown_experiment", name


def test_lists_clicks_and_hits_are_counted_per_arm_with_intervals_in_stats_and_metrics(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    exp = _experiment()
    w = _world(tmp_path, board, exp)
    served = {u: w.get(f"/users/{u}/recommendations?n=3") for u in USERS}
    events = []
    for k, (user, body) in enumerate(served.items()):
        item = body["items"][k % 3]["item"]
        events.append({"user": user, "item": item, "recommendation_id": body["recommendation_id"]}
                      if k % 2 == 0 else {"user": user, "item": item})
    assert w.client.post("/interactions", json=events).status_code == 202
    assert w.fold() == len(events)
    per_arm: dict[str, list[int]] = {}
    for k, user in enumerate(USERS):
        arm = arm_of(exp, user).name  # type: ignore[union-attr]
        got = per_arm.setdefault(arm, [0, 0, 0, 0])
        got[0] += 1  # lists
        got[1] += k % 2 == 0  # clicked lists (each echoed once)
        got[2] += 1  # hits: every event's item was in the list
        got[3] += k % 3 + 1  # rank
    (result,) = w.get("/stats")["experiments"]
    assert result["name"] == "cap" and result["state"] == "running"
    for arm, (lists, clicked, hits, rank_sum) in per_arm.items():
        a = result["arms"][arm]
        assert (a["lists"], a["clicked_lists"], a["events"], a["hits"]) == (lists, clicked,
                                                                            hits, hits)
        assert a["ctr"]["estimate"] == clicked / lists
        assert a["ctr"]["low"] <= a["ctr"]["estimate"] <= a["ctr"]["high"]
        assert a["mean_rank"]["estimate"] == rank_sum / hits
    cmp = result["vs_control"]["newest"]
    assert cmp["hit_rate"]["includes_zero"] is True  # 100% vs 100%: no difference shown
    assert any("still includes zero" in v for v in cmp["verdicts"])
    text = w.client.get("/metrics").get_data(as_text=True)
    for arm, (lists, *_rest) in per_arm.items():
        assert f'streamrec_experiment_lists_total{{arm="{arm}",experiment="cap"}} {lists}.0' in text
    assert 'streamrec_experiment_rate{arm="control",bound="low",experiment="cap",metric="ctr"}' \
        in text
    assert 'streamrec_experiment_difference{arm="newest",bound="high",experiment="cap",' \
           'metric="hit_rate"}' in text


def test_an_echo_whose_arm_suffix_was_changed_is_not_attributed(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    exp = _experiment()
    w = _world(tmp_path, board, exp)
    user = next(u for u in USERS if arm_of(exp, u).name == "control")  # type: ignore[union-attr]
    body = w.get(f"/users/{user}/recommendations?n=3")
    forged = body["recommendation_id"].rsplit(".", 1)[0] + ".newest"
    event = {"user": user, "item": body["items"][0]["item"], "recommendation_id": forged}
    assert w.client.post("/interactions", json=event).status_code == 202
    w.fold()
    arms = w.get("/stats")["experiments"][0]["arms"]
    assert arms["control"]["attributed"] == arms["newest"]["attributed"] == 0
    assert arms["control"]["hits"] == 1  # still a hit of the list the user was served


def test_results_stay_in_the_store_after_the_experiment_leaves_the_configuration(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    exp = _experiment()
    w = _world(tmp_path, board, exp)
    for user in USERS:
        w.get(f"/users/{user}/recommendations")
    live = w.get("/experiments/cap")
    assert sum(a["lists"] for a in live["arms"].values()) == len(USERS)
    assert w.service.archive is not None and w.service.archive.write() == 1
    w.service.stop()
    later = World(tmp_path, *board)  # the same store, no experiment configured any more
    assert later.get("/experiments")["archived"] == ["cap"]
    kept = later.get("/experiments/cap")
    assert kept["arms"] == live["arms"] and kept["scope"] == "cluster (the store)"


def test_workers_arm_counts_add_up_and_a_state_without_arms_still_merges() -> None:
    from streamrec.serving.online.tracker import OnlineTracker, merge

    one, two = OnlineTracker(), OnlineTracker()
    rid = one.serve("u1", VERSION, ["i1", "i2"], 100.0, arm="cap.control")
    two.serve("u2", VERSION, ["i3"], 100.0, arm="cap.newest")
    two.serve("u3", VERSION, ["i4"], 100.0)  # in no experiment
    assert rid.endswith(".cap.control")
    assert one.observe("u1", "i2", 1.0, rid, 101.0, 101.0) == 2
    old = two.state(102.0)
    del old["arms"]  # a worker of a build before experiments
    merged = merge([one.state(102.0), two.state(102.0), old])
    assert merged["arms"]["cap.control"] == [1, 1, 1, 1, 1, 2, 4]
    assert merged["arms"]["cap.newest"] == [1, 0, 0, 0, 0, 0, 0]  # the old state adds none
    assert merged["versions"][VERSION][0] == 5  # lists: 1 + 2 + the old state's 2
