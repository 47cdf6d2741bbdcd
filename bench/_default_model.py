"""The default configuration's model for the serving benchmarks: every scorer of the blend.

``bench/serving.py`` used to serve ALS alone. What users run is the default configuration:
ALS plus the item-item model (EASE up to ``max_dense_items`` items, cosine kNN beyond: at
50k items, kNN) and the sequential scorer (sequential rules over the window's order), blended
by the default table ``{als: 0.7, item_item: 0.3, sequential: σ}``, over a
recency-weighted history (``ScoringParams()``), with a catalogue (a record per item; 5% of the
items hidden, 5% expired) and online tracking on (the server's default). The ALS factors are
random: a request's cost does not depend on their values, and a fit at 1M events would cost
minutes on 2 cores; the other scorers and the history are fitted from the window as the
trainer does (through the registry, ``training.with_scorer``).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Mapping
from typing import Any

import numpy as np

from streamrec.core.catalog.records import Catalogue, ItemRecord
from streamrec.core.scoring.blend import ScoringParams, history_for
from streamrec.core.scoring.itemitem import ItemItem
from streamrec.core.scoring.model import Model
from streamrec.core.scoring.scorer import fitted_by_window
from streamrec.core.scoring.training import with_scorer
from streamrec.core.window.sliding import SlidingWindow

CATEGORIES = [f"genre-{k}" for k in range(20)]


def default_catalogue(item_ids: list[str], seed: int = 0) -> Catalogue:
    """A record per item: a title, 1-3 of 20 categories, two labels; 5% hidden, 5% expired."""
    rng = np.random.default_rng(seed)
    now = time.time()
    fate = rng.random(len(item_ids))
    return Catalogue(
        ItemRecord(item, tuple(str(c) for c in rng.choice(
            CATEGORIES, size=int(rng.integers(1, 4)), replace=False)),
            labels={"year": str(1950 + k % 70), "studio": f"s{k % 40}"},
            hidden=bool(fate[k] < 0.05),
            expires_at=now - 3600 if 0.05 <= fate[k] < 0.10 else None,
            title=f"A film called number {k}")
        for k, item in enumerate(item_ids))


def catalogue_heap_mb(arrays: Mapping[str, Any]) -> float:
    """MB of Python objects one worker builds from the snapshot's catalogue arrays
    (``Catalogue.from_arrays``, tracemalloc; the arrays themselves are mapped and shared, so
    they are not counted): private to each worker, as its heap is."""
    tracemalloc.start()
    try:
        catalogue, _ = Catalogue.from_arrays(arrays)
        held = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    del catalogue
    return held / 2**20


def default_model(model: Model, window: SlidingWindow,
                  scoring: ScoringParams | None = None) -> tuple[Model, dict[str, Any]]:
    """``model`` (ALS) with the default blend: the ordered history and every scorer the blend
    table weighs > 0 fitted from its window, scored by ``scoring`` (default:
    ``ScoringParams()``). Returns the model and the seconds each fit took
    (``<scorer>_s``)."""
    scoring = ScoringParams() if scoring is None else scoring
    t = time.perf_counter()
    history = history_for(window.contents(), model.user_ids, model.item_ids,
                          scoring.history_cap)
    history_s = time.perf_counter() - t
    derived = model.derive(history=history, scoring=scoring)
    fits: dict[str, Any] = {"history_s": history_s}
    for name in fitted_by_window(scoring.weights):
        t = time.perf_counter()
        derived = with_scorer(derived, name, None, threads=1)
        fits[f"{name}_s"] = time.perf_counter() - t
    ii = derived.scorers.get("item_item")
    if isinstance(ii, ItemItem):
        fits["item_item_kind"] = ii.kind
    return derived, fits
