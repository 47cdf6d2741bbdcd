"""FreshEvents: bounded per user and in total (LRU), and never counting a snapshot's events."""

from __future__ import annotations

from streamrec.core.events import Event
from streamrec.serving.live.fresh import FreshEvents


def test_per_user_bound_keeps_the_newest_events_and_counts_the_rest():
    fresh = FreshEvents(max_per_user=3, max_total=100)
    for k in range(5):
        fresh.add(Event("u", f"i{k}"), 0, k)
    assert fresh.pairs("u") == [("i2", 1.0), ("i3", 1.0), ("i4", 1.0)]
    assert len(fresh) == 3 and fresh.evicted == 2


def test_total_bound_evicts_the_least_recently_active_user_first():
    fresh = FreshEvents(max_per_user=10, max_total=4)
    fresh.add(Event("old", "i1"), 0, 0)
    fresh.add(Event("busy", "i1"), 0, 1)
    fresh.add(Event("old", "i2"), 0, 2)  # "old" is now the most recent
    fresh.add(Event("busy", "i2"), 0, 3)
    fresh.add(Event("new", "i1"), 0, 4)  # over the bound: "old" was touched before "busy"
    assert fresh.count("old") == 0 and fresh.count("busy") == 2 and fresh.count("new") == 1
    assert len(fresh) == 3 and fresh.evicted == 2


def test_advance_drops_events_below_the_snapshot_offsets_and_ignores_late_ones():
    fresh = FreshEvents()
    for k in range(4):
        fresh.add(Event("u", f"i{k}"), 0, k)
    fresh.add(Event("u", "p1"), 1, 0)
    assert fresh.advance({0: 2}) == 2
    assert fresh.pairs("u") == [("i2", 1.0), ("i3", 1.0), ("p1", 1.0)]
    assert fresh.add(Event("u", "replayed"), 0, 1) is False and fresh.stale == 1
    assert fresh.advance({0: 1}) == 0  # an older snapshot never lowers the floor
    assert fresh.floor() == {0: 2}
    assert fresh.advance({0: 4, 1: 1}) == 3 and fresh.users == 0 and len(fresh) == 0
