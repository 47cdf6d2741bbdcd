"""Snapshot layout: which arrays a snapshot holds, and how a model and a window map onto them.

Format 1 stores, as separate ``.npy`` files so each can be memory-mapped: the factors, the id
lists (UTF-8 data + offsets, see ``ids.py``), the user x item matrix as CSR's three arrays,
popularity, and the window's events with their own id lists. Reading checks that the arrays
fit together (a CSR that points past the item list, say) before a :class:`Model` is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from .ids import decode_ids, encode_ids
from .manifest import Manifest
from .model import Model
from .modeltypes import ALSParams, FitInfo
from .window import WindowContents

__all__ = ["FILE_NAMES", "model_from_arrays", "to_arrays", "window_from_arrays"]

Array = npt.NDArray[Any]


def _ids(prefix: str, ids: list[str]) -> dict[str, Array]:
    data, offsets = encode_ids(ids)
    return {f"{prefix}.data": data, f"{prefix}.offsets": offsets}


def to_arrays(model: Model, window: WindowContents) -> dict[str, Array]:
    ui = model.user_items
    index_dtype = np.int32 if ui.nnz < np.iinfo(np.int32).max else np.int64
    return {
        "user_factors": np.asarray(model.user_factors, dtype=np.float32),
        "item_factors": np.asarray(model.item_factors, dtype=np.float32),
        **_ids("user_ids", model.user_ids),
        **_ids("item_ids", model.item_ids),
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
    }


#: Every file a format-1 snapshot has (without ``.npy``).
FILE_NAMES = tuple(
    f"{prefix}{suffix}"
    for prefix, suffixes in (
        ("", ("user_factors", "item_factors", "popularity")),
        ("user_ids.", ("data", "offsets")),
        ("item_ids.", ("data", "offsets")),
        ("user_items.", ("indptr", "indices", "data")),
        ("window.", ("users", "items", "weights", "ts")),
        ("window.user_ids.", ("data", "offsets")),
        ("window.item_ids.", ("data", "offsets")),
    )
    for suffix in suffixes
)


def model_from_arrays(a: Mapping[str, Array], manifest: Manifest) -> Model:
    user_ids = decode_ids(a["user_ids.data"], a["user_ids.offsets"])
    item_ids = decode_ids(a["item_ids.data"], a["item_ids.offsets"])
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
    fit = manifest.fit
    info = (
        FitInfo(float(fit["seconds"]), fit.get("loss"), str(fit.get("device", "cpu")))
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
