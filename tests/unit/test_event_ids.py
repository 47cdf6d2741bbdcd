"""Client event ids: validated like ids, and a retry counts once in the window, across a
snapshot and a resume, and in a replica's fold-in."""

from __future__ import annotations

import json

import numpy as np
import pytest

from streamrec.adapters.snapshotfiles import read_snapshot, write_snapshot
from streamrec.core.events import Event, InvalidEvent, parse_batch, parse_event, serialize_event
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.training import fit
from streamrec.core.window.sliding import SlidingWindow


def ev(user: str, item: str, eid: str | None, ts: float = 1_700_000_000.0) -> Event:
    return Event(user, item, 1.0, ts, event_id=eid)


def json_event(**fields: object) -> bytes:
    return json.dumps({"user": "u", "item": "i", **fields}).encode()


def test_event_id_is_parsed_from_json_and_written_back():
    event = parse_event(json_event(event_id="req-7/0"))
    assert event.event_id == "req-7/0"
    assert parse_event(serialize_event(event)) == event
    assert parse_event(json_event()).event_id is None


@pytest.mark.parametrize(("value", "reason"), [
    (7, "bad_id"), ("", "bad_id"), (" ", "bad_id"), ("a\x01", "control_char"),
    ("x" * 129, "id_too_long"), ("é" * 65, "id_too_long"), (["a"], "bad_id"),
])
def test_a_bad_event_id_is_refused_with_a_reason(value, reason):
    with pytest.raises(InvalidEvent) as err:
        parse_event(json_event(event_id=value))
    assert err.value.reason == reason
    # the batch path (dead letters) says the same
    assert parse_batch([json_event(event_id=value)]).rejected[0][1].reason == reason


def test_an_event_id_of_128_bytes_is_accepted():
    assert parse_event(json_event(event_id="é" * 64)).event_id == "é" * 64


def test_text_cannot_carry_an_event_id():
    with pytest.raises(InvalidEvent, match="event_id"):
        serialize_event(ev("u", "i", "e1"), "text")


def test_an_event_whose_id_is_in_the_window_is_dropped_and_counted():
    window = SlidingWindow(10)
    window.extend([ev("u", "a", "e1"), ev("u", "b", "e2"), ev("u", "c", None)])
    window.extend([ev("u", "a", "e1"), ev("u", "b", "e2"), ev("u", "c", None)])  # the retry
    assert len(window) == 4 and window.duplicates == 2
    assert window.build().user_items.sum() == 4.0  # events without an id are never de-duplicated


def test_duplicates_within_one_batch_keep_the_first():
    window = SlidingWindow(10)
    window.extend([ev("u", "a", "e1"), ev("v", "b", "e1"), ev("w", "c", "e2")])
    assert [e.user for e in window.contents().events()] == ["u", "w"]
    window.append(ev("x", "a", "e2"))
    assert len(window) == 2 and window.duplicates == 2


def test_an_id_that_left_the_window_is_accepted_again():
    window = SlidingWindow(3)
    window.append(ev("u", "a", "e1"))
    window.extend(ev("u", f"f{k}", None) for k in range(3))  # e1 is overwritten
    window.append(ev("u", "a", "e1"))
    assert window.duplicates == 0
    assert [e.event_id for e in window.contents().events()] == [None, None, "e1"]


def test_the_id_set_stays_bounded_by_the_window():
    window = SlidingWindow(100)
    for start in range(0, 10_000, 250):
        window.extend(ev("u", f"i{k % 7}", f"e{k}") for k in range(start, start + 250))
    contents = window.contents()
    assert len(window._event_ids) == len(window) == 100
    assert contents.event_ids == [f"e{k}" for k in range(9_900, 10_000)]
    window.extend(ev("u", "i", f"e{k}") for k in range(9_950, 10_000))
    assert window.duplicates == 50


def test_erasure_takes_the_erased_events_ids_with_them():
    from streamrec.core.events.erasure import Erasure, Tombstones
    from streamrec.core.events.erasurekey import ErasureHasher

    window = SlidingWindow(10)
    window.extend([ev("gone", "a", "e1"), ev("kept", "b", "e2")])
    window.erase(Tombstones.of([Erasure("user", "gone", 1_800_000_000.0)],
                               ErasureHasher("k" * 32)))
    assert window.contents().event_ids == ["e2"]
    window.append(ev("kept", "b", "e2"))
    assert window.duplicates == 1


def test_resume_keeps_recognising_retries_even_with_a_smaller_capacity():
    window = SlidingWindow(10)
    window.extend(ev("u", f"i{k}", f"e{k}") for k in range(6))
    resumed = SlidingWindow.from_contents(window.contents(), capacity=3)
    resumed.extend(ev("u", f"i{k}", f"e{k}") for k in range(6))
    assert resumed.duplicates == 3  # e3..e5 are still in; e0..e2 had left, so they count


def snapshot_of(window: SlidingWindow, path):
    model = fit(window.build(), ALSParams(factors=2, iterations=2, num_threads=1))
    write_snapshot(path, model, window.contents(), {0: len(window)}, "000000000001", sync=False)
    return path


def test_snapshot_round_trip_keeps_the_event_ids(tmp_path):
    window = SlidingWindow(20)
    window.extend(ev(f"u{k % 3}", f"i{k % 4}", f"e{k}" if k % 2 else None) for k in range(12))
    snap = read_snapshot(snapshot_of(window, tmp_path / "s"))
    assert snap.window.event_ids == window.contents().event_ids
    assert snap.event_ids == {f"e{k}" for k in range(1, 12, 2)}
    # a replica reads the ids without the window
    assert read_snapshot(tmp_path / "s", window=False).event_ids == snap.event_ids
    resumed = SlidingWindow.from_contents(snap.window)
    resumed.extend(ev("u1", "i1", f"e{k}") for k in range(12))
    assert resumed.duplicates == 6


def test_a_snapshot_without_event_ids_still_loads(tmp_path):
    window = SlidingWindow(20)
    window.extend(ev(f"u{k % 3}", f"i{k % 4}", None) for k in range(12))
    path = snapshot_of(window, tmp_path / "s")
    manifest = json.loads((path / "manifest.json").read_text())
    assert not any(name.startswith("window.event_ids") for name in manifest["files"])
    snap = read_snapshot(path)
    assert snap.window.event_ids is None and snap.event_ids == frozenset()
    resumed = SlidingWindow.from_contents(snap.window)
    resumed.append(ev("u", "i", "e1"))
    resumed.append(ev("u", "i", "e1"))
    assert resumed.duplicates == 1
    np.testing.assert_array_equal(resumed.contents().users[:12], snap.window.users)


def test_fold_in_counts_a_retry_once_before_and_after_a_snapshot():
    from streamrec.serving.live.fresh import FreshEvents

    fresh = FreshEvents()
    assert fresh.add(ev("u", "a", "e1"), 0, 10)
    assert not fresh.add(ev("u", "a", "e1"), 0, 11)  # retried before any snapshot holds it
    assert fresh.add(ev("u", "b", None), 0, 12) and fresh.add(ev("u", "b", None), 0, 13)
    assert fresh.pairs("u") == [("a", 1.0), ("b", 1.0), ("b", 1.0)] and fresh.duplicates == 1
    # a snapshot now holds offsets < 12, and e1 in its window
    fresh.advance({0: 12}, frozenset({"e1"}))
    assert not fresh.add(ev("u", "a", "e1"), 0, 14)  # a retry of an event the snapshot holds
    assert fresh.add(ev("u", "c", "e2"), 0, 15)
    assert fresh.pairs("u") == [("b", 1.0), ("b", 1.0), ("c", 1.0)] and fresh.duplicates == 2


def test_fold_in_forgets_fresh_ids_once_a_snapshot_covers_them():
    from streamrec.serving.live.fresh import FreshEvents

    fresh = FreshEvents(max_seen=2)
    for k in range(3):
        fresh.add(ev("u", f"i{k}", f"e{k}"), 0, k)
    assert not fresh.add(ev("u", "i2", "e2"), 0, 3)  # e0 left for the bound, e2 is still in
    assert fresh.add(ev("u", "i0", "e0"), 0, 4)
    fresh.advance({0: 5}, frozenset())  # a snapshot whose window no longer holds them
    assert fresh.add(ev("u", "i1", "e1"), 0, 5) and len(fresh._ids) == 1


class _Log:
    """A one-partition in-memory EventSource holding ``values``."""

    def __init__(self, values: list[bytes]) -> None:
        from streamrec.adapters.source import SourceMessage

        self.messages = [SourceMessage(0, k, v, timestamp=1_700_000_000.0)
                         for k, v in enumerate(values)]
        self.next = 0

    def partitions(self) -> list[int]:
        return [0]

    def seek(self, offsets: dict[int, int]) -> None:
        self.next = offsets.get(0, 0)

    def poll(self, max_messages: int, timeout: float) -> list:
        batch = self.messages[self.next:self.next + max_messages]
        self.next += len(batch)
        return batch

    def positions(self) -> dict[int, int]:
        return {0: self.next}

    def lag(self) -> int:
        return len(self.messages) - self.next

    def close(self) -> None:
        pass


def test_fold_in_keeps_and_observes_a_retried_event_once():
    from streamrec.core.events.erasurekey import ErasureHasher
    from streamrec.serving.feeds.foldin import FoldIn
    from streamrec.serving.live.model import LiveModel

    sent = [json_event(user="u", item=f"i{k % 3}", event_id=f"e{k % 3}") for k in range(9)]
    observed: list[Event] = []
    live = LiveModel(ErasureHasher("k" * 32))
    fresh = live.fresh
    foldin = FoldIn(lambda offsets: _Log(sent), live,
                    observe=lambda events, stamps: observed.extend(events))
    foldin.source = _Log(sent)
    while foldin.step():
        pass
    assert fresh.pairs("u") == [("i0", 1.0), ("i1", 1.0), ("i2", 1.0)]
    assert fresh.duplicates == 6
    assert [e.event_id for e in observed] == ["e0", "e1", "e2"]
