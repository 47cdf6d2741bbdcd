"""SlidingWindow: the latest W events, summed pairs, compaction, decay and exact resume."""

from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamrec.core.events import Event
from streamrec.core.window.sliding import SlidingWindow, WindowMatrix


def as_dict(matrix: WindowMatrix) -> dict[tuple[str, str], float]:
    coo = matrix.user_items.tocoo()
    return {
        (matrix.user_ids[u], matrix.item_ids[i]): float(w)
        for u, i, w in zip(coo.row, coo.col, coo.data, strict=True)
    }


def test_keeps_only_the_latest_capacity_events():
    window = SlidingWindow(3)
    for k in range(5):
        window.append(f"u{k}", f"i{k}")
    assert len(window) == 3
    assert [e.user for e in window.contents().events()] == ["u2", "u3", "u4"]


def test_total_appended_counts_every_event_ever_added():
    window = SlidingWindow(2)
    window.extend(Event("u", "i") for _ in range(7))
    window.append("u", "j")
    assert window.total_appended == 8 and len(window) == 2


def test_duplicate_pairs_sum_their_weights():
    window = SlidingWindow(10)
    window.extend([Event("u", "i", 1.0), Event("u", "i", 2.5), Event("u", "j")])
    assert as_dict(window.build()) == {("u", "i"): 3.5, ("u", "j"): 1.0}


def test_build_is_a_float32_csr_of_users_by_items():
    window = SlidingWindow(10)
    window.extend([Event("a", "x"), Event("b", "y"), Event("b", "z")])
    matrix = window.build()
    assert matrix.user_items.format == "csr" and matrix.user_items.dtype == np.float32
    assert matrix.user_items.shape == (2, 3)
    assert (matrix.user_ids, matrix.item_ids) == (["a", "b"], ["x", "y", "z"])
    assert matrix.events == 3


def test_ids_that_fell_out_of_the_window_are_dropped_at_build():
    window = SlidingWindow(2)
    window.extend([Event("old", "gone"), Event("a", "x"), Event("b", "x")])
    matrix = window.build()
    assert matrix.user_ids == ["a", "b"] and matrix.item_ids == ["x"]
    assert matrix.user_items.shape == (2, 1)


def test_popularity_counts_events_per_item():
    window = SlidingWindow(10)
    window.extend([Event("a", "x", 5.0), Event("b", "x"), Event("a", "x"), Event("c", "y")])
    matrix = window.build()
    assert dict(zip(matrix.item_ids, matrix.popularity.tolist(), strict=True)) == {
        "x": 3.0,
        "y": 1.0,
    }


def test_decay_halves_weights_per_half_life_relative_to_the_newest_event():
    window = SlidingWindow(10, decay_half_life=100.0)
    window.extend(
        [Event("u", "old", 4.0, 0.0), Event("u", "mid", 4.0, 100.0), Event("u", "new", 4.0, 200.0)]
    )
    window.append("u", "no-ts", 4.0)
    matrix = window.build()
    assert as_dict(matrix) == {
        ("u", "old"): 1.0,
        ("u", "mid"): 2.0,
        ("u", "new"): 4.0,
        ("u", "no-ts"): 4.0,
    }
    assert matrix.popularity.tolist() == [0.25, 0.5, 1.0, 1.0]


def test_without_decay_timestamps_do_not_matter():
    window = SlidingWindow(10)
    window.extend([Event("u", "i", 2.0, 0.0), Event("u", "j", 2.0, 1e9)])
    assert set(as_dict(window.build()).values()) == {2.0}


def test_invalid_weights_and_configuration_are_refused():
    window = SlidingWindow(4)
    for weight in (0.0, float("nan"), float("inf"), float("-inf")):
        with pytest.raises(ValueError):
            window.append("u", "i", weight)
    assert len(window) == 0
    with pytest.raises(ValueError):
        SlidingWindow(0)
    with pytest.raises(ValueError):
        SlidingWindow(4, decay_half_life=0.0)


def test_extend_columns_is_the_same_as_appending_events():
    events = [Event(f"u{k % 3}", f"i{k % 5}", 1.0 + k, float(k)) for k in range(12)]
    one, columns = SlidingWindow(7), SlidingWindow(7)
    for event in events:
        one.append(event)
    columns.extend_columns(
        [e.user for e in events],
        [e.item for e in events],
        [e.weight for e in events],
        [e.ts for e in events],
    )
    assert list(one.contents().events()) == list(columns.contents().events())


def test_id_maps_stay_bounded_by_the_window_however_many_ids_pass_through():
    window = SlidingWindow(10)
    for k in range(1000):
        window.append(f"user-{k}", f"item-{k}")
    users, items = window.vocabulary_size()
    assert users <= 20 and items <= 20
    assert len(window.build().user_ids) == 10


def test_empty_window_builds_an_empty_matrix():
    matrix = SlidingWindow(5).build()
    assert matrix.user_items.shape == (0, 0) and matrix.user_ids == [] and matrix.events == 0


def _reference(events: list[Event], capacity: int) -> dict[tuple[str, str], float]:
    sums: dict[tuple[str, str], float] = defaultdict(float)
    for event in events[-capacity:]:
        sums[event.user, event.item] += event.weight
    return dict(sums)


_EVENTS = st.lists(
    st.builds(
        Event,
        st.sampled_from("abcdefg"),
        st.sampled_from("pqrstuvw"),
        st.sampled_from([0.5, 1.0, 2.0, 3.0]),
        st.none() | st.floats(0, 1000),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(events=_EVENTS, capacity=st.integers(1, 12), split=st.integers(0, 40))
def test_build_matches_a_plain_dict_over_the_last_capacity_events(events, capacity, split):
    window = SlidingWindow(capacity)
    window.extend(events[:split])  # a bulk append and single appends must agree
    for event in events[split:]:
        window.append(event)
    matrix = window.build()
    assert as_dict(matrix) == pytest.approx(_reference(events, capacity))
    counts = Counter(e.item for e in events[-capacity:])
    assert dict(zip(matrix.item_ids, matrix.popularity.tolist(), strict=True)) == counts


@settings(max_examples=100, deadline=None)
@given(before=_EVENTS, after=_EVENTS, capacity=st.integers(1, 12))
def test_a_window_resumed_from_its_contents_continues_exactly(before, after, capacity):
    original = SlidingWindow(capacity)
    original.extend(before)
    resumed = SlidingWindow.from_contents(original.contents())
    assert resumed.total_appended == original.total_appended
    for event in after:
        original.append(event)
        resumed.append(event)
    assert list(resumed.contents().events()) == list(original.contents().events())
    assert as_dict(resumed.build()) == as_dict(original.build())


def test_resuming_with_a_smaller_capacity_keeps_the_newest_events():
    window = SlidingWindow(5, decay_half_life=60.0)
    window.extend(Event(f"u{k}", "i") for k in range(5))
    smaller = SlidingWindow.from_contents(window.contents(), capacity=2, decay_half_life=None)
    assert [e.user for e in smaller.contents().events()] == ["u3", "u4"]
    assert smaller.capacity == 2 and smaller.decay_half_life is None
    assert smaller.vocabulary_size() == (2, 1)


def test_contents_are_plain_arrays_in_arrival_order_with_compact_ids():
    window = SlidingWindow(3)
    window.extend(
        [
            Event("a", "x", 1.0, 1.0),
            Event("b", "y", 2.0),
            Event("a", "z", 3.0, 3.0),
            Event("c", "x", 4.0, 4.0),
        ]
    )
    contents = window.contents()
    assert contents.user_ids == ["a", "b", "c"] and contents.item_ids == ["x", "y", "z"]
    assert [contents.user_ids[u] for u in contents.users] == ["b", "a", "c"]
    assert contents.weights.tolist() == [2.0, 3.0, 4.0]
    assert np.isnan(contents.ts[0]) and contents.ts[1:].tolist() == [3.0, 4.0]
    assert (contents.capacity, contents.total_appended, len(contents)) == (3, 4, 3)
