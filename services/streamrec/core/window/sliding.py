"""The sliding window: the latest W interactions, and the user x item matrix built from them.

The trainer keeps only the most recent ``capacity`` events, so the model follows current taste
and memory stays O(W) however many distinct ids the stream has seen. Events live in a ring of
numpy arrays (user index, item index, weight, timestamp); ids map to indices through
:class:`IdMap`s that are compacted whenever dead ids could outnumber live ones, and compacted
again in every :meth:`build` and :meth:`contents`, which only ever mention ids still present.
An event whose client ``event_id`` is already in the window is a retry and is dropped
(``eventids.py``): counted in ``duplicates``, not an error.

Not thread-safe: the owner serialises ``append``/``extend``/``build``. ``build`` returns a
fresh matrix that the model can then be fitted on in another thread while events keep coming.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Sequence
from typing import TypeVar, overload

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..events.erasure import Tombstones
from ..events.event import Event
from ..events.eventids import EventIds, first_occurrences
from ..events.feedback import aggregate
from ..ids import IdMap
from .contents import WindowContents, WindowMatrix

__all__ = ["KEEP", "SlidingWindow", "WindowContents", "WindowMatrix"]

_INITIAL = 1024
_T = TypeVar("_T", bound=np.generic)


class _Keep(enum.Enum):
    KEEP = "keep"


#: Default for :meth:`SlidingWindow.from_contents` overrides: keep what the contents say.
KEEP = _Keep.KEEP


def _check_config(capacity: int, decay_half_life: float | None) -> None:
    if capacity < 1:
        raise ValueError(f"window capacity must be >= 1, got {capacity}")
    if decay_half_life is not None and not 0.0 < decay_half_life < math.inf:
        raise ValueError(f"decay half-life must be a positive number, got {decay_half_life}")


def _dense(codes: npt.NDArray[np.int32], ids: list[str]) -> tuple[list[str], npt.NDArray[np.intp]]:
    """Renumber the codes in use densely; keep their relative order (first seen first).

    Codes index ``ids``, so a presence mask and a running count do what ``np.unique`` would in
    O(n + len(ids)) without sorting: a tenth of the time on a 1M-event window.
    """
    present = np.zeros(len(ids), dtype=bool)
    present[codes] = True
    rank = np.cumsum(present, dtype=np.intp) - 1
    return [ids[k] for k in np.flatnonzero(present).tolist()], rank[codes]


class SlidingWindow:
    """A ring buffer of the latest ``capacity`` interactions.

    Parameters
    ----------
    capacity : int
        W, the number of events kept.
    decay_half_life : float, optional
        Seconds after which an event counts half, relative to the newest timestamp in the
        window at :meth:`build` time. Events without a timestamp never decay.
    """

    def __init__(self, capacity: int, decay_half_life: float | None = None) -> None:
        _check_config(capacity, decay_half_life)
        self.capacity = capacity
        self.decay_half_life = decay_half_life
        size = min(capacity, _INITIAL)
        self._users = np.empty(size, dtype=np.int32)
        self._items = np.empty(size, dtype=np.int32)
        self._weights = np.empty(size, dtype=np.float64)
        self._ts = np.empty(size, dtype=np.float64)
        self._start = 0  # position of the oldest event once the ring is full
        self._size = 0
        self._user_map = IdMap()
        self._item_map = IdMap()
        self._event_ids = EventIds()
        self.total_appended = 0
        #: Events dropped because their ``event_id`` was already in the window (a retry).
        self.duplicates = 0

    def __len__(self) -> int:
        return self._size

    def vocabulary_size(self) -> tuple[int, int]:
        """Users and items currently mapped: live ids plus dead ones not yet compacted away,
        never more than ``2 * capacity`` each (that is what keeps memory O(W))."""
        return len(self._user_map), len(self._item_map)

    @overload
    def append(self, event: Event, /) -> None: ...

    @overload
    def append(
        self, user: str, item: str, weight: float = 1.0, ts: float | None = None, /
    ) -> None: ...

    def append(
        self,
        event: Event | str,
        item: str | None = None,
        weight: float = 1.0,
        ts: float | None = None,
        /,
    ) -> None:
        """Add one interaction, given as an :class:`Event` or as fields; O(1) amortised."""
        if isinstance(event, Event):
            user, item, weight, ts = event.user, event.item, event.weight, event.ts
        elif item is None:
            raise TypeError("append(user, item, ...) needs an item")
        else:
            user = event
        eids = None if not isinstance(event, Event) or event.event_id is None \
            else [event.event_id]
        self._write([user], [item], [weight], [ts], eids)

    def extend(self, events: Iterable[Event]) -> None:
        """Add many events in order."""
        batch = list(events)
        self._write(
            [e.user for e in batch],
            [e.item for e in batch],
            [e.weight for e in batch],
            [e.ts for e in batch],
            [e.event_id for e in batch] if any(e.event_id for e in batch) else None,
        )

    def extend_columns(
        self,
        users: Sequence[str],
        items: Sequence[str],
        weights: Sequence[float] | npt.NDArray[np.float64] | None = None,
        ts: Sequence[float | None] | npt.NDArray[np.float64] | None = None,
        event_ids: Sequence[str | None] | None = None,
    ) -> None:
        """Add many events given as columns (no :class:`Event` objects needed)."""
        n = len(users)
        self._write(
            users,
            items,
            np.ones(n) if weights is None else weights,
            np.full(n, np.nan) if ts is None else ts,
            event_ids,
        )

    def _write(
        self,
        users: Sequence[str],
        items: Sequence[str],
        weights: Sequence[float] | npt.NDArray[np.float64],
        ts: Sequence[float | None] | npt.NDArray[np.float64],
        eids: Sequence[str | None] | None = None,
    ) -> None:
        n = len(users)
        if not (len(items) == len(weights) == len(ts) == n) or (
                eids is not None and len(eids) != n):
            raise ValueError("users, items, weights, ts and event ids must have the same length")
        if n == 0:
            return
        w = np.asarray(weights, dtype=np.float64)
        t = np.asarray(ts, dtype=np.float64)  # None becomes NaN
        if not np.all(np.isfinite(w) & (w != 0)):
            raise ValueError("weights must be finite and non-zero")
        if eids is not None:  # retries: an id already in the window, or earlier in the batch
            keep = first_occurrences(eids, self._event_ids.ids)
            if not all(keep):
                self.duplicates += n - sum(keep)
                users = [x for x, k in zip(users, keep, strict=True) if k]
                items = [x for x, k in zip(items, keep, strict=True) if k]
                eids = [x for x, k in zip(eids, keep, strict=True) if k]
                w, t = w[np.asarray(keep)], t[np.asarray(keep)]
                n = len(users)
                if n == 0:
                    return
        u = self._user_map.index_many(users)
        i = self._item_map.index_many(items)
        self.total_appended += n
        if n > self.capacity:  # only the newest ones survive anyway
            newest = slice(n - self.capacity, n)
            u, i, w, t = u[newest], i[newest], w[newest], t[newest]
            eids = None if eids is None else eids[newest]
            n = self.capacity
        done = 0
        free = self.capacity - self._size
        if free:
            done = min(free, n)
            self._reserve(self._size + done)
            end = self._size + done
            self._store(slice(self._size, end), u[:done], i[:done], w[:done], t[:done],
                        None if eids is None else eids[:done])
            self._size = end
        while done < n:  # the ring is full: overwrite the oldest, wrapping once at most
            chunk = min(n - done, self.capacity - self._start)
            end = self._start + chunk
            rest = slice(done, done + chunk)
            self._store(slice(self._start, end), u[rest], i[rest], w[rest], t[rest],
                        None if eids is None else eids[rest])
            self._start = end % self.capacity
            done += chunk
        if max(len(self._user_map), len(self._item_map)) > 2 * self.capacity:
            self._compact()

    def _store(
        self,
        where: slice,
        u: npt.NDArray[np.int64],
        i: npt.NDArray[np.int64],
        w: npt.NDArray[np.float64],
        t: npt.NDArray[np.float64],
        e: Sequence[str | None] | None = None,
    ) -> None:
        self._event_ids.store(where.start, e, where.stop - where.start)
        self._users[where] = u
        self._items[where] = i
        self._weights[where] = w
        self._ts[where] = t

    def _reserve(self, needed: int) -> None:
        size = len(self._users)
        if needed <= size:
            return
        size = min(self.capacity, max(needed, 2 * size))
        for name in ("_users", "_items", "_weights", "_ts"):
            old = getattr(self, name)
            new = np.empty(size, dtype=old.dtype)
            new[: self._size] = old[: self._size]
            setattr(self, name, new)

    def _compact(self) -> None:
        # More than W ids in a map means at least half are dead: rebuilding costs O(W) and
        # happens at most once per W appends.
        for codes, attr in ((self._users, "_user_map"), (self._items, "_item_map")):
            live = codes[: self._size]
            ids, dense = _dense(live, getattr(self, attr).ids())
            codes[: self._size] = dense
            setattr(self, attr, IdMap.from_ids(ids))

    def _ordered(self, array: npt.NDArray[_T]) -> npt.NDArray[_T]:
        if self._start == 0:
            return array[: self._size].copy()
        return np.concatenate((array[self._start : self._size], array[: self._start]))

    def build(self) -> WindowMatrix:
        """The users x items CSR matrix of the window (float32).

        A cell is the net weight of its (user, item) events (decayed, if configured): their
        sum, except that a negative event (negative feedback) cancels the pair's earlier
        events (``feedback.aggregate``). A cell may be negative or zero: negative feedback,
        which the fit reads as preference 0. Popularity counts positive events only.
        """
        live = slice(0, self._size)  # order does not matter for sums without negatives
        signed = bool(np.any(self._weights[live] < 0))
        pick = self._ordered if signed else (lambda a: a[live])
        user_ids, rows = _dense(pick(self._users), self._user_map.ids())
        item_ids, cols = _dense(pick(self._items), self._item_map.ids())
        weights = pick(self._weights)
        decay = self._decay(pick(self._ts))
        if decay is not None:
            weights = weights * decay
        shape = (len(user_ids), len(item_ids))
        counted, count_w = cols, decay
        if signed:  # in arrival order: a negative event cancels what came before it
            positive = weights > 0
            counted, count_w = cols[positive], None if decay is None else decay[positive]
            keys, net = aggregate(rows.astype(np.int64) * shape[1] + cols, weights)
            rows, cols, weights = keys // shape[1], keys % shape[1], net
        matrix = sp.coo_matrix((weights, (rows, cols)), shape=shape).tocsr()  # sums duplicates
        matrix.sort_indices()
        popularity = np.bincount(counted, weights=count_w, minlength=len(item_ids)).astype(
            np.float64)
        return WindowMatrix(
            user_items=sp.csr_matrix(matrix, dtype=np.float32),
            user_ids=user_ids,
            item_ids=item_ids,
            popularity=popularity,
            events=self._size,
        )

    def erase(self, tombstones: Tombstones) -> int:
        """Drop every event ``tombstones`` erases (``erasure.py``); return how many. O(W)."""
        if not self._size or not len(tombstones):
            return 0
        users, items = self._ordered(self._users), self._ordered(self._items)
        ts = self._ordered(self._ts)
        keep = tombstones.keep_mask(self._user_map.ids(), self._item_map.ids(), users, items, ts)
        dropped = int(len(keep) - np.count_nonzero(keep))
        if not dropped:
            return 0
        weights = self._ordered(self._weights)
        eids = self._event_ids.ordered(self._start, self._size, self.capacity)
        n = int(np.count_nonzero(keep))
        self._store(slice(0, n), users[keep].astype(np.int64), items[keep].astype(np.int64),
                    weights[keep], ts[keep])
        self._event_ids.reset(None if eids is None else
                              [e for e, k in zip(eids, keep.tolist(), strict=True) if k])
        self._start, self._size = 0, n
        self._compact()  # the erased ids leave the maps (and so every later snapshot) too
        return dropped

    def _decay(self, ts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64] | None:
        if self.decay_half_life is None or not self._size or np.all(np.isnan(ts)):
            return None
        age = np.nanmax(ts) - ts
        # 0.5 ** (age / half-life); events without a timestamp (NaN age) keep full weight.
        return np.where(np.isnan(age), 1.0, np.exp2(-age / self.decay_half_life))

    def contents(self) -> WindowContents:
        """The events in arrival order with compact vocabularies (copies, safe to keep)."""
        user_ids, users = _dense(self._ordered(self._users), self._user_map.ids())
        item_ids, items = _dense(self._ordered(self._items), self._item_map.ids())
        return WindowContents(
            users=users.astype(np.int32),
            items=items.astype(np.int32),
            weights=self._ordered(self._weights),
            ts=self._ordered(self._ts),
            user_ids=user_ids,
            item_ids=item_ids,
            total_appended=self.total_appended,
            capacity=self.capacity,
            decay_half_life=self.decay_half_life,
            event_ids=self._event_ids.ordered(self._start, self._size, self.capacity),
        )

    @classmethod
    def from_contents(
        cls,
        contents: WindowContents,
        capacity: int | None = None,
        decay_half_life: float | None | _Keep = KEEP,
    ) -> SlidingWindow:
        """Resume a window from :meth:`contents`, optionally with a new configuration.

        With a smaller ``capacity`` only the newest events are kept.
        """
        n = len(contents)
        if not (len(contents.items) == len(contents.weights) == len(contents.ts) == n):
            raise ValueError("window contents arrays have different lengths")
        if contents.event_ids is not None and len(contents.event_ids) != n:
            raise ValueError("window contents have event ids for a different number of events")
        for codes, ids, what in (
            (contents.users, contents.user_ids, "user"),
            (contents.items, contents.item_ids, "item"),
        ):
            if n and (codes.min() < 0 or codes.max() >= len(ids)):
                raise ValueError(f"window contents refer to {what} indices out of range")
        window = cls(
            contents.capacity if capacity is None else capacity,
            contents.decay_half_life if decay_half_life is KEEP else decay_half_life,
        )
        window._user_map = IdMap.from_ids(contents.user_ids)
        window._item_map = IdMap.from_ids(contents.item_ids)
        keep = slice(max(0, n - window.capacity), n)
        size = keep.stop - keep.start
        window._reserve(size)
        window._store(
            slice(0, size),
            contents.users[keep].astype(np.int64),
            contents.items[keep].astype(np.int64),
            contents.weights[keep],
            contents.ts[keep],
            None if contents.event_ids is None else contents.event_ids[keep],
        )
        window._size = size
        window.total_appended = contents.total_appended
        if size < n:
            window._compact()
        return window
