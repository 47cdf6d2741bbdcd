"""An A/B test end to end: `streamrec run` with two arms (recency on, recency off) takes a
MovieLens replay, and each arm's online hit rate equals what the prequential harness
(``streamrec.evaluation.prequential.replay``) computes for the same users over the served
snapshot with that arm's scoring.

Each test user is served one list, then sends their next events (up to ``PER_USER``): the
online tracker judges each positive one against that list, and the harness, scoring the same
events with a learner frozen at the served snapshot, asks the same snapshot with the same
scoring for the same user, so it ranks the same list. The two must agree exactly, hit for hit.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.embedded import Embedded, http, until

from streamrec.adapters.localstore import LocalStore
from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.core.events.event import Event
from streamrec.core.experiments.assign import arm_of
from streamrec.core.experiments.spec import Arm, parse_experiments
from streamrec.core.scoring.model import Model
from streamrec.data import movielens
from streamrec.evaluation.prequential import Protocol, replay

WARM = 20_000  # events learned before any list is served (one snapshot of them)
TEST_SPAN = 6_000  # the next events: each user's first PER_USER are test events
PER_USER = 10
POSITIVE = 4.0
EXPERIMENT = [{"name": "recency", "start": "2020-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z",
               "arms": [{"name": "on"}, {"name": "off", "scoring": {"recencyDecay": 0}}]}]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Embedded]:
    e = Embedded(tmp_path / "data", "--online-positive", str(POSITIVE),
                 "--experiments", json.dumps(EXPERIMENT), "--retrain-every", "1000000")
    yield e
    e.cleanup()


class _Frozen:
    """A learner that never relearns (the snapshot serves the whole test)."""

    def warm(self, events: Any) -> None: ...

    def learn(self, event: Event) -> None: ...

    def info(self) -> dict[str, Any]:
        return {}


class _ArmView:
    """The harness's recommender for one arm: the served snapshot, the arm's scoring."""

    kind = "experiment-arm"

    def __init__(self, model: Model, arm: Arm) -> None:
        self.model, self.arm, self.name = model, arm, f"arm {arm.name}"
        self.learner, self.params = _Frozen(), {"arm": arm.name}

    def recommend(self, user: str, n: int) -> list[str]:
        scoring = self.arm.scoring_for(self.model.scoring)
        return self.model.recommend(user, n, scoring=scoring).items

    def diagnostics(self) -> dict[str, Any]:
        return {}


def test_each_arms_online_hit_rate_equals_the_prequential_harness_for_its_users(
        server: Embedded, tmp_path: Path) -> None:
    (experiment,) = parse_experiments(EXPERIMENT)
    ratings = sorted(movielens.load()[0], key=lambda r: r.timestamp)
    warm = [{"user": r.user, "item": r.item, "rating": r.rating} for r in ratings[:WARM]]
    for k in range(0, WARM, 1000):
        assert http("POST", f"{server.url}/interactions", warm[k:k + 1000])["accepted"] == 1000
    until("a snapshot of the warm-up", lambda: http("GET", f"{server.url}/model").get(
        "offsets", {}).get("0", 0) >= WARM, timeout=180)
    first: dict[str, list[movielens.Rating]] = {}
    for r in ratings[WARM:WARM + TEST_SPAN]:
        if len(first.setdefault(r.user, [])) < PER_USER:
            first[r.user].append(r)
    served = {u: http("GET", f"{server.url}/users/{u}/recommendations?n=10") for u in first}
    (version,) = {body["model_version"] for body in served.values()}
    for user, body in served.items():
        arm = arm_of(experiment, user)
        assert arm is not None and body["experiment"] == {"name": "recency", "arm": arm.name}
    events = [{"user": r.user, "item": r.item, "rating": r.rating}
              for rs in first.values() for r in rs]
    positives = sum(e["rating"] >= POSITIVE for e in events)
    assert http("POST", f"{server.url}/interactions", events)["accepted"] == len(events)

    def judged() -> dict[str, Any] | None:
        (result,) = http("GET", f"{server.url}/stats")["experiments"]
        done = sum(a["events"] for a in result["arms"].values()) == positives
        return result if done else None

    result = until("every test event judged", judged, timeout=60)

    store = LocalStore(server.data_dir / "snapshots")
    model = read_snapshot(store.fetch(version, tmp_path / "fetched")).model
    hit_rates = {}
    for arm in experiment.arms:
        users = [u for u in first if arm_of(experiment, u) == arm]
        # The warm-up's events, then this arm's test events; warmup splits them exactly.
        stream = [Event(r.user, r.item, float(r.rating), float(r.timestamp))
                  for r in [*ratings[:WARM], *(r for u in users for r in first[u])]]
        protocol = Protocol(k=10, positive=POSITIVE, warmup=(WARM + 0.5) / len(stream))
        (harness,) = replay(stream, [_ArmView(model, arm)], protocol).strategies
        hits = sum(round((part["recall"] or 0.0) * int(part["events"] or 0))
                   for part in (harness.warm, harness.cold))
        online = result["arms"][arm.name]
        assert online["events"] == sum(int(p["events"] or 0) for p in (harness.warm, harness.cold))
        assert online["hits"] == hits, arm.name
        assert online["lists"] == len(users)
        hit_rates[arm.name] = online["hit_rate"]["estimate"]
    assert sum(a["hits"] for a in result["arms"].values()) >= 10  # the replay is not trivial
    comparison = result["vs_control"]["off"]["hit_rate"]
    assert comparison["estimate"] == pytest.approx(hit_rates["off"] - hit_rates["on"])
    print(f"\nhit rates per arm: {hit_rates}; off - on: {comparison}")
