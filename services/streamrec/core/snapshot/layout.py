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
id: ``erasurekey.py``). Format 7 writes every scorer (``scorer.py``) the same way: its arrays
as ``<name>.<array>`` (so the ALS factors became ``als.user_factors`` and ``als.item_factors``),
its settings as ``params.<name>``, and the names in ``params.scorers``; a reader builds each
through the registry, so a new scorer needs no change here. Format 8 stores the catalogue as
arrays (``catalog.*``, ``core/catalog/table.py``) that workers map and share, in place of the
one JSON file, and each history event's timestamp as float32 seconds after
``history.ts_base`` (float64 before). Format 9 may split the user side (ids, user x item
matrix, history, per-user scorer rows) by the user's partition of the interactions topic,
``users.<p>.<name>`` (``usersides.py``), so a serving group reads its own partitions' users
only; a reader puts the parts it wants back together. Any format may hold the client
event ids of the window's events (``window.event_ids.{data,offsets,at}``: the ids, and the
window position of each), optional files that serving reads too, so a trainer resumed from the
snapshot and a replica folding in after it both still recognise a retry (``eventids.py``); a
snapshot without them loads as one whose events have no ids. Reading checks that the arrays fit
together (a CSR that points past the item list, say) before a :class:`Model` is built.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from ..catalog.table import FILES as CATALOG_FILES
from ..catalog.table import MODEL_ROWS
from ..events.erasure import FILES as TOMBSTONE_FILES
from ..events.erasure import LEGACY_FILES as LEGACY_TOMBSTONE_FILES
from ..events.erasure import Tombstones
from ..events.partitioning import partitions_of_ids
from ..ids import IdIndex, decode_ids, encode_ids
from ..scoring.als import sane_cap
from ..scoring.blend import PLAIN, ScoringParams
from ..scoring.model import Model
from ..scoring.recency import History
from ..scoring.scorer import Scorer, scorer_class
from ..scoring.types import ALSParams, FitInfo
from ..window.sliding import WindowContents
from . import usersides
from .manifest import Manifest

__all__ = [
    "MODEL_FILES",
    "reserved_scorer_names",
    "SCORERS_FORMAT",
    "USER_PARTITIONS_FORMAT",
    "partitions_to_read",
    "user_partitions",
    "user_row_files",
    "WINDOW_FILES",
    "EVENT_ID_FILES",
    "empty_window",
    "event_ids_from_arrays",
    "files_for",
    "model_from_arrays",
    "params_of",
    "to_arrays",
    "tombstones_from_arrays",
    "window_from_arrays",
]

Array = npt.NDArray[Any]
#: The first format that writes every scorer under its name (``als.*``, ``params.<name>``).
SCORERS_FORMAT = 7
#: The first format whose user side may be split by partition (``usersides.py``).
USER_PARTITIONS_FORMAT = 9
#: Before it: the file of each ALS array.
_LEGACY_ALS = {"user_factors": "user_factors", "item_factors": "item_factors"}


def _ids(prefix: str, ids: list[str]) -> dict[str, Array]:
    data, offsets = encode_ids(ids)
    return {f"{prefix}.data": data, f"{prefix}.offsets": offsets}


def _index(prefix: str, ids: IdIndex | list[str]) -> dict[str, Array]:
    data, offsets, table = IdIndex.of(ids).arrays
    return {f"{prefix}.data": data, f"{prefix}.offsets": offsets, f"{prefix}.table": table}


def to_arrays(model: Model, window: WindowContents,
              catalog: Mapping[str, Array] | None = None,
              user_partitions: int = 1) -> dict[str, Array]:
    """Every array of a snapshot, by file name (without ``.npy``); ``catalog`` is the
    catalogue's arrays (``Catalogue.to_arrays``), stored when given. ``user_partitions`` > 1
    writes the user side once per partition of the interactions topic (format 9,
    ``usersides.py``)."""
    arrays = _whole_arrays(model, window, catalog)
    if user_partitions <= 1:
        return arrays
    # Counted over every user before the split: a group's matrix holds only its own users.
    arrays["item_users"] = model.users_per_item()
    return usersides.split_by_partition(
        arrays, partitions_of_ids(arrays["user_ids.data"], arrays["user_ids.offsets"],
                                  user_partitions),
        user_partitions, user_row_files(model))


def user_row_files(model: Model) -> tuple[str, ...]:
    """The files of ``model``'s scorer arrays with one row per user (a scorer's
    ``user_rows``: ALS's ``user_factors``)."""
    return tuple(f"{name}.{array}" for name, scorer in model.scorers.items()
                 for array in getattr(scorer, "user_rows", ()))


def _whole_arrays(model: Model, window: WindowContents,
                  catalog: Mapping[str, Array] | None) -> dict[str, Array]:
    ui = model.user_items
    index_dtype = np.int32 if ui.nnz < np.iinfo(np.int32).max else np.int64
    return {
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
        **_history_arrays(model.history),
        **{f"{name}.{key}": array for name, scorer in model.scorers.items()
           for key, array in scorer.to_arrays().items()},
        **(catalog or {}),
        **_event_id_arrays(window.event_ids),
    }


def _history_arrays(h: History | None) -> dict[str, Array]:
    if h is None:
        return {}
    ts, base = h.compact_ts()
    return {"history.indptr": np.asarray(h.indptr, dtype=np.int64),
            "history.items": np.asarray(h.items, dtype=np.int32),
            "history.weights": np.asarray(h.weights, dtype=np.float32),
            "history.ts": ts, "history.ts_base": np.asarray([base], dtype=np.float64)}


def _event_id_arrays(eids: list[str | None] | None) -> dict[str, Array]:
    if eids is None:
        return {}
    at = [k for k, e in enumerate(eids) if e is not None]
    return {**_ids("window.event_ids", [e for e in eids if e is not None]),
            "window.event_ids.at": np.asarray(at, dtype=np.int64)}


#: File prefixes of a model beside its scorers: no scorer may be named like one.
_FILE_PREFIXES = ("user_ids", "item_ids", "user_items", "window", "users", "item_users")


def params_of(model: Model) -> dict[str, Any]:
    """The manifest's ``params``: the ALS hyperparameters, ``scoring``, the scorer names
    (``scorers``) and each scorer's settings under its name.

    Raises ``ValueError`` for a scorer whose name is one of those keys or a file prefix of the
    model (``factors``, ``scoring``, ``window``...): its settings or arrays would overwrite
    the model's, and the snapshot would not read back."""
    base = {**model.params.to_dict(), "scoring": model.scoring.to_dict(),
            "scorers": list(model.scorers)}
    clash = sorted((set(base) | set(_FILE_PREFIXES)) & set(model.scorers))
    if clash:
        raise ValueError(f"scorer name(s) {clash} are reserved in the snapshot (the model's "
                         f"own params and files); rename the scorer")
    return {**base, **{name: scorer.meta() for name, scorer in model.scorers.items()}}


def reserved_scorer_names() -> frozenset[str]:
    """The names no scorer may have (see `params_of`)."""
    return frozenset({*ALSParams().to_dict(), "scoring", "scorers", *_FILE_PREFIXES})


def _names(*groups: tuple[str, tuple[str, ...]]) -> tuple[str, ...]:
    return tuple(f"{prefix}{suffix}" for prefix, suffixes in groups for suffix in suffixes)


#: The files of a model beside its scorers (format 2; format 1 has no ``*.table``).
MODEL_FILES = _names(
    ("", ("popularity",)),
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
#: The window's client event ids: optional in any format, read with and without the window.
EVENT_ID_FILES = _names(("window.event_ids.", ("data", "offsets", "at")))
#: Optional files, read when the manifest lists them: history and the item-item model
#: (format 3), the catalogue (4: JSON; 8 on: arrays), the tombstone set (5: ids; 6 on: keyed
#: hashes).
_OPTIONAL_FILES = (*_names(
    ("history.", ("indptr", "items", "weights", "ts", "ts_base")),
    ("item_item.", ("dense", "indptr", "indices", "data")),
    ("", ("catalog", "item_users")),
), *CATALOG_FILES, MODEL_ROWS, *TOMBSTONE_FILES, *LEGACY_TOMBSTONE_FILES)


def _scorer_names(manifest: Manifest) -> list[str]:
    """The scorers a snapshot holds (format 7 lists them; before, ALS alone)."""
    if manifest.format_version < SCORERS_FORMAT:
        return ["als"]
    names = manifest.params.get("scorers")
    if not isinstance(names, list) or "als" not in names:
        raise ValueError(f"params.scorers must be a list of names with 'als', got {names!r}")
    return [str(n) for n in names]


def user_partitions(manifest: Manifest) -> int:
    """How many partitions the snapshot's user side is split into (1: not split; format 9
    on, ``sizes["user_partitions"]``)."""
    if manifest.format_version < USER_PARTITIONS_FORMAT:
        return 1
    return int(manifest.sizes.get("user_partitions", 1))


def partitions_to_read(manifest: Manifest, shard: usersides.UserShard | None
                       ) -> frozenset[int] | None:
    """The user partitions of ``manifest``'s snapshot that a reader for ``shard`` (a serving
    group's) fetches and maps: None (all) without a shard, for a snapshot not split, or for
    one split into another partition count than the shard's."""
    split = user_partitions(manifest)
    return None if shard is None or split <= 1 else shard.wanted(split)


def files_for(manifest: Manifest, window: bool = True,
              partitions: Collection[int] | None = None) -> tuple[str, ...]:
    """Every file to read for ``manifest``'s snapshot, with or without the window: the model's,
    its scorers' (``<name>.*`` from format 7), and the optional ones it lists (the window's
    event ids in any format). For a snapshot split by partition (format 9), the user side's
    files are those of ``partitions`` (all when None): ``users.<p>.<name>``.

    Raises ``ValueError`` for a partition the snapshot does not have."""
    v = manifest.format_version
    split = user_partitions(manifest)
    # the user side's names as one user side would have them (none unless split)
    per_partition = {parsed[1] for n in manifest.files
                     if split > 1 and (parsed := usersides.parse_part(n))}
    listed = set(manifest.files) | per_partition
    model = MODEL_FILES if v >= 2 else tuple(n for n in MODEL_FILES if not n.endswith(".table"))
    if v < SCORERS_FORMAT:
        scorers: tuple[str, ...] = tuple(_LEGACY_ALS.values())
    else:
        prefixes = tuple(f"{name}." for name in _scorer_names(manifest))
        scorers = tuple(sorted(n for n in listed if n.startswith(prefixes)))
    optional = () if v < 3 else tuple(n for n in _OPTIONAL_FILES if n in listed)
    eids = tuple(n for n in EVENT_ID_FILES if n in listed)  # any format
    names = model + scorers + (WINDOW_FILES if window else ()) + tuple(
        n for n in optional if n not in scorers) + eids
    if split <= 1:
        return names
    wanted = range(split) if partitions is None else sorted(set(partitions))
    if any(not 0 <= p < split for p in wanted):
        raise ValueError(f"partitions {sorted(wanted)} are not all among the snapshot's {split}")
    return tuple(n for n in names if n not in per_partition) + tuple(
        usersides.part_name(p, n) for p in wanted for n in names if n in per_partition)


def tombstones_from_arrays(a: Mapping[str, Array]) -> Tombstones:
    """The snapshot's tombstone set; empty for a snapshot without one (format <= 4). A
    format-5 set holds ids, kept aside until the reader binds its hasher
    (`Tombstones.bind`)."""
    if not (all(n in a for n in TOMBSTONE_FILES) or all(n in a for n in LEGACY_TOMBSTONE_FILES)):
        return Tombstones()
    return Tombstones.from_arrays(a)


def _scorers(a: Mapping[str, Array], manifest: Manifest, items: int) -> dict[str, Scorer]:
    """Every scorer of the snapshot, built through the registry (``scorer.SCORERS``)."""
    params = manifest.params
    if manifest.format_version < SCORERS_FORMAT:  # ALS's files and settings had no prefix
        als_meta = {"regularization": params["regularization"], "alpha": params["alpha"],
                    "confidence_cap": manifest.fit.get("confidence_cap")}
        found: dict[str, tuple[Mapping[str, Array], Mapping[str, Any]]] = {
            "als": ({k: a[f] for k, f in _LEGACY_ALS.items()}, als_meta)}
        ii = {k.removeprefix("item_item."): v for k, v in a.items() if k.startswith("item_item.")}
        if ii:
            found["item_item"] = (ii, dict(params.get("item_item") or {}))
    else:
        found = {}
        for name in _scorer_names(manifest):
            prefix = f"{name}."
            found[name] = ({k.removeprefix(prefix): v for k, v in a.items()
                            if k.startswith(prefix)}, dict(params.get(name) or {}))
    return {name: scorer_class(name).from_arrays(arrays, meta, items)
            for name, (arrays, meta) in found.items()}


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
    fit = manifest.fit
    info = (
        FitInfo(float(fit["seconds"]), fit.get("loss"), str(fit.get("device", "cpu")),
                capped_cells=int(fit.get("capped_cells") or 0),
                confidence_cap=sane_cap(fit.get("confidence_cap")),
                recovered_from=fit.get("recovered_from"),
                engine=str(fit.get("engine", "implicit")))
        if fit
        else None
    )
    return Model(
        _scorers(a, manifest, len(item_ids)),
        user_ids,
        item_ids,
        user_items,
        a["popularity"],
        ALSParams.from_dict(manifest.params),
        info,
        history=_history(a, len(item_ids)),
        scoring=ScoringParams.from_dict(manifest.params["scoring"])
        if "scoring" in manifest.params
        else PLAIN,
        item_users=a.get("item_users"),
    )


def _history(a: Mapping[str, Array], items: int) -> History | None:
    if "history.indptr" not in a:
        return None
    base = a.get("history.ts_base")  # format 8: float32 offsets from it; before, float64 ts
    if base is not None and np.shape(base) != (1,):
        raise ValueError("history.ts_base is not one number")
    h = History(a["history.indptr"], a["history.items"], a["history.weights"], a["history.ts"],
                0.0 if base is None else float(base[0]))
    if len(h.items) and (int(h.items.min()) < 0 or int(h.items.max()) >= items):
        raise ValueError("history refers to items out of range")
    return h


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


def event_ids_from_arrays(a: Mapping[str, Array], events: int | None = None
                          ) -> list[tuple[int, str]]:
    """The window's (position, event id) pairs; none for a snapshot without event ids.
    Raises ``ValueError`` when the arrays do not fit together (or not ``events`` events)."""
    if not all(n in a for n in EVENT_ID_FILES):
        return []
    ids = decode_ids(a["window.event_ids.data"], a["window.event_ids.offsets"])
    at = np.asarray(a["window.event_ids.at"]).tolist()
    if len(at) != len(ids) or (at and (min(at) < 0 or (events is not None
                                                       and max(at) >= events))):
        raise ValueError("window event ids do not fit the window's events")
    return list(zip(at, ids, strict=True))


def window_from_arrays(a: Mapping[str, Array], manifest: Manifest) -> WindowContents:
    user_ids = decode_ids(a["window.user_ids.data"], a["window.user_ids.offsets"])
    item_ids = decode_ids(a["window.item_ids.data"], a["window.item_ids.offsets"])
    users, items = a["window.users"], a["window.items"]
    for codes, ids in ((users, user_ids), (items, item_ids)):
        if len(codes) and (int(codes.min()) < 0 or int(codes.max()) >= len(ids)):
            raise ValueError("window events refer to ids out of range")
    meta = manifest.window
    pairs = event_ids_from_arrays(a, len(users))
    eids: list[str | None] | None = None
    if pairs:
        eids = [None] * len(users)
        for k, eid in pairs:
            eids[k] = eid
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
        event_ids=eids,
    )
