"""Forgetting: erasure records and the tombstone set that keeps erased ids erased.

``DELETE /users/{user}`` and ``DELETE /items/{item}`` publish an :class:`Erasure` as a control
record on the interactions topic itself, so that the trainer and every serving replica, which
already follow that topic, see it in order with the events around it, and a replica or a
trainer that replays the topic sees it again. Its wire form is a JSON object::

    {"erase": "user", "id": "u42", "at": 1767000000.0}

Every component keeps the erasures it has seen in a :class:`Tombstones` set, and the trainer
writes the set into every snapshot (``tombstones.*`` files), so a restart from a snapshot, or
a replay of the topic from its offsets, never brings an erased id back. The rule an erased id
follows (docs/feedback.md, "Forgetting"):

- a *user* erased at ``at`` loses every event dated at or before ``at`` (the event's own ts,
  else its arrival time; an event without any time is dropped too). Events dated later are a
  new beginning: a user who asked to have their history cleared can still be recommended to;
- an *item* is erased for good: its events are dropped whenever they are dated, so a click
  from a stale page a second after the deletion cannot bring it back.

Pure: no I/O. Not thread-safe on its own; serving wraps it (``serving/live/forgotten.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .ids import decode_ids, encode_ids

__all__ = ["FILES", "KINDS", "REDACTED", "Erasure", "Tombstones", "parse_control"]

#: What can be erased.
KINDS = ("user", "item")
#: The value a redacted record of the embedded log carries (``adapters/locallog.py``): a
#: control record every reader skips without a dead letter.
REDACTED = b'{"redacted":true}'

Array = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class Erasure:
    """Forget ``id`` (a user or an item, ``kind``), erased at ``at`` (Unix seconds)."""

    kind: str
    id: str
    at: float

    def to_bytes(self) -> bytes:
        """The control record's value (UTF-8 JSON)."""
        return json.dumps({"erase": self.kind, "id": self.id, "at": self.at},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def parse_control(obj: Mapping[str, Any]) -> Erasure | None:
    """The erasure a decoded JSON control record holds; None for a redacted record.

    Raises ``ValueError`` with a reason for a malformed one (the caller dead-letters it).
    """
    if obj.get("redacted") is True and "erase" not in obj:
        return None
    kind, ident, at = obj.get("erase"), obj.get("id"), obj.get("at")
    if kind not in KINDS:
        raise ValueError(f"'erase' must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(ident, str) or not ident:
        raise ValueError("an erasure needs a non-empty string 'id'")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not (
            math.isfinite(at) and at >= 0):
        raise ValueError(f"an erasure needs 'at', seconds since the epoch, got {at!r}")
    return Erasure(kind, ident, float(at))


@dataclass
class Tombstones:
    """Erased users (id -> erased at, seconds) and items (id -> erased at); see the module."""

    users: dict[str, float] = field(default_factory=dict)
    items: dict[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.users) + len(self.items)

    def copy(self) -> Tombstones:
        return Tombstones(dict(self.users), dict(self.items))

    def add(self, erasure: Erasure) -> bool:
        """Record ``erasure``; True if it erases more than the set already did (a later time
        for a user, or a new id)."""
        table = self.users if erasure.kind == "user" else self.items
        before = table.get(erasure.id)
        if before is not None and before >= erasure.at:
            return False
        table[erasure.id] = erasure.at
        return True

    def merge(self, other: Tombstones) -> None:
        """Add every tombstone of ``other`` (the later time wins)."""
        for kind, table in (("user", other.users), ("item", other.items)):
            for ident, at in table.items():
                self.add(Erasure(kind, ident, at))

    def erased(self, user: str, item: str, ts: float | None) -> bool:
        """Whether an event of ``user`` on ``item`` dated ``ts`` (None or NaN: undated) is
        erased."""
        if item in self.items:
            return True
        at = self.users.get(user)
        return at is not None and (ts is None or math.isnan(ts) or ts <= at)

    def keep_mask(self, user_ids: list[str], item_ids: list[str], users: Array, items: Array,
                  ts: Array) -> npt.NDArray[np.bool_]:
        """For events given as columns (codes into ``user_ids``/``item_ids``, ``ts`` float
        seconds with NaN for none), True where the event survives these tombstones."""
        keep = np.ones(len(users), dtype=bool)
        if not len(users) or not len(self):
            return keep
        item_gone = np.fromiter((i in self.items for i in item_ids), dtype=bool,
                                count=len(item_ids))
        keep &= ~item_gone[np.asarray(items, dtype=np.intp)]
        user_at = np.fromiter((self.users.get(u, -math.inf) for u in user_ids), dtype=np.float64,
                              count=len(user_ids))
        at = user_at[np.asarray(users, dtype=np.intp)]
        t = np.asarray(ts, dtype=np.float64)
        # An erased user's undated event (NaN) is erased too: nothing proves it came later.
        keep &= ~((at > -math.inf) & (np.isnan(t) | (t <= at)))
        return keep

    # -- snapshot section (tombstones.*.npy, see core/snapshotlayout.py) -------------------

    def to_arrays(self) -> dict[str, Array]:
        """The set as snapshot arrays: per kind, the ids (UTF-8 data + offsets) and times."""
        out: dict[str, Array] = {}
        for kind, table in (("users", self.users), ("items", self.items)):
            ids = sorted(table)
            data, offsets = encode_ids(ids)
            out[f"tombstones.{kind}.data"] = data
            out[f"tombstones.{kind}.offsets"] = offsets
            out[f"tombstones.{kind}.at"] = np.asarray([table[i] for i in ids], dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, a: Mapping[str, Array]) -> Tombstones:
        """The inverse of :meth:`to_arrays`; ``ValueError`` when the arrays disagree."""
        tables: list[dict[str, float]] = []
        for kind in ("users", "items"):
            ids = decode_ids(a[f"tombstones.{kind}.data"], a[f"tombstones.{kind}.offsets"])
            at = np.asarray(a[f"tombstones.{kind}.at"], dtype=np.float64)
            if len(at) != len(ids):
                raise ValueError(f"tombstones.{kind}: {len(ids)} ids but {len(at)} times")
            tables.append(dict(zip(ids, at.tolist(), strict=True)))
        return cls(tables[0], tables[1])

    @classmethod
    def of(cls, erasures: Iterable[Erasure]) -> Tombstones:
        out = cls()
        for e in erasures:
            out.add(e)
        return out


#: The snapshot files of the tombstone set (without ``.npy``).
FILES = tuple(f"tombstones.{kind}.{part}" for kind in ("users", "items")
              for part in ("data", "offsets", "at"))
