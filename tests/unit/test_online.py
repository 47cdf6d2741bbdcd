"""Online evaluation math (serving/online/tracker.py) on hand-made streams with known answers."""

from __future__ import annotations

from typing import Any

import pytest

from streamrec.core.events import Event
from streamrec.core.scoring.hits import hit_rank, score
from streamrec.evaluation.prequential import Protocol, replay
from streamrec.evaluation.strategies import Learner, Popularity, Recommender
from streamrec.evaluation.synthetic import SyntheticSpec, generate
from streamrec.serving.online.tracker import OnlineTracker, Tally, merge


def tally(tracker: OnlineTracker, version: str) -> Tally:
    return Tally.from_list(tracker.state(0.0)["versions"][version])


def test_hit_rate_counts_positive_events_of_served_users_and_the_rank_of_the_hit() -> None:
    t = OnlineTracker(horizon=100.0)
    t.serve("alice", "v1", ["a", "b", "c"], now=10.0)
    t.serve("bob", "v1", ["x", "y"], now=10.0)
    assert t.observe("alice", "c", 1.0, None, event_time=20.0, now=20.0) == 3
    assert t.observe("alice", "z", 1.0, None, event_time=21.0, now=21.0) is None  # a miss
    assert t.observe("bob", "x", 1.0, None, event_time=22.0, now=22.0) == 1
    assert t.observe("carol", "a", 1.0, None, event_time=23.0, now=23.0) is None  # never served
    v1 = tally(t, "v1")
    assert (v1.lists, v1.events, v1.hits, v1.rank_sum) == (2, 3, 2, 4)
    rates = v1.rates()
    assert rates["hit_rate"] == pytest.approx(2 / 3)
    assert rates["mean_rank"] == 2.0
    assert rates["rank_buckets"]["1"] == 1 and rates["rank_buckets"]["3"] == 1


def test_the_horizon_edge_is_inclusive_and_events_before_the_list_do_not_count() -> None:
    t = OnlineTracker(horizon=60.0)
    t.serve("u", "v1", ["a"], now=100.0)
    assert t.observe("u", "a", 1.0, None, event_time=99.999, now=101.0) is None  # before it
    assert t.observe("u", "a", 1.0, None, event_time=160.0, now=161.0) == 1  # exactly at edge
    assert t.observe("u", "a", 1.0, None, event_time=160.001, now=161.0) is None  # past it
    v1 = tally(t, "v1")
    assert (v1.events, v1.hits) == (1, 1)


def test_only_the_last_list_served_to_a_user_is_judged() -> None:
    t = OnlineTracker()
    t.serve("u", "v1", ["a", "b"], now=0.0)
    t.serve("u", "v2", ["c", "d"], now=5.0)
    assert t.observe("u", "a", 1.0, None, event_time=6.0, now=6.0) is None
    assert t.observe("u", "d", 1.0, None, event_time=7.0, now=7.0) == 2
    assert (tally(t, "v1").events, tally(t, "v2").events, tally(t, "v2").hits) == (0, 2, 1)


def test_an_event_read_after_the_users_next_request_is_judged_against_the_list_before() -> None:
    t = OnlineTracker()
    t.serve("u", "v1", ["a", "b"], now=10.0)
    t.serve("u", "v1", ["c"], now=12.0)  # the next request came before the fold-in read it
    assert t.observe("u", "b", 1.0, None, event_time=11.0, now=12.5) == 2
    t.serve("u", "v1", ["d"], now=13.0)  # only one list back is kept
    assert t.observe("u", "b", 1.0, None, event_time=11.0, now=13.5) is None
    assert (tally(t, "v1").events, tally(t, "v1").hits) == (1, 1)


def test_events_below_the_positive_weight_are_ignored() -> None:
    t = OnlineTracker(positive=4.0)
    rid = t.serve("u", "v1", ["a"], now=0.0)
    assert t.observe("u", "a", 3.0, rid, event_time=1.0, now=1.0) is None
    assert t.observe("u", "a", 4.0, rid, event_time=1.0, now=1.0) == 1
    v1 = tally(t, "v1")
    assert (v1.events, v1.hits, v1.attributed) == (1, 1, 1)


def test_a_dislike_of_a_listed_item_is_never_a_hit_nor_a_click() -> None:
    t = OnlineTracker()  # no positive threshold: every positive weight counts
    rid = t.serve("u", "v1", ["a", "b"], now=0.0)
    assert t.observe("u", "a", -3.0, rid, event_time=1.0, now=1.0) is None
    assert t.observe("u", "b", 1.0, rid, event_time=1.0, now=1.0) == 2
    v1 = tally(t, "v1")
    assert (v1.events, v1.hits, v1.attributed) == (1, 1, 1)


def test_ctr_counts_echoed_ids_of_any_earlier_list_for_the_version_that_served_it() -> None:
    t = OnlineTracker(token="w1")
    first = t.serve("u", "v1", ["a"], now=0.0)
    second = t.serve("u", "v2", ["b"], now=1.0)
    t.serve(None, "v2", ["c"], now=1.0)  # an anonymous list: counted, never a user's last
    assert first == "w1-1" and second == "w1-2"
    t.observe("u", "a", 1.0, first, event_time=2.0, now=2.0)  # echo of an older list
    t.observe("u", "b", 1.0, second, event_time=2.0, now=2.0)
    t.observe("u", "b", 1.0, "w2-1", event_time=2.0, now=2.0)  # another worker's id
    t.observe("u", "b", 1.0, "w1-zz", event_time=2.0, now=2.0)  # not one of ours
    t.observe("u", "b", 1.0, "w1-99", event_time=2.0, now=2.0)  # never issued
    v1, v2 = tally(t, "v1"), tally(t, "v2")
    assert (v1.lists, v1.attributed) == (1, 1)
    assert (v2.lists, v2.attributed) == (2, 1)
    assert v2.rates()["ctr"] == 0.5
    # Hit rate ignores the ids: every event judged against the last list, ["b"].
    assert (v2.events, v2.hits) == (5, 4)


def test_ctr_counts_each_id_and_item_once_and_only_for_the_user_it_was_issued_to() -> None:
    t = OnlineTracker(token="w1")
    rid = t.serve("u", "v1", ["a", "b"], now=0.0)
    for _ in range(3):  # echoed again, or replayed by the fold-in: one click
        t.observe("u", "a", 1.0, rid, event_time=1.0, now=1.0)
    t.observe("intruder", "b", 1.0, rid, event_time=1.0, now=1.0)  # issued to "u", not them
    assert tally(t, "v1").attributed == 1
    t.observe("u", "b", 1.0, rid, event_time=1.0, now=1.0)  # another item of the list
    t.observe("u", "z", 1.0, rid, event_time=1.0, now=1.0)  # beyond the list's 2 items
    assert tally(t, "v1").attributed == 2
    # An anonymous list belongs to the first user who echoes it.
    anon = t.serve(None, "v1", ["c"], now=2.0)
    t.observe("s1", "c", 1.0, anon, event_time=3.0, now=3.0)
    t.observe("s2", "c", 1.0, anon, event_time=3.0, now=3.0)
    assert tally(t, "v1").attributed == 3


def test_an_id_older_than_the_ring_is_not_attributed() -> None:
    t = OnlineTracker(token="w1", max_ids=2)
    old = t.serve("u", "v1", ["a"], now=0.0)
    t.serve("u", "v1", ["b"], now=0.0)
    t.serve("u", "v1", ["c"], now=0.0)
    t.observe("u", "a", 1.0, old, event_time=1.0, now=1.0)
    assert tally(t, "v1").attributed == 0


def test_a_forgotten_user_is_judged_no_more_and_their_ids_are_not_attributed() -> None:
    t = OnlineTracker(token="w1")
    rid = t.serve("gone", "v1", ["a"], now=0.0)
    t.serve("kept", "v1", ["a"], now=0.0)
    assert t.forget(lambda user: user == "gone") == 1 and len(t) == 1
    assert t.observe("gone", "a", 1.0, rid, event_time=1.0, now=1.0) is None  # no last list
    assert t.observe("kept", "a", 1.0, None, event_time=1.0, now=1.0) == 1
    v1 = tally(t, "v1")
    assert (v1.events, v1.hits, v1.attributed) == (1, 1, 0)
    assert t.forget(lambda user: user == "gone") == 0


def test_the_lru_keeps_max_users_and_counts_evictions() -> None:
    t = OnlineTracker(max_users=2)
    for k, user in enumerate(("a", "b", "c")):
        t.serve(user, "v1", ["i"], now=float(k))
    assert len(t) == 2 and t.evicted == 1
    assert t.observe("a", "i", 1.0, None, event_time=5.0, now=5.0) is None  # evicted
    assert t.observe("c", "i", 1.0, None, event_time=5.0, now=5.0) == 1
    t.serve("b", "v1", ["i"], now=6.0)  # b becomes the most recent; c is next to go
    t.serve("d", "v1", ["i"], now=7.0)
    assert t.observe("c", "i", 1.0, None, event_time=8.0, now=8.0) is None
    assert t.observe("b", "i", 1.0, None, event_time=8.0, now=8.0) == 1
    assert t.state(9.0)["evicted"] == 2


def test_tallies_keep_the_newest_versions_and_the_sliding_buckets() -> None:
    t = OnlineTracker(max_versions=2, bucket_seconds=10.0, buckets=3)
    for k, version in enumerate(("v1", "v2", "v3")):
        t.serve(f"u{k}", version, ["a"], now=10.0 * k)
    t.observe("u0", "a", 1.0, None, event_time=25.0, now=25.0)  # v1's list: dropped version
    state = t.state(25.0)
    assert list(state["versions"]) == ["v2", "v3"]
    assert [start for start, _ in state["series"]] == [0.0, 10.0, 20.0]
    assert Tally.from_list(state["series"][2][1]["v3"]).events == 0
    t.serve("u9", "v3", ["a"], now=45.0)  # a fourth bucket pushes out the first
    assert [start for start, _ in t.state(45.0)["series"]] == [20.0, 40.0]  # the last 3 only
    assert t.state(100.0)["series"] == []
    assert list(t.state(100.0)["versions"]) == ["v2", "v3"]  # totals stay


def test_a_user_served_by_two_replicas_is_judged_by_each_and_the_sums_combine() -> None:
    # Replica A served alice [a, b] at t=0; replica B served her [c] at t=10 (a load
    # balancer without affinity). Both read every event (fold-in consumes the whole topic).
    a, b = OnlineTracker(token="A"), OnlineTracker(token="B")
    rid_a = a.serve("alice", "v1", ["a", "b"], now=0.0)
    rid_b = b.serve("alice", "v1", ["c"], now=10.0)
    b.serve("bob", "v1", ["a"], now=10.0)
    stream = [("alice", "c", rid_b, 20.0), ("alice", "b", rid_a, 21.0), ("bob", "z", None, 22.0)]
    for replica in (a, b):
        for user, item, rid, ts in stream:
            replica.observe(user, item, 1.0, rid, event_time=ts, now=ts)
    combined = Tally.from_list(merge([a.state(30.0), b.state(30.0)])["versions"]["v1"])
    # A: alice's 2 events eligible, 1 hit (b, rank 2); B: alice's 2 + bob's 1, 1 hit (c, rank 1).
    # Each echoed id is attributed once, by the replica that issued it.
    assert (combined.lists, combined.events, combined.hits, combined.rank_sum) == (3, 5, 2, 3)
    assert combined.attributed == 2
    assert combined.rates()["ctr"] == pytest.approx(2 / 3)
    assert merge([a.state(30.0), b.state(30.0)])["tracked_users"] == 3


def test_merge_adds_bucket_by_bucket_and_bounds_the_versions() -> None:
    a, b = OnlineTracker(bucket_seconds=60.0), OnlineTracker(bucket_seconds=60.0)
    a.serve("u", "v1", ["i"], now=0.0)
    b.serve("u", "v1", ["i"], now=30.0)
    b.serve("u", "v2", ["i"], now=70.0)
    merged = merge([a.state(80.0), b.state(80.0)], max_versions=1)
    assert list(merged["versions"]) == ["v2"]
    assert [(start, {v: t[0] for v, t in per.items()}) for start, per in merged["series"]] == [
        (0.0, {}), (60.0, {"v2": 1})]
    both = merge([a.state(80.0), b.state(80.0)])
    assert both["series"][0][1]["v1"][0] == 2 and both["workers"] == 2


def test_hit_rank_agrees_with_the_prequential_score() -> None:
    # The console's hit rate and the bench's recall@10 share one definition of a hit.
    items = ["a", "b", "c"]
    for item in ("a", "c", "z"):
        rank = hit_rank(items, item)
        s = score(items, item, 10)
        assert s.recall == (1.0 if rank is not None else 0.0)
        assert s.rr == (1.0 / rank if rank is not None else 0.0)


class _ServedLists:
    """A replay strategy whose lists are served through a tracker, and whose learner has the
    tracker judge each event before learning it: the serving path, inside the replay."""

    def __init__(self, inner: Recommender, tracker: OnlineTracker) -> None:
        self.inner, self.tracker, self.clock = inner, tracker, 0.0
        self.name, self.kind, self.params = inner.name, inner.kind, inner.params
        self.learner: Learner = self

    def recommend(self, user: str, n: int) -> list[str]:
        items = self.inner.recommend(user, n)
        self.tracker.serve(user, "replay", items, now=self.clock)
        return items

    def warm(self, events: Any) -> None:
        self.inner.learner.warm(events)

    def learn(self, event: Event) -> None:
        self.clock += 1.0
        self.tracker.observe(event.user, event.item, event.weight, None,
                             event_time=self.clock, now=self.clock)
        self.inner.learner.learn(event)

    def info(self) -> dict[str, Any]:
        return {}

    def diagnostics(self) -> dict[str, Any]:
        return {}


def test_online_hit_rate_with_a_list_before_every_positive_event_is_the_prequential_recall():
    # docs/evaluation.md: the console's hit rate and the bench's recall@10 are one definition.
    events = generate(SyntheticSpec(events=3000, users=60, items=80, seed=3))
    protocol = Protocol(k=10, positive=1.0, warmup=0.2)
    tracker = OnlineTracker(horizon=1e9, positive=protocol.positive)
    result = replay(events, [_ServedLists(Popularity(500), tracker)], protocol)
    strategy = result.strategies[0]
    scored = {part: strategy.__dict__[part] for part in ("warm", "cold")}
    n = sum(int(p["events"] or 0) for p in scored.values())
    recall = sum(float(p["recall"] or 0.0) * int(p["events"] or 0) for p in scored.values()) / n
    online = tally(tracker, "replay")
    assert online.events == n == result.scored_events
    assert online.hits / online.events == pytest.approx(recall)
    assert 0.0 < recall < 1.0
