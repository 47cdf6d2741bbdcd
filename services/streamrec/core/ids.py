"""String id <-> dense integer index maps: a growing one, and a frozen array-backed one.

The number of users and items is unknown and unbounded, while factor matrices and sparse
matrices want dense row numbers. An :class:`IdMap` hands out 0, 1, 2, ... in first-seen order.
For snapshots it exports to two plain arrays (UTF-8 bytes plus byte offsets, the Arrow string
layout) so no pickle is ever needed and any language can read the ids back.

A model's ids never change, so it holds them as an :class:`IdIndex`: the same two arrays plus
an open-addressing hash table, three flat arrays that a snapshot stores and every gunicorn
worker memory-maps. A dict and a list of 150k Python strings cost each worker ~20 MB of private
memory; the arrays cost nothing private, and a lookup is a crc32 and one or two probes.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np
import numpy.typing as npt

__all__ = ["IdIndex", "IdMap", "decode_ids", "encode_ids", "hash_table", "id_slot"]


def encode_ids(ids: Sequence[str]) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """Pack ids as ``(data, offsets)``: id ``i`` is ``data[offsets[i]:offsets[i + 1]]`` in UTF-8."""
    offsets = np.zeros(len(ids) + 1, dtype=np.int64)
    text = "".join(ids)
    parts: Sequence[str] | list[bytes]
    if text.isascii():
        # One encode for all: characters are bytes here (every snapshot writes 4 id lists).
        blob, parts = text.encode("ascii"), ids
    else:
        encoded = [s.encode("utf-8") for s in ids]
        blob, parts = b"".join(encoded), encoded
    if len(ids):
        np.cumsum(np.fromiter(map(len, parts), dtype=np.int64, count=len(ids)), out=offsets[1:])
    data = np.frombuffer(blob, dtype=np.uint8).copy()
    return data, offsets


def decode_ids(data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> list[str]:
    """Inverse of :func:`encode_ids`; raises ``ValueError`` if the arrays do not fit together."""
    if offsets.ndim != 1 or len(offsets) == 0 or data.ndim != 1:
        raise ValueError("id offsets must be a non-empty 1-d array and data a 1-d array")
    bounds = offsets.tolist()
    if bounds[0] != 0 or bounds[-1] != len(data) or np.any(np.diff(offsets) < 0):
        raise ValueError("id offsets are not increasing from 0 to the data length")
    raw = data.tobytes()
    if raw.isascii():
        # One decode and str slicing beats a decode per id; byte and char offsets agree here.
        text = raw.decode("ascii")
        return [text[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    return [raw[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


class IdMap:
    """A growing bijection between string ids and ``0 .. len - 1``.

    Indices are never reused or reordered; to forget ids, build a new map (see
    :meth:`streamrec.core.window.sliding.SlidingWindow` which compacts its maps).
    """

    __slots__ = ("_ids", "_index")

    def __init__(self, ids: Iterable[str] = ()) -> None:
        self._index: dict[str, int] = {}
        self._ids: list[str] = []
        for id_ in ids:
            self.index(id_)

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> IdMap:
        """A map where ``ids[i]`` has index ``i``; duplicates are an error."""
        new = cls()
        new._ids = list(ids)
        new._index = {id_: i for i, id_ in enumerate(new._ids)}
        if len(new._index) != len(new._ids):
            raise ValueError("duplicate ids")
        return new

    def index(self, id_: str) -> int:
        """The index of ``id_``, adding it if new."""
        found = self._index.get(id_)
        if found is None:
            found = self._index[id_] = len(self._ids)
            self._ids.append(id_)
        return found

    def index_many(self, ids: Iterable[str]) -> npt.NDArray[np.int64]:
        """Indices of many ids at once, adding the new ones in order."""
        index, known, order = self._index, self._index.get, self._ids
        out = []
        for id_ in ids:
            found = known(id_)
            if found is None:
                found = index[id_] = len(order)
                order.append(id_)
            out.append(found)
        return np.array(out, dtype=np.int64)

    def get(self, id_: str) -> int | None:
        """The index of ``id_``, or ``None`` if it is unknown (never adds)."""
        return self._index.get(id_)

    def id_of(self, index: int) -> str:
        """The id at ``index``; ``IndexError`` if there is none."""
        if index < 0:
            raise IndexError(f"negative id index {index}")
        return self._ids[index]

    def ids(self) -> list[str]:
        """All ids in index order (a copy)."""
        return list(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, id_: object) -> bool:
        return id_ in self._index

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, IdMap) and self._ids == other._ids

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"IdMap({len(self)} ids)"

    def to_arrays(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        """``(data, offsets)`` as :func:`encode_ids`, for snapshots."""
        return encode_ids(self._ids)

    @classmethod
    def from_arrays(cls, data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> IdMap:
        """Rebuild a map from :meth:`to_arrays` output."""
        return cls.from_ids(decode_ids(data, offsets))


# --- frozen, array-backed index -------------------------------------------------------------

_GOLDEN = 0x9E3779B1  # Fibonacci hashing: spreads crc32's low-entropy bits over the top ones


def _bits(count: int) -> int:
    """log2 of the table size: the smallest power of two >= 2 * count (and >= 8)."""
    return max(3, (2 * count - 1).bit_length())


def id_slot(key: bytes, bits: int) -> int:
    """The first slot of a UTF-8 id in a table of ``2**bits`` slots (see docs/core.md)."""
    return ((zlib.crc32(key) * _GOLDEN) & 0xFFFFFFFF) >> (32 - bits)


def hash_table(data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
    """The linear-probing table of an id list: slot -> row, ``-1`` empty, load factor <= 1/2.

    Rows are placed in rounds (vectorised): in each round every unplaced row tries its current
    slot, the lowest row wins a free one, the others move one slot on. A row therefore only
    ever passes slots that stay occupied, which is all a linear-probing lookup needs, and the
    table depends on nothing but the ids (writers in any language can reproduce it).
    """
    count = len(offsets) - 1
    bits = _bits(count)
    if bits > 32:
        raise ValueError(f"{count} ids do not fit a 32-bit hash table")
    raw, bounds = data.tobytes(), offsets.tolist()
    crc = np.fromiter(
        (zlib.crc32(raw[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)),
        dtype=np.uint64,
        count=count,
    )
    mixed = ((crc * np.uint64(_GOLDEN)) & np.uint64(0xFFFFFFFF)) >> np.uint64(32 - bits)
    slots = mixed.astype(np.int64)
    mask = (1 << bits) - 1
    table: npt.NDArray[np.signedinteger[Any]] = np.full(
        1 << bits, -1, dtype=np.int32 if count < 2**31 else np.int64
    )
    rows = np.arange(count, dtype=np.int64)
    while len(rows):
        free = np.flatnonzero(table[slots] < 0)
        won_slots, first = np.unique(slots[free], return_index=True)
        table[won_slots] = rows[free[first]]
        placed = np.zeros(len(rows), dtype=bool)
        placed[free[first]] = True
        rows, slots = rows[~placed], (slots[~placed] + 1) & mask
    return table


class IdIndex(Sequence[str]):
    """A frozen bijection between ids and ``0 .. len - 1`` over three flat arrays.

    ``data``/``offsets`` are :func:`encode_ids`'s layout and ``table`` is :func:`hash_table`'s;
    all three may be memory-mapped (nothing per id is built in Python). It is a ``Sequence``
    of the ids (``ids[row]``, ``len``, iteration, ``==`` with a list), and ``get(id)`` is the
    reverse lookup. ``positions`` views it as an ``id -> row`` mapping.
    """

    __slots__ = ("_bits", "_count", "_data", "_mask", "_offsets", "_table", "arrays")

    def __init__(
        self, data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64], table: npt.NDArray[Any]
    ) -> None:
        if offsets.ndim != 1 or len(offsets) == 0 or data.ndim != 1 or table.ndim != 1:
            raise ValueError("id arrays must be 1-d and offsets non-empty")
        count = len(offsets) - 1
        size = len(table)
        if size < 2 * count or size < 8 or size & (size - 1):
            raise ValueError(
                f"hash table of {size} slots for {count} ids: not a power of two >= 2 x ids"
            )
        if (
            int(offsets[0]) != 0
            or int(offsets[-1]) != len(data)
            or (count and int(np.diff(offsets).min()) < 0)
        ):
            raise ValueError("id offsets are not increasing from 0 to the data length")
        filled = np.asarray(table[table >= 0])
        # bincount, not np.unique: unique's hash set leaves ~4 MB in a worker's malloc heap.
        if (
            len(filled) != count
            or (count and int(filled.max()) >= count)
            or int(table.min()) < -1
            or (count and int(np.bincount(filled, minlength=count).max()) != 1)
        ):
            raise ValueError("hash table does not hold every row exactly once")
        self.arrays: tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any]] = (
            data,
            offsets,
            table,
        )
        self._count, self._bits, self._mask = count, size.bit_length() - 1, size - 1
        # memoryviews index to plain ints and slice without numpy's per-call overhead.
        self._data = np.ascontiguousarray(data).data if len(data) else memoryview(b"")
        self._offsets = np.ascontiguousarray(offsets).data
        self._table = np.ascontiguousarray(table).data

    @classmethod
    def from_ids(cls, ids: Iterable[str]) -> IdIndex:
        """Index ``ids`` (row ``i`` is the ``i``-th); duplicates are a ``ValueError``."""
        listed = list(ids)
        if len(set(listed)) != len(listed):
            raise ValueError("duplicate ids")
        data, offsets = encode_ids(listed)
        return cls(data, offsets, hash_table(data, offsets))

    @classmethod
    def of(cls, ids: Sequence[str]) -> IdIndex:
        """``ids`` itself if it already is an index, else :meth:`from_ids`."""
        return ids if isinstance(ids, IdIndex) else cls.from_ids(ids)

    @classmethod
    def from_arrays(
        cls,
        data: npt.NDArray[np.uint8],
        offsets: npt.NDArray[np.int64],
        table: npt.NDArray[Any] | None = None,
    ) -> IdIndex:
        """From stored arrays; without a table (older snapshots) it is built and ids checked."""
        if table is None:
            return cls.from_ids(decode_ids(data, offsets))
        return cls(data, offsets, table)

    def get(self, id_: str) -> int | None:
        """The row of ``id_``, or None."""
        try:
            key = id_.encode("utf-8")
        except (UnicodeEncodeError, AttributeError):
            return None  # a lone surrogate (or a non-string) was never stored
        table, offsets, data, mask = self._table, self._offsets, self._data, self._mask
        slot = id_slot(key, self._bits)
        while (row := table[slot]) >= 0:
            if data[offsets[row] : offsets[row + 1]] == key:
                return int(row)
            slot = (slot + 1) & mask
        return None

    @overload
    def __getitem__(self, index: int) -> str: ...
    @overload
    def __getitem__(self, index: slice) -> list[str]: ...
    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[k] for k in range(*index.indices(self._count))]
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"id index {index} out of range")
        return str(self._data[self._offsets[index] : self._offsets[index + 1]], "utf-8")

    def __len__(self) -> int:
        return self._count

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, str) and self.get(id_) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.tolist())

    def tolist(self) -> list[str]:
        """All ids in row order (decoded at once: for writers and tests, not requests)."""
        return decode_ids(np.asarray(self.arrays[0]), np.asarray(self.arrays[1]))

    @property
    def positions(self) -> Mapping[str, int]:
        """An ``id -> row`` mapping view (no copy)."""
        return _Positions(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, IdIndex):
            return len(self) == len(other) and all(
                np.array_equal(a, b) for a, b in zip(self.arrays[:2], other.arrays[:2], strict=True)
            )
        if isinstance(other, (list, tuple)):
            return self.tolist() == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # compares equal to lists

    def __repr__(self) -> str:
        return f"IdIndex({self._count} ids)"


class _Positions(Mapping[str, int]):
    __slots__ = ("_ids",)

    def __init__(self, ids: IdIndex) -> None:
        self._ids = ids

    def __getitem__(self, id_: str) -> int:
        row = self._ids.get(id_)
        if row is None:
            raise KeyError(id_)
        return row

    def get(self, id_: str, default: Any = None) -> Any:
        row = self._ids.get(id_)
        return default if row is None else row

    def __contains__(self, id_: object) -> bool:
        return id_ in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)
