"""Placements under `streamrec serve --workers 2` on a real Kafka: rotation across gunicorn's
workers (each reads the other's impressions from the impressions topic), and a rule change in
the watched file live on both workers without a restart.

Requests land on either worker (the recommendation id's prefix says which); a fresh connection
each, as gunicorn's workers share the listening socket.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import requests
from tests.support.serving import publish_snapshot, serve, wait_for

from streamrec.adapters.stores import LocalStore

ROTATE = {"name": "rotate", "rotation": {"seconds": 600, "factor": 0.0}}


def _get(base: str, url: str) -> requests.Response:
    return requests.get(f"{base}{url}", timeout=10)


def test_rotation_spans_both_workers_and_a_rule_change_is_live_on_both(
        kafka: Any, tmp_path: Path) -> None:
    topic = kafka.create_topic("placements-gunicorn")
    kafka.create_topic(f"{topic}.impressions")
    store = LocalStore(tmp_path / "store")
    publish_snapshot(store, tmp_path / "work", 1)
    placements = tmp_path / "placements.json"
    placements.write_text(json.dumps([ROTATE]))
    with serve(tmp_path, store.root, bootstrap=kafka.bootstrap, topic=topic, workers=2,
               env={"STREAMREC_PLACEMENTS": str(placements)}) as server:
        shown: list[tuple[str, list[str]]] = []  # (worker, items) in order
        for _ in range(12):
            body = _get(server.base, "/users/u0/recommendations?placement=rotate&n=2").json()
            assert body["placement"] == "rotate"
            items = [x["item"] for x in body["items"]]
            before = {i for _, listed in shown for i in listed}
            assert not set(items) & before, (items, shown)  # nothing shown twice, any worker
            shown.append((body["recommendation_id"].split("-")[0], items))
            # The other worker reads the impression back (a poll waits at most 50 ms).
            time.sleep(0.3)
            if len({w for w, _ in shown}) == 2 and len(shown) >= 4:
                break
        assert len({w for w, _ in shown}) == 2, f"one worker answered every request: {shown}"

        placements.write_text(json.dumps([ROTATE, {"name": "few",
                                                   "filter": "item in ['i1', 'i2', 'i3']"}]))
        answered: dict[str, list[str]] = {}

        def both_take_it() -> bool:
            r = _get(server.base, "/popular?placement=few&n=5")
            if r.status_code == 200:
                body = r.json()
                answered[body["recommendation_id"].split("-")[0]] = [
                    x["item"] for x in body["items"]]
            return len(answered) == 2

        assert wait_for(both_take_it, 20), (answered, server.log_text()[-2000:])
        assert all(set(items) <= {"i1", "i2", "i3"} and items for items in answered.values())
        listed = _get(server.base, "/placements").json()
        assert [p["name"] for p in listed["placements"]] == ["rotate", "few"]
        assert listed["path"] == str(placements) and listed["error"] is None
