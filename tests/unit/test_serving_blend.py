"""Serving with recency and the item-item blend: one event changes the next answer, no retrain."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_serving_api import PARAMS, World, board_window

from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.training import fit, with_scorer, with_scoring


def test_one_event_changes_a_blended_answer_with_no_retrain(tmp_path: Path):
    window = board_window()
    model = with_scoring(fit(window.build(), PARAMS), window.contents(),
                         ScoringParams(recency_decay=0.1, item_item_weight=0.5))
    model = with_scorer(model, "item_item", ItemItemParams(l2=5.0), threads=1)
    world = World(tmp_path, model, window)
    world.publish("000000000001")
    assert world.tick()
    served = world.get("/model")
    assert served["params"]["scoring"]["item_item_weight"] == 0.5
    assert served["params"]["item_item"]["kind"] == "ease"

    before = world.get("/users/u0/recommendations?n=3")
    r = world.client.post("/interactions", json={"user": "u0", "item": "i1", "weight": 5,
                                                 "ts": 1_700_000_000.0})
    assert r.status_code == 202
    assert world.fold() == 1
    after = world.get("/users/u0/recommendations?n=3")
    assert after["model_version"] == before["model_version"] == "000000000001"
    assert after["fresh_events"] == 1
    assert after["items"] != before["items"] and "i1" not in {x["item"] for x in after["items"]}
    # The other blended routes take the fresh event too.
    batch = world.get("/recommendations/batch?users=u0&n=3")
    assert batch["results"]["u0"]["items"] == after["items"]
    assert world.get("/users/u0/because/i3")["items"]
