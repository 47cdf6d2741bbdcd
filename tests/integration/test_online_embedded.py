"""Online evaluation end to end: `streamrec run` takes a MovieLens replay whose events echo the
recommendation_id for a known share, and /stats and /metrics equal what the test computes from
the lists it was served and the events it sent."""

from __future__ import annotations

import re
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.embedded import Embedded, http, until

from streamrec.data import movielens

WARM = 20_000  # events learned before any list is served
TEST_SPAN = 6_000  # the next events: their users get one list each, then their events arrive
PER_USER = 10
ECHO_EVERY = 3  # every third test event carries its list's recommendation_id back
POSITIVE = 4.0  # as bench/quality.py: ratings >= 4 are positive


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Embedded]:
    e = Embedded(tmp_path / "data", "--online-positive", str(POSITIVE),
                 "--online-bucket-seconds", "5")
    yield e
    e.cleanup()


def scrape(url: str) -> str:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as r:
        return str(r.read().decode())


def events_read(url: str) -> float:
    """Events the fold-in consumer has read (kept or stale: both are judged)."""
    found = re.findall(r'^streamrec_foldin_events_total{result="(?:kept|stale)"} (\S+)$',
                       scrape(url), re.M)
    return sum(map(float, found))


def sample(text: str, name: str, version: str) -> float:
    m = re.search(rf'^{name}{{model_version="{version}"}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def test_stats_and_metrics_equal_ctr_and_hit_rate_computed_from_the_replay(
        server: Embedded) -> None:
    ratings, _ = movielens.load()
    ratings = sorted(ratings, key=lambda r: r.timestamp)  # stable: ties keep file order
    warm = [{"user": r.user, "item": r.item, "rating": r.rating} for r in ratings[:WARM]]
    for k in range(0, WARM, 1000):
        assert http("POST", f"{server.url}/interactions", warm[k:k + 1000])["accepted"] == 1000
    until("a snapshot of the warm-up", lambda: http("GET", f"{server.url}/model").get(
        "offsets", {}).get("0", 0) >= WARM, timeout=180)

    time.sleep(2.5)  # the lag gauge is refreshed every 2 s by the fold-in loop
    until("the fold-in catching up with the warm-up",
          lambda: "\nstreamrec_foldin_lag_messages 0.0\n" in scrape(server.url))
    read_before = events_read(server.url)

    per_user: dict[str, list[movielens.Rating]] = defaultdict(list)
    for r in ratings[WARM:WARM + TEST_SPAN]:
        if len(per_user[r.user]) < PER_USER:
            per_user[r.user].append(r)
    served = {u: http("GET", f"{server.url}/users/{u}/recommendations?n=10") for u in per_user}
    assert all(body.get("recommendation_id") for body in served.values())

    expected: dict[str, Counter[str]] = defaultdict(Counter)
    for body in served.values():
        expected[body["model_version"]]["lists"] += 1
    events = []
    for k, r in enumerate(r for rs in per_user.values() for r in rs):
        body = served[r.user]
        event = {"user": r.user, "item": r.item, "rating": r.rating}
        echoed = k % ECHO_EVERY == 0
        if echoed:
            event["recommendation_id"] = body["recommendation_id"]
        events.append(event)
        if r.rating < POSITIVE:
            continue
        tally = expected[body["model_version"]]
        tally["events"] += 1
        tally["attributed"] += echoed
        items = [x["item"] for x in body["items"]]
        if r.item in items:
            tally["hits"] += 1
            tally["rank_sum"] += items.index(r.item) + 1
    for k in range(0, len(events), 500):
        assert http("POST", f"{server.url}/interactions", events[k:k + 500])["accepted"] > 0
    until("the fold-in reading every test event",
          lambda: events_read(server.url) >= read_before + len(events))

    assert sum(t["hits"] for t in expected.values()) >= 10  # the replay is not trivial
    assert 0 < sum(t["attributed"] for t in expected.values()) < sum(
        t["events"] for t in expected.values())
    stats = http("GET", f"{server.url}/stats")["online"]
    text = scrape(server.url)
    assert set(stats["versions"]) == set(expected)
    for version, want in expected.items():
        got = stats["versions"][version]
        assert {k: got[k] for k in ("lists", "events", "hits", "attributed")} == {
            k: want[k] for k in ("lists", "events", "hits", "attributed")}, version
        assert got["ctr"] == pytest.approx(want["attributed"] / want["lists"])
        assert got["hit_rate"] == pytest.approx(want["hits"] / want["events"])
        for name in ("lists", "events", "hits", "attributed"):
            assert sample(text, f"streamrec_online_{name}_total", version) == want[name], name
        assert sample(text, "streamrec_online_hit_rank_sum", version) == want["rank_sum"]
        assert sample(text, "streamrec_online_hit_rank_count", version) == want["hits"]
    assert stats["tracked_users"] == len(per_user) and stats["evicted"] == 0
