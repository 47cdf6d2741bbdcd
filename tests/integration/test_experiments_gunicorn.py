"""Two gunicorn workers agree on every user's arm: `streamrec serve --workers 2` with an
experiment in STREAMREC_EXPERIMENTS (as the operator's ConfigMap passes it), on a real Kafka.

Requests land on either worker (the recommendation id's prefix says which); every user is
asked until both workers have answered for them, and each answer's arm, the arm route's and
the test process's own `arm_of` must be one and the same.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import requests
from tests.support.serving import publish_snapshot, serve

from streamrec.adapters.stores import LocalStore
from streamrec.core.experiments.assign import arm_of
from streamrec.core.experiments.spec import parse_experiments

EXPERIMENT = [{"name": "split", "start": "2020-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z",
               "traffic": 0.8, "arms": [{"name": "a"}, {"name": "b", "weight": 2},
                                        {"name": "c", "scoring": {"recencyDecay": 0}}]}]
USERS = 60


def test_two_workers_agree_on_every_assignment(kafka: Any, tmp_path: Path) -> None:
    (experiment,) = parse_experiments(EXPERIMENT)
    topic = kafka.create_topic("experiments-gunicorn")
    store = LocalStore(tmp_path / "store")
    publish_snapshot(store, tmp_path / "work", 1)
    with serve(tmp_path, store.root, bootstrap=kafka.bootstrap, topic=topic, workers=2,
               env={"STREAMREC_EXPERIMENTS": json.dumps(EXPERIMENT)}) as server:
        seen: dict[str, dict[str, str | None]] = defaultdict(dict)  # user -> worker -> arm
        for _ in range(40):  # a fresh connection each: gunicorn's workers share the socket
            for k in range(USERS):
                user = f"u{k}"
                if len(seen[user]) == 2:
                    continue
                body = requests.get(f"{server.base}/users/{user}/recommendations?n=3",
                                    timeout=10).json()
                worker = body["recommendation_id"].split("-")[0]
                seen[user][worker] = None if body["experiment"] is None \
                    else body["experiment"]["arm"]
                if body["experiment"] is not None:
                    assert body["recommendation_id"].endswith(f".split.{seen[user][worker]}")
            if all(len(w) == 2 for w in seen.values()):
                break
        both = [u for u, w in seen.items() if len(w) == 2]
        assert len(both) == USERS, f"only {len(both)} users were answered by both workers"
        for user, by_worker in seen.items():
            drawn = arm_of(experiment, user)
            want = None if drawn is None else drawn.name
            assert set(by_worker.values()) == {want}, (user, by_worker)
            route = requests.get(f"{server.base}/experiments/split/users/{user}",
                                 timeout=10).json()
            assert route["arm"] == want, (user, route)
        arms = {a for w in seen.values() for a in w.values()}
        assert arms == {None, "a", "b", "c"}  # the split covers every arm and the outside
