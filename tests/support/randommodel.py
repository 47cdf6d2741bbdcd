"""A synthetic window and an ALS model with random factors, for benchmarks and tests.

Users are uniform, items skewed to the head (``i = ⌊u² · items⌋``), weights 1-4. The factors
are random (scale 0.1): a request's cost and the request path's arithmetic do not depend on
fitted values, and a fit at 1M events costs minutes on 2 cores. ``bench/serving.py`` (and the
benchmarks built on it) and ``tests/unit/test_serving_fast_path.py`` share it.
"""

from __future__ import annotations

import numpy as np

from streamrec.core.scoring.als import ALS
from streamrec.core.scoring.model import ALSParams, Model
from streamrec.core.window.sliding import SlidingWindow


def random_model(users: int, items: int, events: int, factors: int,
                 seed: int = 0) -> tuple[Model, SlidingWindow]:
    """A window of ``events`` and an ALS-only `Model` over it with random factors."""
    rng = np.random.default_rng(seed)
    window = SlidingWindow(events)
    u = rng.integers(0, users, events)
    i = (rng.random(events) ** 2 * items).astype(np.int64)
    window.extend_columns([f"u{x}" for x in u], [f"i{x}" for x in i],
                          rng.integers(1, 5, events).astype(np.float64))
    matrix = window.build()
    n_users, n_items = len(matrix.user_ids), len(matrix.item_ids)
    scale = np.float32(0.1)
    params = ALSParams(factors=factors)
    als = ALS(rng.standard_normal((n_users, factors), dtype=np.float32) * scale,
              rng.standard_normal((n_items, factors), dtype=np.float32) * scale,
              params.regularization, params.alpha)
    model = Model(
        scorers={"als": als},
        user_ids=matrix.user_ids, item_ids=matrix.item_ids, user_items=matrix.user_items,
        popularity=matrix.popularity, params=params,
    )
    return model, window
