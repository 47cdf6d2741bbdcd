"""Per-partition user sides (snapshot format 9): split a snapshot's user arrays by the user's
Kafka partition, and put a chosen set of partitions back together.

A serving group (``core/groups.py``) answers only the users of its partitions, so it needs the
item side (item factors, item-item model, ANN graph, catalogue, popularity) and the user side
of its own partitions only. When the trainer knows the topic's partition count ``P > 1``
(``topic_partitions``), each user-side array is written once per partition as
``users.<p>.<name>``:

* the ids: ``users.<p>.user_ids.{data,offsets,table}`` (the partition's own hash table);
* the user x item matrix: ``users.<p>.user_items.{indptr,indices,data}``;
* the ordered history: ``users.<p>.history.{indptr,items,weights,ts}``; ``history.ts_base``
  stays one item-side file, so every partition's float32 offsets share it;
* every scorer array with a row per user (a scorer's ``user_rows``, ALS's ``user_factors``):
  ``users.<p>.<scorer>.<array>``.

Partition ``p`` holds the users whose ``toPositive(murmur2(utf8(user))) % P == p``
(``core/events/partitioning.py``), in the order of the whole model; the manifest's
``sizes["user_partitions"]`` is ``P``. `split_by_partition` writes them and `merge`
concatenates any set of partitions back into the unprefixed names a model is read from (the
hash table rebuilt over the concatenated ids), so nothing downstream of the reader knows the
snapshot was split.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..ids import hash_table

__all__ = [
    "CSR_SIDES",
    "ID_FILES",
    "PREFIX",
    "UserShard",
    "gather_rows",
    "group_parts",
    "merge",
    "part_name",
    "parse_part",
    "split_by_partition",
    "user_side_names",
]

Array = npt.NDArray[Any]

PREFIX = "users."
#: The user ids (their hash table is rebuilt, never concatenated).
ID_FILES = ("user_ids.data", "user_ids.offsets", "user_ids.table")
#: Row-pointer arrays and the arrays they point into: (prefix, pointer, values).
CSR_SIDES = (("user_items", "indptr", ("indices", "data")),
             ("history", "indptr", ("items", "weights", "ts")))
_PART = re.compile(r"users\.(\d{1,5})\.(.+)")


def part_name(partition: int, name: str) -> str:
    """The file name of ``name``'s part for ``partition``: ``users.<p>.<name>``."""
    return f"{PREFIX}{partition}.{name}"


def parse_part(name: str) -> tuple[int, str] | None:
    """``(partition, name)`` of a per-partition file name, or None for any other file."""
    m = _PART.fullmatch(name)
    return (int(m.group(1)), m.group(2)) if m else None


def user_side_names(arrays: Collection[str], row_files: Collection[str]) -> list[str]:
    """The names in ``arrays`` that belong to the user side: ids, user x item matrix, history
    (but ``history.ts_base``) and ``row_files`` (scorer arrays with one row per user)."""
    side = {*ID_FILES, *row_files}
    for prefix, pointer, values in CSR_SIDES:
        side.update(f"{prefix}.{n}" for n in (pointer, *values))
    return [n for n in arrays if n in side]


def gather_rows(indptr: Array, rows: npt.NDArray[np.int64], values: Sequence[Array],
                dtype: npt.DTypeLike) -> tuple[Array, list[Array]]:
    """The rows ``rows`` of a CSR-like layout (``indptr`` of shape ``(n + 1,)`` into each of
    ``values``): the new pointer (``dtype``, shape ``(len(rows) + 1,)``) and each value
    array's selected runs, in ``rows``' order."""
    starts = np.asarray(indptr[rows], dtype=np.int64)
    lengths = np.asarray(indptr[rows + 1], dtype=np.int64) - starts
    pointer = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=pointer[1:])
    at = np.repeat(starts - pointer[:-1], lengths) + np.arange(pointer[-1], dtype=np.int64)
    return pointer.astype(dtype, copy=False), [np.asarray(v)[at] for v in values]


def _part(arrays: Mapping[str, Array], rows: npt.NDArray[np.int64],
          row_files: Collection[str]) -> dict[str, Array]:
    out: dict[str, Array] = {}
    offsets, (data,) = gather_rows(arrays["user_ids.offsets"], rows,
                                   [arrays["user_ids.data"]], np.int64)
    out.update({"user_ids.data": data, "user_ids.offsets": offsets,
                "user_ids.table": hash_table(data, offsets)})
    for prefix, pointer, values in CSR_SIDES:
        if f"{prefix}.{pointer}" not in arrays:
            continue
        ptr = arrays[f"{prefix}.{pointer}"]
        new, picked = gather_rows(ptr, rows, [arrays[f"{prefix}.{v}"] for v in values],
                                  ptr.dtype)
        out[f"{prefix}.{pointer}"] = new
        out.update({f"{prefix}.{v}": a for v, a in zip(values, picked, strict=True)})
    out.update({name: np.asarray(arrays[name])[rows] for name in row_files})
    return out


def split_by_partition(arrays: Mapping[str, Array], partition_of_row: npt.NDArray[np.int64],
                       partitions: int, row_files: Collection[str]) -> dict[str, Array]:
    """``arrays`` (a whole snapshot's, ``layout.to_arrays``) with the user side replaced by
    one part per partition (`part_name`).

    ``partition_of_row``: each user row's partition (int64, shape ``(users,)``, values in
    ``[0, partitions)``); ``row_files``: the scorer arrays with one row per user. A partition
    without users gets empty parts, so every partition's files exist. Raises ``ValueError``
    when ``partition_of_row`` does not fit the user count or the partition range.
    """
    users = len(arrays["user_ids.offsets"]) - 1
    p = np.asarray(partition_of_row, dtype=np.int64)
    if p.shape != (users,) or (users and (int(p.min()) < 0 or int(p.max()) >= partitions)):
        raise ValueError(f"partition_of_row must hold {users} partitions in [0, {partitions})")
    side = user_side_names(arrays, row_files)
    out = {name: a for name, a in arrays.items() if name not in side}
    order = np.argsort(p, kind="stable")
    bounds = np.searchsorted(p[order], np.arange(partitions + 1))
    for k in range(partitions):
        rows = order[bounds[k]:bounds[k + 1]]
        out.update({part_name(k, n): a for n, a in _part(arrays, rows, row_files).items()})
    return out


def _concat_csr(parts: Sequence[Mapping[str, Array]], pointer: str, values: Sequence[str]
                ) -> dict[str, Array]:
    ptrs = [np.asarray(p[pointer], dtype=np.int64) for p in parts]
    total = sum(int(q[-1]) for q in ptrs)
    dtype = parts[0][pointer].dtype if total < np.iinfo(np.int32).max else np.int64
    pieces, base = [np.zeros(1, dtype=np.int64)], 0
    for q in ptrs:
        if len(q) == 0 or int(q[0]) != 0:
            raise ValueError(f"{pointer} of a partition does not start at 0")
        pieces.append(q[1:] + base)
        base += int(q[-1])
    out = {pointer: np.concatenate(pieces).astype(dtype, copy=False)}
    out.update({v: np.concatenate([np.asarray(p[v]) for p in parts]) for v in values})
    return out


def merge(parts: Sequence[Mapping[str, Array]]) -> dict[str, Array]:
    """One user side from the parts of several partitions (each keyed by unprefixed names,
    as `split_by_partition` wrote them): ids, CSR sides and row arrays concatenated in the
    order given, the ids' hash table rebuilt. One part comes back as it is (memory-mapped
    arrays stay mapped). Raises ``ValueError`` when the parts do not hold the same names or
    their arrays do not fit together (``model_from_arrays`` checks the rest)."""
    if not parts:
        raise ValueError("no user partitions to merge")
    names = set(parts[0])
    if any(set(p) != names for p in parts[1:]):
        raise ValueError("the user partitions do not hold the same files")
    if len(parts) == 1:
        return dict(parts[0])
    out = _concat_csr(parts, "user_ids.offsets", ("user_ids.data",))
    out["user_ids.table"] = hash_table(out["user_ids.data"], out["user_ids.offsets"])
    done = {*ID_FILES}
    for prefix, pointer, values in CSR_SIDES:
        if f"{prefix}.{pointer}" in names:
            full = [f"{prefix}.{v}" for v in values]
            out.update(_concat_csr(parts, f"{prefix}.{pointer}", full))
            done.update([f"{prefix}.{pointer}", *full])
    for name in sorted(names - done):  # scorer arrays with a row per user
        out[name] = np.concatenate([np.asarray(p[name]) for p in parts])
    return out


def group_parts(arrays: Mapping[str, Array]) -> tuple[dict[str, Array], list[dict[str, Array]]]:
    """``arrays`` split into the files of no partition and, per partition present (in
    partition order), its parts under their unprefixed names."""
    rest: dict[str, Array] = {}
    by: dict[int, dict[str, Array]] = {}
    for name, a in arrays.items():
        parsed = parse_part(name)
        if parsed is None:
            rest[name] = a
        else:
            by.setdefault(parsed[0], {})[parsed[1]] = a
    return rest, [by[k] for k in sorted(by)]


@dataclass(frozen=True)
class UserShard:
    """The user partitions a reader wants: ``owned`` out of the topic's ``partitions``
    (a serving group's, ``GroupLayout.partitions_of``)."""

    partitions: int
    owned: frozenset[int]

    def wanted(self, snapshot_partitions: int) -> frozenset[int] | None:
        """The snapshot's partitions to read, or None for all of them: a snapshot split into
        another partition count than the shard's hashes users elsewhere, so only the whole
        user side is right for it."""
        if snapshot_partitions != self.partitions:
            return None
        return self.owned
