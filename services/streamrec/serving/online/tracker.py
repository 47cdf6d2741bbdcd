"""Online evaluation of served lists: CTR, hit rate and the rank of the hit, per model version.

Each serving worker keeps the *last list served to each user* in a bounded LRU and judges every
later event of that user (the fold-in consumer reads every event anyway). It keeps the list
before it too: the fold-in may read an event after the user's next request, and the event is
then judged against the list served last *before the event*, the one the user saw.

- **hit rate** = hits / eligible events. An event is *eligible* when it is positive (weight >=
  ``positive``, and never negative feedback: a dislike of a listed item is no hit) and its
  user was served a list by this worker at most ``horizon`` seconds before the event
  (``served_at <= event_time <= served_at + horizon``); it is a *hit* when its item is in that
  list, whether or not the app echoed the ``recommendation_id``. The *rank* of a hit is
  the item's 1-based position in the list. With a list served right before every event this is
  the prequential recall@k of `streamrec.evaluation` (docs/evaluation.md), computed by the same
  `hit_rank` (`core/scoring/hits.py`).
- **CTR** = attributed events / served lists, where an *attributed* event is a positive event
  that carries back a ``recommendation_id`` this worker issued (any of its last
  ``max_ids`` lists, not only the user's last one; no horizon), from the user it was issued
  to. Each (recommendation id, item) counts once, and an id counts at most as many items as
  its list held: an echo repeated, or replayed by the fold-in, inflates nothing, and an id
  sent back by another user is not attributed. A list served to no user (an anonymous
  session) belongs to the first user who echoes it. Ids of other workers are left to them
  (every worker reads every event), so nothing counts twice across workers or replicas.

Everything is tallied per model version (the version that served the list), in total and per
time bucket (the sliding windows), for at most ``max_versions`` versions: a `Tally` per version.
Workers and replicas combine by adding their tallies (`merge`), which is what Prometheus' ``sum``
does with the exported counters. A user whose requests reach two workers has a list in each, so
each judges the user's events against its own list: eligible and hit counts are then per
(event, worker holding a live list). Routing by user (session affinity) makes that per event.

**Placements** (``core/placements/``): a list served under a placement carries the label
``@<placement>`` (after the arm's, when both: ``experiment.arm@placement``); each part of a label
is counted apart, so the arm and the placement each get their `ArmCounts`. Per placement the
tracker also counts slots (all, promoted, exploration) and sketches the distinct items served
(`Coverage`, for catalogue coverage).

**Experiments** (``core/experiments/``): a list served to a user in an experiment's arm is
served with the arm's label (``experiment.arm``), which the recommendation id carries as a
suffix (``<worker>-<seq>.<experiment>.<arm>``). The arm's `ArmCounts` (at most
``MAX_ARM_LABELS`` labels, which the configuration bounds anyway) count its lists, its lists
with at least one attributed click, its attributed clicks, and the eligible events and hits
judged against its lists, exactly as the per-version tallies do. An echoed id whose suffix is
not the arm this worker issued it with is not attributed.

Event time is the transport's timestamp (Kafka or local-log append time), not the payload's
``ts``: replays carry historical timestamps, and what matters is the order of serving and
acting. Pure: the caller passes the clock; no I/O, thread-safe.
"""

from __future__ import annotations

import secrets
import sys
import threading
from array import array
from bisect import bisect_left, bisect_right
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from streamrec.core.experiments.results import ArmCounts
from streamrec.core.placements.coverage import Coverage
from streamrec.core.scoring.hits import hit_rank

__all__ = ["RANK_BOUNDS", "OnlineTracker", "Tally", "hit_rank", "merge"]

#: Upper bounds of the rank histogram (``le``), as in Prometheus; the last bucket is +Inf.
RANK_BOUNDS = (1, 2, 3, 5, 10, 20, 50, 100)

#: Bytes one tracked user costs with its two 10-item lists held (bench/online.py measures it
#: with tracemalloc): about 680 (650 before the arm labels), so the default bound of 50k
#: users is ~34 MB per worker.
BYTES_PER_USER = 680

#: At most this many arm and placement labels are counted per worker (16 experiments x 8 arms,
#: and 32 placements).
MAX_ARM_LABELS = 160


@dataclass(slots=True)
class Tally:
    """Counts of one model version (in one bucket, or in total). Add tallies to combine."""

    lists: int = 0  # lists served
    events: int = 0  # eligible positive events
    hits: int = 0
    rank_sum: int = 0  # sum of hit ranks (mean rank = rank_sum / hits)
    attributed: int = 0  # positive events echoing one of this worker's ids
    ranks: list[int] | None = None  # hits per RANK_BOUNDS bucket, + one for > 100

    def add_hit(self, rank: int) -> None:
        if self.ranks is None:
            self.ranks = [0] * (len(RANK_BOUNDS) + 1)
        self.hits += 1
        self.rank_sum += rank
        self.ranks[bisect_left(RANK_BOUNDS, rank)] += 1

    def to_list(self) -> list[int]:
        return [self.lists, self.events, self.hits, self.rank_sum, self.attributed,
                *(self.ranks or [0] * (len(RANK_BOUNDS) + 1))]

    @classmethod
    def from_list(cls, values: Sequence[int]) -> Tally:
        lists, events, hits, rank_sum, attributed = values[:5]
        return cls(lists, events, hits, rank_sum, attributed, list(values[5:]))

    def rates(self) -> dict[str, Any]:
        """The counts plus ``ctr``, ``hit_rate``, ``mean_rank`` (None when undefined)."""
        return {"lists": self.lists, "events": self.events, "hits": self.hits,
                "attributed": self.attributed,
                "ctr": self.attributed / self.lists if self.lists else None,
                "hit_rate": self.hits / self.events if self.events else None,
                "mean_rank": self.rank_sum / self.hits if self.hits else None,
                "rank_buckets": dict(zip([*map(str, RANK_BOUNDS), "+Inf"],
                                         self.ranks or [0] * (len(RANK_BOUNDS) + 1),
                                         strict=True))}


def _sum(tallies: Iterable[Sequence[int]]) -> list[int]:
    out: list[int] = []
    for t in tallies:
        out = [a + b for a, b in zip(out, t, strict=True)] if out else list(t)
    return out


#: A user's entry: (version, items, served_at) of the last list, then the same three of the
#: list before it (None when there was none), then the arm labels of the two (None: no arm).
#: One flat tuple: one allocation per request.
_Entry = tuple[str, tuple[str, ...], float, str | None, tuple[str, ...] | None, float | None,
               str | None, str | None]

#: The owner of an id issued to no user (an anonymous list) until a user echoes it, and of an
#: id whose user was erased (``forget``): never attributed.
_ANONYMOUS, _FORGOTTEN = "", "\x00forgotten"


class OnlineTracker:
    """The last list per user (LRU of ``max_users``) and the tallies of one worker.

    Parameters
    ----------
    horizon : float
        Seconds after serving during which a user's events are judged against the list.
    max_users : int
        LRU bound: the least recently served user is evicted past it (``evicted`` counts).
    positive : float or None
        Events with a smaller weight are ignored; None: every accepted event with a positive
        weight is (negative feedback never is).
    bucket_seconds, buckets : float, int
        The sliding windows: ``buckets`` buckets of ``bucket_seconds`` each.
    max_versions : int
        Tallies are kept for the newest ``max_versions`` model versions (bounded cardinality).
    max_ids : int or None
        The last ``max_ids`` recommendation ids remember their user and what they had
        credited (CTR); an older id is not attributed. Default: 4 x ``max_users`` (about 10
        bytes per id, plus the credited items of the ids that were clicked).
    """

    def __init__(self, *, horizon: float = 1800.0, max_users: int = 50_000,
                 positive: float | None = None, bucket_seconds: float = 60.0,
                 buckets: int = 60, max_versions: int = 8, token: str | None = None,
                 max_ids: int | None = None) -> None:
        if horizon <= 0 or bucket_seconds <= 0 or min(max_users, buckets, max_versions) < 1:
            raise ValueError("horizon, bucket_seconds > 0; max_users, buckets, max_versions >= 1")
        self.horizon, self.max_users, self.positive = horizon, max_users, positive
        self.bucket_seconds, self.buckets, self.max_versions = bucket_seconds, buckets, max_versions
        self.token = token or secrets.token_hex(6)  # this worker's id prefix
        self._prefix = self.token + "-"
        self._seq = 0
        self._epochs: list[tuple[int, str]] = []  # (first seq, version): rid -> version
        self._last: OrderedDict[str, _Entry] = OrderedDict()
        self._totals: OrderedDict[str, Tally] = OrderedDict()  # version -> tally, oldest first
        self._series: OrderedDict[int, dict[str, Tally]] = OrderedDict()  # bucket -> tallies
        self._lock = threading.Lock()
        self._hot: tuple[int, str, Tally, Tally] | None = None  # serve()'s current tallies
        self.evicted = 0
        #: Per issued id, in a ring indexed by ``seq % max_ids``: its user (``_ANONYMOUS``),
        #: its list's length, and the items it has credited (None: none yet).
        self.max_ids = max(1, max_ids if max_ids is not None else 4 * max_users)
        self._owners: list[str] = [_FORGOTTEN] * self.max_ids
        self._sizes = array("H", [0]) * self.max_ids
        self._credited: list[tuple[str, ...] | None] = [None] * self.max_ids
        self._arms: list[str | None] = [None] * self.max_ids  # the arm each id was issued in
        self.arm_counts: dict[str, ArmCounts] = {}
        #: Per placement: [slots, promoted slots, exploration slots] and the items' sketch.
        self.placement_slots: dict[str, list[int]] = {}
        self.coverage: dict[str, Coverage] = {}

    def __len__(self) -> int:
        return len(self._last)

    def _tally(self, version: str, now: float, new: bool = False) -> tuple[Tally, ...]:
        total = self._totals.get(version)
        if total is None:
            if not new:  # an event for a version already dropped: the tallies keep the newest
                return ()
            total = self._totals[version] = Tally()
            while len(self._totals) > self.max_versions:
                self._totals.popitem(last=False)
        key = int(now // self.bucket_seconds)
        bucket = self._series.get(key)
        if bucket is None:
            bucket = self._series[key] = {}
            while len(self._series) > self.buckets:
                self._series.popitem(last=False)
        per = bucket.get(version)
        if per is None:
            per = bucket[version] = Tally()
        return total, per

    def _arm(self, label: str | None) -> list[ArmCounts]:
        """The counts of each part of ``label`` (``exp.arm``, ``@placement``, or both)."""
        if label is None:
            return []
        arm, at, placement = label.partition("@")
        out = []
        for part in (arm, at + placement):
            if not part:
                continue
            counts = self.arm_counts.get(part)
            if counts is None and len(self.arm_counts) < MAX_ARM_LABELS:
                counts = self.arm_counts[part] = ArmCounts()
            if counts is not None:
                out.append(counts)
        return out

    def _placed(self, placement: str, items: Sequence[str],
                marks: Sequence[str | None] | None) -> None:
        slots = self.placement_slots.get(placement)
        if slots is None:
            if len(self.placement_slots) >= MAX_ARM_LABELS:
                return
            slots = self.placement_slots[placement] = [0, 0, 0]
            self.coverage[placement] = Coverage()
        slots[0] += len(items)
        if marks:
            slots[1] += sum(m == "promoted" for m in marks)
            slots[2] += sum(m == "exploration" for m in marks)
        sketch = self.coverage[placement]
        for item in items:
            sketch.add(item)

    def serve(self, user: str | None, version: str, items: Sequence[str], now: float,
              arm: str | None = None, placement: str | None = None,
              marks: Sequence[str | None] | None = None) -> str:
        """Count a served list, remember it as ``user``'s last; return its new id.

        ``user`` None (an anonymous session, similar items, popular items): the list is
        counted and its id can be attributed, but no user's last list changes. ``arm``: the
        label (``experiment.arm``) of the experiment arm that scored the list; ``placement``:
        the placement that chose it, with ``marks`` per item (``promoted``, ``exploration``).
        The id ends with ``.<arm>``, ``.@<placement>`` or ``.<arm>@<placement>``."""
        key = int(now // self.bucket_seconds)
        if placement is not None:
            arm = f"{arm or ''}@{placement}"
        with self._lock:
            if placement is not None:
                self._placed(placement, items, marks)
            self._seq += 1
            if not self._epochs or self._epochs[-1][1] != version:
                self._epochs.append((self._seq, version))
                del self._epochs[:-64]  # older ids are attributed to no version
            rid = f"{self._prefix}{self._seq:x}" if arm is None \
                else f"{self._prefix}{self._seq:x}.{arm}"
            slot = self._seq % self.max_ids
            self._arms[slot] = arm
            for counts in self._arm(arm):
                counts.lists += 1
            self._owners[slot] = _ANONYMOUS if user is None else sys.intern(user)
            self._sizes[slot] = min(len(items), 0xFFFF)
            self._credited[slot] = None
            if user is not None:
                # Interned: the model decodes fresh id strings per request; shared ones make a
                # tracked user cost a tuple of pointers, not ten copies of the ids.
                names = tuple(map(sys.intern, items))
                old = self._last.pop(user, None)
                self._last[sys.intern(user)] = (version, names, now, None, None, None, arm,
                                                None) if old is None else (
                    version, names, now, old[0], old[1], old[2], arm, old[6])
                if len(self._last) > self.max_users:
                    self._last.popitem(last=False)
                    self.evicted += 1
            hot = self._hot  # the same bucket and version as the last request: no lookups
            if hot is None or hot[0] != key or hot[1] != version \
                    or self._series.get(key, {}).get(version) is not hot[3]:
                total, per = self._tally(version, now, new=True)
                hot = self._hot = (key, version, total, per)
            hot[2].lists += 1
            hot[3].lists += 1
            return rid

    def _version_of(self, rid: str) -> tuple[int, str] | None:
        """(sequence number, model version) of one of this worker's ids; None otherwise."""
        if not rid.startswith(self._prefix):
            return None
        number, dot, arm = rid[len(self._prefix):].partition(".")
        try:
            seq = int(number, 16)
        except ValueError:
            return None
        k = bisect_right(self._epochs, (seq, "\uffff")) - 1
        if k < 0 or seq > self._seq or seq < 1 or seq <= self._seq - self.max_ids:
            return None
        if self._arms[seq % self.max_ids] != (arm if dot else None):
            return None  # the suffix is not the arm this id was issued in
        return seq, self._epochs[k][1]

    def _credit(self, seq: int, user: str, item: str) -> bool:
        """Whether (id ``seq``, ``item``) from ``user`` is a new click (and record it)."""
        if seq <= self._seq - self.max_ids:
            return False  # the ring has forgotten this id
        slot = seq % self.max_ids
        owner = self._owners[slot]
        if owner == _ANONYMOUS:  # an anonymous list belongs to the first user who echoes it
            owner = self._owners[slot] = sys.intern(user)
        if owner != user:
            return False
        credited = self._credited[slot] or ()
        if item in credited or len(credited) >= self._sizes[slot]:
            return False
        self._credited[slot] = (*credited, item)
        for counts in self._arm(self._arms[slot]):
            counts.attributed += 1
            counts.clicked += not credited  # the list's first click
        return True

    def forget(self, erased: Callable[[str], bool]) -> int:
        """Forget every user for whom ``erased(user)`` (an erasure: docs/feedback.md): their
        last lists, and their ids' ownership (their echoes are attributed no more). Returns
        how many users were forgotten. ``erased`` runs outside the lock (it hashes)."""
        with self._lock:
            candidates = set(self._last) | set(self._owners)
        gone = {u for u in candidates if u not in (_ANONYMOUS, _FORGOTTEN) and erased(u)}
        if not gone:
            return 0
        with self._lock:
            for user in gone:
                self._last.pop(user, None)
            for slot, owner in enumerate(self._owners):
                if owner in gone:
                    self._owners[slot] = _FORGOTTEN
                    self._credited[slot] = None
        return len(gone)

    def observe(self, user: str, item: str, weight: float, rid: str | None,
                event_time: float, now: float) -> int | None:
        """Judge one event; return the hit rank, or None (miss, not eligible, not positive)."""
        if weight <= 0 or (self.positive is not None and weight < self.positive):
            return None  # negative feedback is never a success (docs/feedback.md)
        with self._lock:
            if rid is not None and (issued := self._version_of(rid)) is not None \
                    and self._credit(issued[0], user, item):
                for t in self._tally(issued[1], now):
                    t.attributed += 1
            entry = self._last.get(user)
            if entry is None:
                return None
            version, items, at, arm = entry[0], entry[1], entry[2], entry[6]
            if event_time < at and entry[3] is not None and entry[4] is not None \
                    and entry[5] is not None:
                # Read after the user's next request: judge the list the user saw.
                version, items, at, arm = entry[3], entry[4], entry[5], entry[7]
            if not at <= event_time <= at + self.horizon:
                return None
            rank = hit_rank(items, item)
            for t in self._tally(version, now):
                t.events += 1
                if rank is not None:
                    t.add_hit(rank)
            for counts in self._arm(arm):
                counts.events += 1
                if rank is not None:
                    counts.add_hit(rank)
            return rank

    def arms(self) -> dict[str, list[int]]:
        """Each arm label's counts (`ArmCounts.to_list`)."""
        with self._lock:
            return {a: c.to_list() for a, c in self.arm_counts.items()}

    def state(self, now: float) -> dict[str, Any]:
        """A JSON-able copy of the tallies (input of `merge`); tallies as `Tally.to_list`."""
        oldest = now // self.bucket_seconds - self.buckets  # buckets out of the window
        with self._lock:
            return {"token": self.token, "at": now, "tracked_users": len(self._last),
                    "max_users": self.max_users, "evicted": self.evicted,
                    "bucket_seconds": self.bucket_seconds,
                    "versions": {v: t.to_list() for v, t in self._totals.items()},
                    "arms": {a: c.to_list() for a, c in self.arm_counts.items()},
                    "placements": {p: {"slots": list(slots),
                                       "coverage": self.coverage[p].to_text()}
                                   for p, slots in self.placement_slots.items()},
                    "series": [[k * self.bucket_seconds, {v: t.to_list() for v, t in b.items()}]
                               for k, b in self._series.items() if k > oldest]}


def merge(states: Sequence[dict[str, Any]], max_versions: int = 8) -> dict[str, Any]:
    """Add the states of several workers (or replicas) into one; newest versions kept.

    Versions are ordered by the time of their first bucket (falling back to name order) and
    the newest ``max_versions`` are kept, so the exported series stay bounded.
    """
    versions: dict[str, list[list[int]]] = {}
    series: dict[float, dict[str, list[list[int]]]] = {}
    first_seen: dict[str, float] = {}
    for s in states:
        for v, t in s["versions"].items():
            versions.setdefault(v, []).append(t)
        for start, per in s["series"]:
            for v, t in per.items():
                series.setdefault(start, {}).setdefault(v, []).append(t)
                first_seen[v] = min(first_seen.get(v, start), start)
    keep = sorted(versions, key=lambda v: (first_seen.get(v, float("-inf")), v))[-max_versions:]
    arms: dict[str, list[list[int]]] = {}
    for s in states:
        for label, counts in s.get("arms", {}).items():  # a worker of an older build has none
            arms.setdefault(label, []).append(counts)
    placements: dict[str, dict[str, Any]] = {}
    for s in states:
        for name, part in s.get("placements", {}).items():
            into = placements.get(name)
            if into is None:
                placements[name] = {"slots": list(part["slots"]), "coverage": part["coverage"]}
                continue
            into["slots"] = [a + b for a, b in zip(into["slots"], part["slots"], strict=True)]
            sketch = Coverage.from_text(into["coverage"])
            sketch.merge(Coverage.from_text(part["coverage"]))
            into["coverage"] = sketch.to_text()
    return {"workers": len(states),
            "tracked_users": sum(s["tracked_users"] for s in states),
            "max_users": sum(s["max_users"] for s in states),
            "evicted": sum(s["evicted"] for s in states),
            "bucket_seconds": states[0]["bucket_seconds"] if states else None,
            "versions": {v: _sum(versions[v]) for v in keep},
            "arms": {a: _sum(cs) for a, cs in arms.items()},
            "placements": placements,
            "series": [[start, {v: _sum(ts) for v, ts in per.items() if v in keep}]
                       for start, per in sorted(series.items())]}
