"""What each user was shown, and when: rotation's memory and exploration's online counts.

A list served under a placement with rotation or exploration is an **impression**: (user,
items, the items in exploration slots, placement, time). Serving publishes each one to the
impressions topic (``<topic>.impressions``, keyed by user) and every worker reads the topic
back into its `Impressions`, so a list served by one worker (or replica) rotates the next
answer of every other one: gunicorn's workers share nothing else.

`Impressions` keeps, per user, the impressions of the last `MAX_AGE_S` seconds (at most
``per_user`` of them; at most ``max_users`` users, least recently shown evicted), and per item
how often it was shown in an exploration slot and how often that was clicked: a positive event
of the user for the item within `MAX_AGE_S` of the impression (each impression's item counts
once). These counts are the Beta posterior of exploration's Thompson sampling
(``rerank.py``). Erased users are forgotten (`forget`). Pure and thread-safe: the caller
passes the clock.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from ..events.codec import check_id
from ..events.event import InvalidEvent
from .spec import MAX_ROTATION_SECONDS

__all__ = ["MAX_AGE_S", "Impression", "Impressions", "decode", "encode", "skipped"]

#: Impressions older than this (seconds) are dropped: the longest rotation window.
MAX_AGE_S = MAX_ROTATION_SECONDS
#: At most this many items in one impression (the longest list a route serves).
_MAX_ITEMS = 1000


@dataclass(frozen=True, slots=True)
class Impression:
    """``items`` shown to ``user`` at ``at`` (seconds) under ``placement``; ``explored`` are
    those of exploration slots; ``origin`` the worker that served it."""

    user: str
    items: tuple[str, ...]
    at: float
    placement: str
    explored: tuple[str, ...] = ()
    origin: str = ""


def encode(imp: Impression) -> bytes:
    """The impressions topic's message value (UTF-8 JSON)."""
    return json.dumps({"user": imp.user, "items": list(imp.items), "at": imp.at,
                       "placement": imp.placement, "explored": list(imp.explored),
                       "origin": imp.origin},
                      ensure_ascii=False, separators=(",", ":")).encode()


def decode(value: bytes | None) -> Impression:
    """`encode`'s output back; ``ValueError`` saying why for anything else."""
    if not value:
        raise ValueError("empty message")
    try:
        body = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"not UTF-8 JSON: {e}") from None
    if not isinstance(body, dict):
        raise ValueError("not a JSON object")
    items, explored, at = body.get("items"), body.get("explored", []), body.get("at")
    if not isinstance(items, list) or not isinstance(explored, list) \
            or len(items) > _MAX_ITEMS or not set(explored) <= set(items):
        raise ValueError("items and explored must be lists (explored within items)")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at):
        raise ValueError("at must be seconds")
    placement, origin = body.get("placement"), body.get("origin", "")
    if not isinstance(placement, str) or not isinstance(origin, str):
        raise ValueError("placement and origin must be strings")
    raw_user = body.get("user")
    if not isinstance(raw_user, str) or not all(isinstance(i, str) for i in items):
        raise ValueError("user and items must be strings")
    try:
        user = check_id(raw_user, "user")
        shown = tuple(check_id(i, "item") for i in items)
    except InvalidEvent as e:
        raise ValueError(str(e)) from None
    return Impression(user, shown, float(at), placement, tuple(str(i) for i in explored), origin)


class Impressions:
    """Per user, the recent impressions; per item, exploration's shown and clicked counts."""

    def __init__(self, *, max_users: int = 100_000, per_user: int = 64) -> None:
        self.max_users, self.per_user = max_users, per_user
        self._users: OrderedDict[str, deque[Impression]] = OrderedDict()
        self._credited: dict[str, set[tuple[float, str]]] = {}  # user -> (at, item) clicked
        self.explored: dict[str, list[int]] = {}  # item -> [shown, clicks]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._users)

    def add(self, imp: Impression, now: float) -> None:
        """Remember ``imp`` (an older one than `MAX_AGE_S` before ``now`` is ignored)."""
        if imp.at < now - MAX_AGE_S:
            return
        with self._lock:
            queue = self._users.pop(imp.user, None) or deque(maxlen=self.per_user)
            queue.append(imp)
            self._users[imp.user] = queue
            while len(self._users) > self.max_users:
                gone, _ = self._users.popitem(last=False)
                self._credited.pop(gone, None)
            for item in imp.explored:
                self.explored.setdefault(item, [0, 0])[0] += 1

    def shown(self, user: str, since: float) -> dict[str, float]:
        """Items shown to ``user`` at or after ``since`` (seconds), each with its latest time."""
        with self._lock:
            queue = self._users.get(user)
            if not queue:
                return {}
            out: dict[str, float] = {}
            for imp in queue:
                if imp.at >= since:
                    for item in imp.items:
                        out[item] = imp.at
            return out

    def click(self, user: str, item: str, at: float) -> bool:
        """A positive event of ``user`` on ``item`` at ``at``: credit an exploration slot
        that showed it within `MAX_AGE_S` before (once per impression). True when credited."""
        with self._lock:
            queue = self._users.get(user)
            if not queue:
                return False
            for imp in reversed(queue):
                if imp.at <= at <= imp.at + MAX_AGE_S and item in imp.explored:
                    done = self._credited.setdefault(user, set())
                    if (imp.at, item) in done:
                        return False
                    done.add((imp.at, item))
                    self.explored.setdefault(item, [0, 0])[1] += 1
                    return True
            return False

    def counts(self, items: Iterable[str]) -> dict[str, tuple[int, int]]:
        """(shown in exploration slots, clicks) of each of ``items`` that has any."""
        with self._lock:
            return {i: (c[0], c[1]) for i in items if (c := self.explored.get(i)) is not None}

    def expire(self, now: float) -> int:
        """Drop impressions older than `MAX_AGE_S`; returns how many users went."""
        with self._lock:
            gone = []
            for user, queue in self._users.items():
                while queue and queue[0].at < now - MAX_AGE_S:
                    queue.popleft()
                if not queue:
                    gone.append(user)
            for user in gone:
                del self._users[user]
                self._credited.pop(user, None)
            return len(gone)

    def forget_items(self, erased: Callable[[str], bool]) -> int:
        """Drop every item for which ``erased(item)`` from every impression and from the
        exploration counts (an erased item); returns how many items went."""
        with self._lock:
            items = {i for q in self._users.values() for imp in q for i in imp.items}
            items |= set(self.explored)
        gone = {i for i in items if erased(i)}
        if not gone:
            return 0
        with self._lock:
            for user, queue in self._users.items():
                if any(i in gone for imp in queue for i in imp.items):
                    self._users[user] = deque(
                        (replace(imp, items=tuple(i for i in imp.items if i not in gone),
                                 explored=tuple(i for i in imp.explored if i not in gone))
                         for imp in queue), maxlen=self.per_user)
            for item in gone:
                self.explored.pop(item, None)
        return len(gone)

    def forget(self, erased: Callable[[str], bool]) -> int:
        """Forget every user for whom ``erased(user)`` (an erasure); returns how many."""
        with self._lock:
            users = list(self._users)
        gone = [u for u in users if erased(u)]
        with self._lock:
            for u in gone:
                self._users.pop(u, None)
                self._credited.pop(u, None)
        return len(gone)


def skipped(shown: dict[str, float], acted: Sequence[tuple[str, float]]) -> list[str]:
    """Items of ``shown`` (item -> last shown at) the user did not act on after: ``acted``
    holds (item, event time) pairs of their events."""
    last: dict[str, float] = {}
    for item, at in acted:
        last[item] = max(at, last.get(item, -math.inf))
    return [i for i, t in shown.items() if last.get(i, -math.inf) < t]
