"""Snapshot layout: which arrays a snapshot holds, and how a model and a window map onto them.

Format 1 stores, as separate ``.npy`` files so each can be memory-mapped: the factors, the id
lists (UTF-8 data + offsets, see ``ids.py``), the user x item matrix as CSR's three arrays,
popularity, and the window's events with their own id lists. Format 2 adds, for the model's
user and item ids, the open-addressing hash table of ``ids.hash_table`` (``*.table``), so a
serving worker maps its id index instead of building a dict of Python strings. Format 3 adds,
when the trainer made them, each user's ordered history (``history.*``, for recency) and the
item-item model (``item_item.dense`` for EASE, or ``item_item.{indptr,indices,data}`` for the
sparse kNN fallback), with the scoring settings in ``params``. Format 4 adds the item
catalogue (``catalog``: UTF-8 JSON of ``Catalogue.to_bytes`` as a uint8 array, so it is
checksummed like every other file). Format 5 adds the tombstone set
(``tombstones.{users,items}.{data,offsets,at}``, ``erasure.py``), in its own files; format 6
holds the erased ids' keyed hashes instead (``tombstones.{users,items}.{hash,at}``, never an
id: ``erasurekey.py``). Reading checks
that the arrays fit together (a CSR that points past the item list, say) before a
:class:`Model` is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .blend import PLAIN, ScoringParams
from .domains import MAX_CONFIDENCE
from .ease import ItemItem, ItemItemParams
from .erasure import FILES as TOMBSTONE_FILES
from .erasure import LEGACY_FILES as LEGACY_TOMBSTONE_FILES
from .erasure import Tombstones
from .ids import IdIndex, decode_ids, encode_ids
from .manifest import Manifest
from .model import Model
from .modeltypes import ALSParams, FitInfo
from .recency import History
from .window import WindowContents

__all__ = [
    "FILE_NAMES",
    "MODEL_FILES",
    "WINDOW_FILES",
    "empty_window",
    "files_for",
    "model_from_arrays",
    "optional_files",
    "scoring_params",
    "to_arrays",
    "tombstones_from_arrays",
    "window_from_arrays",
]

Array = npt.NDArray[Any]


def _cap(raw: object) -> float | None:
    """The fit's confidence cap from a manifest; None (the default cap) unless it is sane."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and 1.0 <= raw <= MAX_CONFIDENCE:
        return float(raw)
    return None


def _ids(prefix: str, ids: list[str]) -> dict[str, Array]:
    data, offsets = encode_ids(ids)
    return {f"{prefix}.data": data, f"{prefix}.offsets": offsets}


def _index(prefix: str, ids: IdIndex | list[str]) -> dict[str, Array]:
    data, offsets, table = IdIndex.of(ids).arrays
    return {f"{prefix}.data": data, f"{prefix}.offsets": offsets, f"{prefix}.table": table}


def to_arrays(model: Model, window: WindowContents,
              catalog: bytes | None = None) -> dict[str, Array]:
    """Every array of a snapshot, by file name (without ``.npy``); ``catalog`` is the
    serialised catalogue (``Catalogue.to_bytes``), stored when given."""
    ui = model.user_items
    index_dtype = np.int32 if ui.nnz < np.iinfo(np.int32).max else np.int64
    return {
        "user_factors": np.asarray(model.user_factors, dtype=np.float32),
        "item_factors": np.asarray(model.item_factors, dtype=np.float32),
        **_index("user_ids", model.user_ids),
        **_index("item_ids", model.item_ids),
        "user_items.indptr": np.asarray(ui.indptr, dtype=index_dtype),
        "user_items.indices": np.asarray(ui.indices, dtype=np.int32),
        "user_items.data": np.asarray(ui.data, dtype=np.float32),
        "popularity": np.asarray(model.popularity, dtype=np.float64),
        "window.users": np.asarray(window.users, dtype=np.int32),
        "window.items": np.asarray(window.items, dtype=np.int32),
        "window.weights": np.asarray(window.weights, dtype=np.float64),
        "window.ts": np.asarray(window.ts, dtype=np.float64),
        **_ids("window.user_ids", window.user_ids),
        **_ids("window.item_ids", window.item_ids),
        **_scoring_arrays(model),
        **({} if catalog is None else {"catalog": np.frombuffer(catalog, dtype=np.uint8)}),
    }


def _scoring_arrays(model: Model) -> dict[str, Array]:
    out: dict[str, Array] = {}
    h = model.history
    if h is not None:
        out.update({"history.indptr": np.asarray(h.indptr, dtype=np.int64),
                    "history.items": np.asarray(h.items, dtype=np.int32),
                    "history.weights": np.asarray(h.weights, dtype=np.float32),
                    "history.ts": np.asarray(h.ts, dtype=np.float64)})
    ii = model.item_item
    if ii is not None and ii.dense is not None:
        out["item_item.dense"] = np.asarray(ii.dense, dtype=np.float32)
    elif ii is not None and ii.sparse is not None:
        out.update({"item_item.indptr": np.asarray(ii.sparse.indptr, dtype=np.int64),
                    "item_item.indices": np.asarray(ii.sparse.indices, dtype=np.int32),
                    "item_item.data": np.asarray(ii.sparse.data, dtype=np.float32)})
    return out


def scoring_params(model: Model) -> dict[str, Any]:
    """What format 3 adds to the manifest's ``params``: scoring and the item-item model."""
    out: dict[str, Any] = {"scoring": model.scoring.to_dict()}
    ii = model.item_item
    if ii is not None:
        out["item_item"] = {"kind": ii.kind, "seconds": ii.seconds, **ii.params.to_dict()}
    return out


def _names(*groups: tuple[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(f"{prefix}{suffix}" for prefix, suffixes in groups for suffix in suffixes)


#: The files a format-2 model needs (without ``.npy``); format 1 has no ``*.table``.
MODEL_FILES = _names(
    ("", ("user_factors", "item_factors", "popularity")),
    ("user_ids.", ("data", "offsets", "table")),
    ("item_ids.", ("data", "offsets", "table")),
    ("user_items.", ("indptr", "indices", "data")),
)
#: The trainer's window: only a trainer resuming from the snapshot reads these.
WINDOW_FILES = _names(
    ("window.", ("users", "items", "weights", "ts")),
    ("window.user_ids.", ("data", "offsets")),
    ("window.item_ids.", ("data", "offsets")),
)
#: Every file a format-2 snapshot has.
FILE_NAMES = MODEL_FILES + WINDOW_FILES
#: Format 3's optional model files: read when the manifest lists them.
OPTIONAL_FILES = _names(
    ("history.", ("indptr", "items", "weights", "ts")),
    ("item_item.", ("dense", "indptr", "indices", "data")),
    ("", ("catalog",)),
)


def optional_files(manifest: Manifest) -> tuple[str, ...]:
    """The optional files ``manifest`` lists (none before format 3; ``catalog`` from 4; the
    tombstone set's from 5: ids in 5, keyed hashes from 6)."""
    if manifest.format_version < 3:
        return ()
    return tuple(n for n in OPTIONAL_FILES + TOMBSTONE_FILES + LEGACY_TOMBSTONE_FILES
                 if n in manifest.files)


def tombstones_from_arrays(a: Mapping[str, Array]) -> Tombstones:
    """The snapshot's tombstone set; empty for a snapshot without one (format <= 4). A
    format-5 set holds ids, kept aside until the reader binds its hasher
    (`Tombstones.bind`)."""
    if not (all(n in a for n in TOMBSTONE_FILES) or all(n in a for n in LEGACY_TOMBSTONE_FILES)):
        return Tombstones()
    return Tombstones.from_arrays(a)


def files_for(format_version: int, window: bool = True) -> tuple[str, ...]:
    """The files to read for a snapshot of ``format_version``, with or without the window."""
    model = (
        MODEL_FILES
        if format_version >= 2
        else tuple(n for n in MODEL_FILES if not n.endswith(".table"))
    )
    return model + WINDOW_FILES if window else model


def model_from_arrays(a: Mapping[str, Array], manifest: Manifest) -> Model:
    """The model over ``a`` (memory-mapped arrays stay mapped, ids included)."""
    user_ids = IdIndex.from_arrays(
        a["user_ids.data"], a["user_ids.offsets"], a.get("user_ids.table")
    )
    item_ids = IdIndex.from_arrays(
        a["item_ids.data"], a["item_ids.offsets"], a.get("item_ids.table")
    )
    indptr, indices = a["user_items.indptr"], a["user_items.indices"]
    shape = (len(user_ids), len(item_ids))
    nnz = len(indices)
    if (
        len(indptr) != shape[0] + 1
        or int(indptr[0]) != 0
        or int(indptr[-1]) != nnz
        or len(a["user_items.data"]) != nnz
        or (nnz and int(indices.max()) >= shape[1])
    ):
        raise ValueError("user_items arrays do not describe a users x items matrix")
    user_items = sp.csr_matrix((a["user_items.data"], indices, indptr), shape=shape, copy=False)
    for name in ("user_factors", "item_factors"):
        if not np.isfinite(a[name]).all():  # never serve (or fold in against) a poisoned fit
            raise ValueError(f"{name} holds NaN or infinity")
    fit = manifest.fit
    info = (
        FitInfo(float(fit["seconds"]), fit.get("loss"), str(fit.get("device", "cpu")),
                capped_cells=int(fit.get("capped_cells") or 0),
                confidence_cap=_cap(fit.get("confidence_cap")),
                recovered_from=fit.get("recovered_from"))
        if fit
        else None
    )
    return Model(
        a["user_factors"],
        a["item_factors"],
        user_ids,
        item_ids,
        user_items,
        a["popularity"],
        ALSParams.from_dict(manifest.params),
        info,
        history=_history(a, len(item_ids)),
        item_item=_item_item(a, manifest, len(item_ids)),
        scoring=ScoringParams.from_dict(manifest.params["scoring"])
        if "scoring" in manifest.params
        else PLAIN,
    )


def _history(a: Mapping[str, Array], items: int) -> History | None:
    if "history.indptr" not in a:
        return None
    h = History(a["history.indptr"], a["history.items"], a["history.weights"], a["history.ts"])
    if len(h.items) and (int(h.items.min()) < 0 or int(h.items.max()) >= items):
        raise ValueError("history refers to items out of range")
    return h


def _item_item(a: Mapping[str, Array], manifest: Manifest, items: int) -> ItemItem | None:
    meta = dict(manifest.params.get("item_item") or {})
    kind, seconds = str(meta.pop("kind", "ease")), float(meta.pop("seconds", 0.0))
    params = ItemItemParams(**meta) if meta else None
    if "item_item.dense" in a:
        return ItemItem(kind, dense=a["item_item.dense"], params=params, seconds=seconds)
    if "item_item.indptr" not in a:
        return None
    indptr, indices, data = a["item_item.indptr"], a["item_item.indices"], a["item_item.data"]
    if len(indptr) != items + 1 or int(indptr[-1]) != len(indices) or len(data) != len(indices):
        raise ValueError("item_item arrays do not describe an items x items matrix")
    sparse = sp.csr_matrix((data, indices, indptr), shape=(items, items), copy=False)
    return ItemItem(kind, sparse=sparse, params=params, seconds=seconds)


def empty_window(manifest: Manifest) -> WindowContents:
    """No events, but the window's settings: what a reader that skips the window gets."""
    meta = manifest.window
    return WindowContents(
        users=np.empty(0, np.int32),
        items=np.empty(0, np.int32),
        weights=np.empty(0),
        ts=np.empty(0),
        user_ids=[],
        item_ids=[],
        total_appended=int(meta["total_appended"]),
        capacity=int(meta["capacity"]),
        decay_half_life=meta.get("decay_half_life"),
    )


def window_from_arrays(a: Mapping[str, Array], manifest: Manifest) -> WindowContents:
    user_ids = decode_ids(a["window.user_ids.data"], a["window.user_ids.offsets"])
    item_ids = decode_ids(a["window.item_ids.data"], a["window.item_ids.offsets"])
    users, items = a["window.users"], a["window.items"]
    for codes, ids in ((users, user_ids), (items, item_ids)):
        if len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= len(ids)):
            raise ValueError("window events refer to ids out of range")
    meta = manifest.window
    return WindowContents(
        users=users,
        items=items,
        weights=a["window.weights"],
        ts=a["window.ts"],
        user_ids=user_ids,
        item_ids=item_ids,
        total_appended=int(meta["total_appended"]),
        capacity=int(meta["capacity"]),
        decay_half_life=meta.get("decay_half_life"),
    )
