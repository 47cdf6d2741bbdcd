"""Forgetting: erasure records and the tombstone set that keeps erased ids erased.

``DELETE /users/{user}`` and ``DELETE /items/{item}`` publish an :class:`Erasure` as a control
record on the interactions topic itself, so that the trainer and every serving replica, which
already follow that topic, see it in order with the events around it, and a replica or a
trainer that replays the topic sees it again. Neither the record nor the tombstone set holds
the id: they hold its keyed hash (``erasurekey.py``, HMAC-SHA256 under the deployment's
erasure key). The record's wire form is a JSON object, keyed by the same hash::

    {"erase": "user", "hash": "3f1c…(64 hex)", "at": 1767000000.0}

Records written before the hash (``{"erase": "user", "id": "u42", "at": …}``, still in a
topic until its retention) are read as well: their id is hashed on arrival and kept nowhere.

Every component keeps the erasures it has seen in a :class:`Tombstones` set, and the trainer
writes the set into every snapshot (``tombstones.*`` files: digests and times), so a restart
from a snapshot, or a replay of the topic from its offsets, never brings an erased id back.
The rule an erased id follows (docs/feedback.md, "Forgetting"):

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
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from ..ids import decode_ids
from .erasurekey import ErasureHasher

__all__ = ["FILES", "KINDS", "LEGACY_FILES", "REDACTED", "Erasure", "Tombstones",
           "parse_control"]

#: What can be erased.
KINDS = ("user", "item")
#: The value a redacted record of the embedded log carries (``adapters/locallog.py``): a
#: control record every reader skips without a dead letter.
REDACTED = b'{"redacted":true}'
_HEX = re.compile(r"[0-9a-f]{64}")

Array = npt.NDArray[Any]


@dataclass(frozen=True, slots=True)
class Erasure:
    """Forget a user or an item (``kind``), erased at ``at`` (Unix seconds).

    ``digest`` is the id's keyed hash (`ErasureHasher.digest`), what records and tombstones
    hold. ``id`` is the id itself where this process knows it (the worker answering the
    ``DELETE``; a record written before the hash): in memory only, never written.
    """

    kind: str
    id: str | None
    at: float
    digest: str | None = None

    def keyed(self, hasher: ErasureHasher) -> Erasure:
        """This erasure with its digest (computed from ``id`` if missing)."""
        if self.digest is not None:
            return self
        assert self.id is not None, "an erasure has an id or a digest"
        return replace(self, digest=hasher.digest(self.kind, self.id))

    def to_bytes(self) -> bytes:
        """The control record's value (UTF-8 JSON): the digest, never the id."""
        if self.digest is None:
            raise ValueError("an erasure record is written with its digest (call keyed())")
        return json.dumps({"erase": self.kind, "hash": self.digest, "at": self.at},
                          separators=(",", ":")).encode("ascii")


def parse_control(obj: Mapping[str, Any]) -> Erasure | None:
    """The erasure a decoded JSON control record holds; None for a redacted record.

    Raises ``ValueError`` with a reason for a malformed one (the caller dead-letters it).
    """
    if obj.get("redacted") is True and "erase" not in obj:
        return None
    kind, at = obj.get("erase"), obj.get("at")
    if kind not in KINDS:
        raise ValueError(f"'erase' must be one of {', '.join(KINDS)}, got {kind!r}")
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not (
            math.isfinite(at) and at >= 0):
        raise ValueError(f"an erasure needs 'at', seconds since the epoch, got {at!r}")
    if "hash" in obj:
        digest = obj["hash"]
        if not isinstance(digest, str) or not _HEX.fullmatch(digest):
            raise ValueError("an erasure's 'hash' must be 64 lowercase hex characters")
        return Erasure(kind, None, float(at), digest)
    ident = obj.get("id")  # a record from before the hash
    if not isinstance(ident, str) or not ident:
        raise ValueError("an erasure needs a 'hash' (or, from older versions, a string 'id')")
    return Erasure(kind, ident, float(at))


class Tombstones:
    """Erased users and items as digest -> erased at (seconds); see the module.

    ``hasher`` turns the ids of events into digests to look up. A set read from a snapshot
    of format 5 (which held ids, not digests) keeps them in ``legacy`` until :meth:`bind`
    hashes them.
    """

    __slots__ = ("hasher", "items", "legacy", "users")

    def __init__(self, hasher: ErasureHasher | None = None,
                 users: dict[str, float] | None = None,
                 items: dict[str, float] | None = None) -> None:
        self.hasher = hasher
        self.users: dict[str, float] = users if users is not None else {}
        self.items: dict[str, float] = items if items is not None else {}
        self.legacy: list[Erasure] = []

    def __len__(self) -> int:
        return len(self.users) + len(self.items) + len(self.legacy)

    def __repr__(self) -> str:
        return f"Tombstones({len(self.users)} users, {len(self.items)} items)"

    def copy(self) -> Tombstones:
        out = Tombstones(self.hasher, dict(self.users), dict(self.items))
        out.legacy = list(self.legacy)
        return out

    def bind(self, hasher: ErasureHasher) -> Tombstones:
        """Use ``hasher`` (and hash the legacy ids with it); returns self."""
        self.hasher = hasher
        legacy, self.legacy = self.legacy, []
        for e in legacy:
            self.add(e)
        return self

    def _hasher(self) -> ErasureHasher:
        if self.hasher is None or self.legacy:
            raise RuntimeError("these tombstones have no hasher: bind() them first")
        return self.hasher

    def add(self, erasure: Erasure) -> bool:
        """Record ``erasure``; True if it erases more than the set already did (a later time
        for a user, or a new id)."""
        if erasure.digest is None and self.hasher is None:
            self.legacy.append(erasure)
            return True
        digest = erasure.keyed(self._hasher()).digest
        assert digest is not None
        table = self.users if erasure.kind == "user" else self.items
        before = table.get(digest)
        if before is not None and before >= erasure.at:
            return False
        table[digest] = erasure.at
        return True

    def merge(self, other: Tombstones) -> None:
        """Add every tombstone of ``other`` (the later time wins)."""
        for kind, table in (("user", other.users), ("item", other.items)):
            for digest, at in table.items():
                self.add(Erasure(kind, None, at, digest))
        for e in other.legacy:
            self.add(e)

    def user_at(self, user: str) -> float | None:
        """When ``user`` was last erased (None: never)."""
        if not self.users and not self.legacy:
            return None
        return self.users.get(self._hasher().digest("user", user))

    def has_item(self, item: str) -> bool:
        """Whether ``item`` is erased (for good)."""
        if not self.items and not self.legacy:
            return False
        return self._hasher().digest("item", item) in self.items

    def erased(self, user: str, item: str, ts: float | None) -> bool:
        """Whether an event of ``user`` on ``item`` dated ``ts`` (None or NaN: undated) is
        erased."""
        if not (self.users or self.items or self.legacy):
            return False
        digest = self._hasher().digest  # inlined: this runs for every event checked
        if self.items and digest("item", item) in self.items:
            return True
        at = self.users.get(digest("user", user)) if self.users else None
        return at is not None and (ts is None or math.isnan(ts) or ts <= at)

    def keep_mask(self, user_ids: list[str], item_ids: list[str], users: Array, items: Array,
                  ts: Array) -> npt.NDArray[np.bool_]:
        """For events given as columns (codes into ``user_ids``/``item_ids``, ``ts`` float
        seconds with NaN for none), True where the event survives these tombstones."""
        keep = np.ones(len(users), dtype=bool)
        if not len(users) or not len(self):
            return keep
        item_gone = np.fromiter((self.has_item(i) for i in item_ids), dtype=bool,
                                count=len(item_ids))
        keep &= ~item_gone[np.asarray(items, dtype=np.intp)]
        user_at = np.fromiter((-math.inf if (a := self.user_at(u)) is None else a
                               for u in user_ids), dtype=np.float64, count=len(user_ids))
        at = user_at[np.asarray(users, dtype=np.intp)]
        t = np.asarray(ts, dtype=np.float64)
        # An erased user's undated event (NaN) is erased too: nothing proves it came later.
        keep &= ~((at > -math.inf) & (np.isnan(t) | (t <= at)))
        return keep

    # -- snapshot section (tombstones.*.npy, see core/snapshot/layout.py) -------------------

    def to_arrays(self) -> dict[str, Array]:
        """The set as snapshot arrays: per kind, the digests (n x 32 bytes) and times."""
        if self.legacy:
            raise RuntimeError("tombstones with unhashed ids cannot be written: bind() first")
        out: dict[str, Array] = {}
        for kind, table in (("users", self.users), ("items", self.items)):
            digests = sorted(table)
            raw = np.frombuffer(bytes.fromhex("".join(digests)), dtype=np.uint8)
            out[f"tombstones.{kind}.hash"] = raw.reshape(len(digests), 32)
            out[f"tombstones.{kind}.at"] = np.asarray([table[d] for d in digests],
                                                      dtype=np.float64)
        return out

    @classmethod
    def from_arrays(cls, a: Mapping[str, Array]) -> Tombstones:
        """The inverse of :meth:`to_arrays`, or the ids of a format-5 snapshot (kept in
        ``legacy`` until :meth:`bind`); ``ValueError`` when the arrays disagree."""
        out = cls()
        for kind, name in (("users", "user"), ("items", "item")):
            at = np.asarray(a[f"tombstones.{kind}.at"], dtype=np.float64)
            if f"tombstones.{kind}.hash" in a:
                raw = np.asarray(a[f"tombstones.{kind}.hash"], dtype=np.uint8)
                if raw.ndim != 2 or raw.shape[1] != 32 or len(raw) != len(at):
                    raise ValueError(f"tombstones.{kind}: {raw.shape} digests, {len(at)} times")
                table = out.users if kind == "users" else out.items
                table.update(zip((bytes(r).hex() for r in raw), at.tolist(), strict=True))
            else:
                ids = decode_ids(a[f"tombstones.{kind}.data"], a[f"tombstones.{kind}.offsets"])
                if len(at) != len(ids):
                    raise ValueError(f"tombstones.{kind}: {len(ids)} ids but {len(at)} times")
                out.legacy.extend(Erasure(name, i, t)
                                  for i, t in zip(ids, at.tolist(), strict=True))
        return out

    @classmethod
    def of(cls, erasures: Iterable[Erasure], hasher: ErasureHasher | None = None) -> Tombstones:
        out = cls(hasher)
        for e in erasures:
            out.add(e)
        return out


#: The snapshot files of the tombstone set (without ``.npy``), format 6.
FILES = tuple(f"tombstones.{kind}.{part}" for kind in ("users", "items")
              for part in ("hash", "at"))
#: Format 5's files, which held the ids themselves (still read).
LEGACY_FILES = tuple(f"tombstones.{kind}.{part}" for kind in ("users", "items")
                     for part in ("data", "offsets", "at"))
