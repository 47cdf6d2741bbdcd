"""The event ids in a window: what makes a client's retry safe (at-most-once per ``event_id``).

A client may give each event an ``event_id`` (``event.py``). When a write fails ambiguously (a
503 while the broker stalls, a lost answer) the client resends the same events with the same
ids; whichever copies reach the log, the window keeps the first and drops the others.

:class:`EventIds` maps the ring slots of :class:`~streamrec.core.window.sliding.SlidingWindow` that
hold an event with an id to that id, plus the set of those ids. An id leaves with its event
(overwritten by a newer one, or erased), so the memory is the window's: at most ``capacity``
ids of at most ``MAX_EVENT_ID_BYTES`` bytes each (measured: ~300 bytes per 128-byte id in
all, ~210 per UUID), and a
duplicate is recognised only while the original is still in the window (docs/reliability.md,
"Delivery"). Events without an id cost nothing here.

Pure, not thread-safe: the window's owner serialises access.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["EventIds", "first_occurrences"]


def first_occurrences(ids: Sequence[str | None], known: set[str] | frozenset[str]) -> list[bool]:
    """Per position, whether to keep it: False for an id in ``known`` or earlier in ``ids``.

    Positions without an id (``None``) are always kept.
    """
    present = set(ids)
    present.discard(None)
    if len(present) == len(ids) and known.isdisjoint(present):  # the usual case: no retry
        return [True] * len(ids)
    seen: set[str] = set()
    keep = []
    for eid in ids:
        if eid is None:
            keep.append(True)
        elif eid in known or eid in seen:
            keep.append(False)
        else:
            seen.add(eid)
            keep.append(True)
    return keep


class EventIds:
    """Ring slot -> event id, for the window's events that have one."""

    def __init__(self) -> None:
        self._at: dict[int, str] = {}
        self._ids: set[str] = set()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, eid: object) -> bool:
        return eid in self._ids

    @property
    def ids(self) -> set[str]:
        """The ids present (a live view: do not modify)."""
        return self._ids

    def store(self, start: int, ids: Sequence[str | None] | None, count: int) -> None:
        """Slots ``start .. start + count`` now hold new events whose ids are ``ids`` (None:
        none has one); the ids of the events they replace leave."""
        if self._at:
            for slot in range(start, start + count):
                old = self._at.pop(slot, None)
                if old is not None:
                    self._ids.discard(old)
        if ids is None:
            return
        if None not in ids:  # the usual case when clients send ids: C-speed updates
            self._at.update(zip(range(start, start + len(ids)), ids, strict=True))  # type: ignore[arg-type]
            self._ids.update(ids)  # type: ignore[arg-type]
            return
        for k, eid in enumerate(ids):
            if eid is not None:
                self._at[start + k] = eid
                self._ids.add(eid)

    def ordered(self, start: int, size: int, capacity: int) -> list[str | None] | None:
        """The ids of the ``size`` events oldest first (the oldest at slot ``start``), or
        None when none has an id."""
        if not self._at:
            return None
        out: list[str | None] = [None] * size
        for slot, eid in self._at.items():
            out[(slot - start) % capacity] = eid
        return out

    def reset(self, ids: Iterable[str | None] | None) -> None:
        """Forget everything; slot ``k`` now holds ``ids[k]`` (the window was repacked)."""
        self._at.clear()
        self._ids.clear()
        if ids is not None:
            for slot, eid in enumerate(ids):
                if eid is not None:
                    self._at[slot] = eid
                    self._ids.add(eid)
