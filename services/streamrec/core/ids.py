"""Growing string id <-> dense integer index maps.

The number of users and items is unknown and unbounded, while factor matrices and sparse
matrices want dense row numbers. An :class:`IdMap` hands out 0, 1, 2, ... in first-seen order.
For snapshots it exports to two plain arrays (UTF-8 bytes plus byte offsets, the Arrow string
layout) so no pickle is ever needed and any language can read the ids back.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["IdMap", "decode_ids", "encode_ids"]


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
    :meth:`streamrec.core.window.SlidingWindow` which compacts its maps).
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
