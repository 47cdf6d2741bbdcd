"""Online evaluation through the serving app: ids on every list, echoes, /stats, /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from tests.unit.test_serving_api import PARAMS, World, board_window

from streamrec.core.scoring.model import Model
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow
from streamrec.serving.online import stats as onlinestats
from streamrec.serving.online.tracker import OnlineTracker

VERSION = "000000000001"


@pytest.fixture(scope="module")
def board() -> tuple[Model, SlidingWindow]:
    """The API tests' checker-board model and its window."""
    window = board_window()
    return fit(window.build(), PARAMS), window


def started(tmp: Path, board: tuple[Model, SlidingWindow], **cfg: object) -> World:
    w = World(tmp, *board, **cfg)
    w.publish(VERSION)
    assert w.tick()
    return w


def metric(text: str, name: str, version: str = VERSION) -> float:
    match = re.search(rf'^{name}\{{model_version="{version}"\}} (\S+)$', text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


def test_every_list_response_carries_a_distinct_recommendation_id(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    w = started(tmp_path, board)
    ids = [w.get("/users/u0/recommendations")["recommendation_id"],
           w.get("/recommendations?user=u1")["recommendation_id"],
           w.get("/popular")["recommendation_id"],
           w.get("/items/i1/similar")["recommendation_id"],
           *(r["recommendation_id"] for r in w.get(
               "/recommendations/batch?users=u2,u3")["results"].values())]
    session = w.client.post("/recommendations", json={"items": ["i1"]}).get_json()
    compat = w.client.get("/?userId=u4")
    ids += [session["recommendation_id"], compat.headers["X-Recommendation-Id"]]
    assert len(set(ids)) == len(ids) == 8 and all(re.fullmatch(r"[0-9a-f]+-[0-9a-f]+", i)
                                                  for i in ids)
    stats = w.get("/stats")["online"]["versions"][VERSION]
    assert stats["lists"] == 8


def test_echoed_events_give_ctr_and_every_event_is_judged_for_the_hit_rate(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    w = started(tmp_path, board)
    served = {u: w.get(f"/users/{u}/recommendations?n=3") for u in ("u0", "u1", "u2", "u3")}
    top = {u: [x["item"] for x in body["items"]] for u, body in served.items()}
    rid = {u: body["recommendation_id"] for u, body in served.items()}
    events = [
        {"user": "u0", "item": top["u0"][0], "recommendation_id": rid["u0"]},
        f"u1:{top['u1'][2]}::{rid['u1']}",  # the text form, rank 3
        {"user": "u2", "item": "not-in-the-list"},  # eligible, a miss
        {"user": "u3", "item": top["u3"][1]},  # a hit (rank 2) without the id
        {"user": "stranger", "item": "i1"},  # never served: not eligible
    ]
    assert w.client.post("/interactions", json=events).status_code == 202
    assert w.fold() == 5
    body = w.get("/stats")
    online = body["online"]["versions"][VERSION]
    assert (online["lists"], online["events"], online["hits"], online["attributed"]) == (4, 4, 3, 2)
    assert online["ctr"] == 0.5 and online["hit_rate"] == 0.75 and online["mean_rank"] == 2.0
    assert body["models"][-1]["version"] == VERSION and "fit" in body["models"][-1]
    assert sum(b["versions"][VERSION]["lists"] for b in body["online"]["series"]) == 4
    text = w.client.get("/metrics").get_data(as_text=True)
    assert metric(text, "streamrec_online_lists_total") == 4
    assert metric(text, "streamrec_online_events_total") == 4
    assert metric(text, "streamrec_online_hits_total") == 3
    assert metric(text, "streamrec_online_attributed_total") == 2
    # ranks 1 and 3 in the text form and u3's hit at rank 2: two hits at rank <= 2
    assert f'streamrec_online_hit_rank_bucket{{le="2.0",model_version="{VERSION}"}} 2.0' in text
    assert f'streamrec_online_hit_rank_sum{{model_version="{VERSION}"}} 6.0' in text
    assert "streamrec_foldin_visible_seconds_count" in text


def test_stats_and_model_give_created_at_the_same_way_rfc3339_and_unix_seconds(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    w = started(tmp_path, board)
    model, loaded = w.get("/model"), w.get("/stats")["models"][-1]
    assert loaded["created_at"] == model["created_at"] and model["created_at"].endswith("Z")
    assert loaded["created_at_unix"] == model["created_at_unix"]
    assert isinstance(model["created_at_unix"], float) and isinstance(loaded["loaded_at"], float)


def test_tracking_off_serves_null_ids_and_stats_say_so(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    w = started(tmp_path, board, online_tracking=False)
    assert w.get("/users/u0/recommendations")["recommendation_id"] is None
    assert "X-Recommendation-Id" not in w.client.get("/?userId=u0").headers
    assert w.get("/stats") == {"tracking": False, "online": None, "experiments": [],
                               "placements": {}, "models": w.get("/stats")["models"]}
    assert "streamrec_online_lists_total" not in w.client.get("/metrics").get_data(as_text=True)


def test_workers_of_a_replica_add_up_through_their_state_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two gunicorn workers: the one answering reads its sibling's file.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    mine, sibling = OnlineTracker(token="a"), OnlineTracker(token="b")
    mine.serve("u", "v1", ["x"], now=100.0)
    sibling.serve("u", "v1", ["y"], now=100.0)
    sibling.observe("u", "y", 1.0, "b-1", event_time=101.0, now=101.0)
    onlinestats.publish(sibling, tmp_path, now=101.0)
    (tmp_path / "online_dead.json").write_text(json.dumps(
        {**OnlineTracker(token="dead").state(0.0), "tracked_users": 7}))
    state = onlinestats.replica_state(mine, now=102.0)
    assert state["versions"]["v1"][:5] == [2, 1, 1, 1, 1]
    assert state["tracked_users"] == 2  # the dead worker's old file: counters only
    text = "".join(f.name for f in onlinestats.families(state))
    assert "streamrec_online_hit_rank" in text


def test_the_console_is_served_with_relative_links(
        tmp_path: Path, board: tuple[Model, SlidingWindow]) -> None:
    w = started(tmp_path, board)
    r = w.client.get("/console")
    assert r.status_code == 308 and r.headers["Location"] == "console/"
    page = w.client.get("/console/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.get_data(as_text=True)
    assert 'src="/' not in html and 'href="/' not in html  # works under a path prefix
    for asset in re.findall(r'(?:src|href)="([^"d][^"]*)"', html):  # not data:
        assert w.client.get(f"/console/{asset}").status_code == 200, asset
    assert w.client.get("/console/../app.py").status_code == 404
