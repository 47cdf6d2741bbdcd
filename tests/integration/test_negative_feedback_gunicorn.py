"""Negative feedback end to end: events through ``POST /interactions`` into a real Kafka, folded
in by ``streamrec serve`` under gunicorn, and the lists it answers.

A user whose only signal is a dislike gets the popular items minus the disliked one, marked
``fallback: "popular"`` (they got the items most unlike it, with ``fallback: null``, before);
a user with likes too keeps their own list, without the disliked item.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from tests.support.serving import version_name
from tests.support.trainerproc import ServingProc, wait_for

from streamrec.adapters.s3store import S3Store
from streamrec.adapters.snapshotfiles import write_snapshot
from streamrec.core.events import Event
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.training import fit, with_scorer, with_scoring
from streamrec.core.window.sliding import SlidingWindow


def _snapshot(directory: Path, version: str) -> Path:
    """What the trainer publishes by default (recency and the EASE blend), fitted on a window
    where "neg-old" only disliked i0."""
    window = SlidingWindow(10_000)
    window.extend(Event(f"u{u}", f"i{i}", 1.0 + (u * 7 + i * 3) % 4)
                  for u in range(40) for i in range(30) if (u * 31 + i * 17) % 5 < 2)
    window.append(Event("neg-old", "i0", -3.0))
    model = fit(window.build(), ALSParams(factors=8, iterations=8, num_threads=1))
    model = with_scorer(with_scoring(model, window.contents(), ScoringParams()), "item_item",
                           ItemItemParams())
    write_snapshot(directory / version, model, window.contents(), {0: 0}, version)
    return directory / version


def _post(serving: ServingProc, events: list[dict[str, Any]]) -> None:
    r = serving.http.post(serving.base + "/interactions", json=events, timeout=30)
    assert r.status_code == 202, r.text


def _list(serving: ServingProc, route: str) -> dict[str, Any]:
    r = serving.get(route)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    if "results" in body:
        body = next(iter(body["results"].values()))
    return body


def test_a_dislike_only_user_gets_popular_items_minus_the_disliked_one_on_every_route(
        kafka: Any, s3: Any, tmp_path: Path) -> None:
    topic = kafka.create_topic(f"neg-{uuid.uuid4().hex[:8]}", partitions=2)
    S3Store(s3.bucket, "", client=s3.client()).publish(
        _snapshot(tmp_path / "snap", version_name(1)), version_name(1))
    serving = ServingProc(kafka.bootstrap, topic, s3, tmp_path / "serving")
    try:
        serving.wait_model(120)
        popular = [x["item"] for x in serving.get("/popular?n=6").json()["items"]]
        top = popular[0]
        mine = _list(serving, "/users/u1/recommendations?n=5")
        assert mine["fallback"] is None
        disliked_by_u1 = mine["items"][0]["item"]
        _post(serving, [{"user": "neg-new", "item": top, "type": "dislike"},
                        {"user": "u1", "item": disliked_by_u1, "type": "dislike"}])
        routes = ("/users/neg-new/recommendations?n=5", "/recommendations?user=neg-new&n=5",
                  "/recommendations/batch?users=neg-new&n=5")
        # Both events, on whichever worker answers (each worker folds in on its own).
        wait_for(lambda: _list(serving, routes[0])["fresh_events"] == 1
                 and _list(serving, "/users/u1/recommendations?n=5")["fresh_events"] == 1, 30,
                 "the dislikes to be folded in")
        for route in routes:
            body = _list(serving, route)
            assert body["fallback"] == "popular", route
            assert [x["item"] for x in body["items"]] == popular[1:6], route
        old = _list(serving, "/users/neg-old/recommendations?n=5")  # in the snapshot
        assert old["fallback"] == "popular"
        assert [x["item"] for x in old["items"]] == [i for i in popular if i != "i0"][:5]
        compat = serving.get("/?userId=neg-new&recommendationsNumber=5").json()
        assert compat["recommended_items"] == popular[1:6]
        # Whichever worker answers: each folds the dislike in on its own, within milliseconds.
        after = wait_for(lambda: (lambda b: b if b["fresh_events"] == 1 else None)(
            _list(serving, "/users/u1/recommendations?n=5")), 30, "u1's dislike on this worker")
        assert after["fallback"] is None and after["fresh_events"] == 1
        assert disliked_by_u1 not in [x["item"] for x in after["items"]]
    finally:
        serving.close()
