"""A catalogue as arrays: a snapshot's records, memory-mapped, shared by every serving worker.

From snapshot format 8 the catalogue is stored as flat arrays, not as one JSON document that
every worker parsed into Python objects (34.5 MB of objects per worker for 50,000 records, and
a fragmented heap: docs/serving.md). A :class:`CatalogueTable` is those arrays, read-only; rows
are the items in id order (UTF-8 byte order), so a table written twice from the same records is
byte-identical. Per row (``N`` records, ``C`` distinct categories, ``K`` category memberships):

- ``catalog.ids.{data,offsets,table}``: the item ids as an :class:`~streamrec.core.ids.IdIndex`
  (uint8[...], int64[N+1], int32/int64 hash table), so a lookup builds nothing per id;
- ``catalog.records.{data,offsets}``: each record's compact UTF-8 JSON (uint8[...],
  int64[N+1]), decoded only when a record is asked for (``fields=``, ``GET /items``, placement
  expressions);
- ``catalog.titles.{data,offsets}``: each title again on its own (empty: none), so a list's
  ``fields=title`` reads no JSON;
- ``catalog.hidden`` (bool[N]) and ``catalog.expires_at`` (float64[N], seconds since the epoch,
  NaN: never): what every request's filter reads;
- ``catalog.categories.{indptr,codes}`` (int64[N+1], int32[K]): each row's categories as codes
  into ``catalog.category_names.{data,offsets}`` (the C names, in byte order);
- ``catalog.members.{indptr,rows}`` (int64[C+1], int32[K]): the same relation by category, the
  rows of each category ascending, so a category filter is one slice;
- ``catalog.item_offsets`` (int64[P, 2]): the items-topic (partition, next offset) pairs the
  records hold;
- optional, ``catalog.model_rows`` (int32[N]): each row's row in the same snapshot's model
  item ids (-1: not in the model), so a worker filtering with that model maps nothing.

Pure: no I/O; ``adapters.snapshotfiles`` writes and maps the files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..ids import IdIndex, decode_ids, encode_ids

__all__ = ["FILES", "MODEL_ROWS", "CatalogueTable", "TableRow"]

Array = npt.NDArray[Any]
Rows = npt.NDArray[np.int32]

#: The snapshot files of a table, by name (without ``.npy``).
FILES = (
    "catalog.ids.data", "catalog.ids.offsets", "catalog.ids.table",
    "catalog.records.data", "catalog.records.offsets",
    "catalog.titles.data", "catalog.titles.offsets",
    "catalog.hidden", "catalog.expires_at",
    "catalog.categories.indptr", "catalog.categories.codes",
    "catalog.category_names.data", "catalog.category_names.offsets",
    "catalog.members.indptr", "catalog.members.rows",
    "catalog.item_offsets",
)
#: Optional beside them: the rows of the snapshot's own model (`CatalogueTable.bind`).
MODEL_ROWS = "catalog.model_rows"


@dataclass(frozen=True)
class TableRow:
    """One record as a table stores it: ``record`` is its compact UTF-8 JSON
    (``records.encode_record``); the rest repeats what the filters read without decoding it."""

    item: str
    record: bytes
    hidden: bool
    expires_at: float | None
    categories: tuple[str, ...]
    title: str | None


class _Strings:
    """``encode_ids``' layout read one string at a time (repeats allowed, unlike an
    ``IdIndex``); ``ValueError`` when the offsets do not cover the data."""

    __slots__ = ("_data", "_offsets", "count")

    def __init__(self, data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]) -> None:
        _check(offsets.ndim == 1 and len(offsets) >= 1 and int(offsets[0]) == 0
               and int(offsets[-1]) == len(data)
               and (len(offsets) == 1 or int(np.diff(offsets).min()) >= 0),
               "string offsets do not cover their data")
        self.count = len(offsets) - 1
        self._data = np.ascontiguousarray(data).data if len(data) else memoryview(b"")
        self._offsets = np.ascontiguousarray(offsets).data

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, k: int) -> str:
        return str(self._data[self._offsets[k]:self._offsets[k + 1]], "utf-8")


def _check(ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"catalogue arrays: {what}")


def _csr_ok(indptr: Array, values: Array, rows: int, bound: int) -> bool:
    return (indptr.ndim == 1 and len(indptr) == rows + 1 and int(indptr[0]) == 0
            and int(indptr[-1]) == len(values)
            and (rows == 0 or int(np.diff(indptr).min()) >= 0)
            and (len(values) == 0 or (int(values.min()) >= 0 and int(values.max()) < bound)))


class CatalogueTable:
    """The records of one snapshot's catalogue as read-only arrays (see the module doc).

    Every array may be memory-mapped; what is built per table in Python is the list of the C
    category names and a name -> code dict (C is small: distinct category names, not items).
    Raises ``ValueError`` (from :meth:`from_arrays` and the constructor) when the arrays do not
    fit together."""

    __slots__ = ("_codes", "_indptr", "_member_indptr", "_member_rows", "_mv", "_names",
                 "_records_data", "_records_offsets", "_titles", "expires_at", "hidden",
                 "ids", "item_offsets", "model_ids", "model_rows", "names")

    def __init__(self, a: Mapping[str, Array]) -> None:
        self.ids = IdIndex.from_arrays(a["catalog.ids.data"], a["catalog.ids.offsets"],
                                       a["catalog.ids.table"])
        n = len(self.ids)
        self._records_data = np.asarray(a["catalog.records.data"])
        self._records_offsets = np.asarray(a["catalog.records.offsets"])
        self._titles = _Strings(np.asarray(a["catalog.titles.data"]),
                                np.asarray(a["catalog.titles.offsets"]))
        self.hidden: npt.NDArray[np.bool_] = np.asarray(a["catalog.hidden"])
        self.expires_at: npt.NDArray[np.float64] = np.asarray(a["catalog.expires_at"])
        self._indptr = np.asarray(a["catalog.categories.indptr"])
        self._codes: Rows = np.asarray(a["catalog.categories.codes"])
        self.names: list[str] = decode_ids(np.asarray(a["catalog.category_names.data"]),
                                           np.asarray(a["catalog.category_names.offsets"]))
        self._names = {name: code for code, name in enumerate(self.names)}
        self._member_indptr = np.asarray(a["catalog.members.indptr"])
        self._member_rows: Rows = np.asarray(a["catalog.members.rows"])
        #: The model ids `model_rows` index into (`bind`); None until bound.
        self.model_ids: IdIndex | None = None
        self.model_rows: Rows | None = None
        pairs = np.asarray(a["catalog.item_offsets"]).reshape(-1, 2)
        self.item_offsets = {int(p): int(o) for p, o in pairs.tolist()}
        c = len(self.names)
        _check(len(self._titles) == n, "titles are not one per row")
        _check(self.hidden.shape == (n,) and self.hidden.dtype == np.bool_, "hidden is not bool[N]")
        _check(self.expires_at.shape == (n,), "expires_at is not float64[N]")
        _check(len(self._records_offsets) == n + 1
               and int(self._records_offsets[0]) == 0
               and int(self._records_offsets[-1]) == len(self._records_data)
               and (n == 0 or int(np.diff(self._records_offsets).min()) > 0),
               "record offsets do not cover the record data")
        _check(_csr_ok(self._indptr, self._codes, n, c), "categories do not fit the names")
        _check(_csr_ok(self._member_indptr, self._member_rows, c, max(n, 1)),
               "members do not fit the rows")
        _check(len(self._member_rows) == len(self._codes), "members and categories differ")
        _check(len(self._names) == c, "category names repeat")
        # memoryviews index to plain ints and slice without numpy's per-call overhead (a
        # record decode is ~5 µs, and numpy scalars would double it).
        self._mv = tuple(np.ascontiguousarray(x).data if len(x) else memoryview(b"")
                         for x in (self._records_data, self._records_offsets, self._indptr,
                                   self._codes))

    # --- building -------------------------------------------------------------------------

    def bind(self, model_ids: IdIndex, model_rows: Array) -> None:
        """Take ``model_rows`` (a snapshot's ``catalog.model_rows``) as this table's rows in
        ``model_ids``; ``ValueError`` when they cannot be (wrong length, out of range)."""
        rows = np.asarray(model_rows)
        _check(rows.shape == (len(self),) and (not len(rows) or (
            int(rows.min()) >= -1 and int(rows.max()) < len(model_ids))),
            "model rows do not fit the model's items")
        self.model_ids, self.model_rows = model_ids, rows

    @staticmethod
    def build(rows: Sequence[TableRow], item_offsets: Mapping[int, int],
              model_ids: IdIndex | None = None) -> dict[str, Array]:
        """The arrays of a table holding ``rows`` (any order; ids must be unique, ``ValueError``
        otherwise) and the items-topic ``item_offsets``: what a snapshot stores. With the
        snapshot's ``model_ids``, each row's model row too (``catalog.model_rows``)."""
        ordered = sorted(rows, key=lambda r: r.item)  # code point order = UTF-8 byte order
        ids = [r.item for r in ordered]
        n = len(ordered)
        ids_data, ids_offsets, ids_table = IdIndex.from_ids(ids).arrays
        names = sorted({c for r in ordered for c in r.categories})
        code = {name: k for k, name in enumerate(names)}
        lengths = np.fromiter((len(r.categories) for r in ordered), dtype=np.int64, count=n)
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        codes = np.fromiter((code[c] for r in ordered for c in r.categories), dtype=np.int32,
                            count=int(indptr[-1]))
        owner = np.repeat(np.arange(n, dtype=np.int32), lengths)
        by_code = np.argsort(codes, kind="stable")  # rows ascending within each category
        member_indptr = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum(np.bincount(codes, minlength=len(names)), out=member_indptr[1:])
        record_lengths = np.fromiter((len(r.record) for r in ordered), dtype=np.int64, count=n)
        record_offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(record_lengths, out=record_offsets[1:])
        names_data, names_offsets = encode_ids(names)
        titles_data, titles_offsets = encode_ids([r.title or "" for r in ordered])
        return {
            "catalog.ids.data": ids_data, "catalog.ids.offsets": ids_offsets,
            "catalog.ids.table": ids_table,
            "catalog.records.data": np.frombuffer(b"".join(r.record for r in ordered),
                                                  dtype=np.uint8),
            "catalog.records.offsets": record_offsets,
            "catalog.titles.data": titles_data, "catalog.titles.offsets": titles_offsets,
            "catalog.hidden": np.fromiter((r.hidden for r in ordered), dtype=np.bool_, count=n),
            "catalog.expires_at": np.fromiter(
                (math.nan if r.expires_at is None else r.expires_at for r in ordered),
                dtype=np.float64, count=n),
            "catalog.categories.indptr": indptr, "catalog.categories.codes": codes,
            "catalog.category_names.data": names_data,
            "catalog.category_names.offsets": names_offsets,
            "catalog.members.indptr": member_indptr,
            "catalog.members.rows": owner[by_code].astype(np.int32),
            "catalog.item_offsets": np.asarray(sorted(item_offsets.items()),
                                               dtype=np.int64).reshape(-1, 2),
            **({} if model_ids is None else {MODEL_ROWS: np.fromiter(
                (-1 if (r := model_ids.get(i)) is None else r for i in ids),
                dtype=np.int32, count=n)}),
        }

    # --- reading --------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, item: str) -> int | None:
        """The row of ``item``, or None."""
        return self.ids.get(item)

    def record_bytes(self, row: int) -> bytes:
        """Row ``row``'s record as stored: compact UTF-8 JSON."""
        data, offsets = self._mv[0], self._mv[1]
        return bytes(data[offsets[row]:offsets[row + 1]])

    def record_json(self, row: int) -> dict[str, Any]:
        """Row ``row``'s record decoded (``ValueError`` if the stored bytes are not JSON)."""
        data, offsets = self._mv[0], self._mv[1]
        value = json.loads(str(data[offsets[row]:offsets[row + 1]], "utf-8"))
        if not isinstance(value, dict):
            raise ValueError(f"catalogue row {row} is not a JSON object")
        return value

    def title_of(self, row: int) -> str | None:
        """Row ``row``'s title (None: it has none)."""
        return self._titles[row] or None

    def categories_of(self, row: int) -> tuple[str, ...]:
        """Row ``row``'s categories, in the record's order."""
        names, indptr = self.names, self._mv[2]
        return tuple(names[c] for c in self._mv[3][indptr[row]:indptr[row + 1]])

    def category_rows(self, category: str) -> Rows:
        """The rows in ``category``, ascending (empty for a name nobody has); a view."""
        code = self._names.get(category)
        if code is None:
            return self._member_rows[:0]
        return self._member_rows[self._member_indptr[code]:self._member_indptr[code + 1]]

    def rows(self) -> list[TableRow]:
        """Every row as a writer gives it (for merging into a new table)."""
        return [self.table_row(r) for r in range(len(self))]

    def table_row(self, row: int) -> TableRow:
        at = float(self.expires_at[row])
        return TableRow(self.ids[row], self.record_bytes(row), bool(self.hidden[row]),
                        None if math.isnan(at) else at, self.categories_of(row),
                        self.title_of(row))
