"""The window's cells as rating rows for Spark: aggregated as the window does, capped."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from streamrec.core.events import Event
from streamrec.core.scoring.cells import rating_cells
from streamrec.core.scoring.foldin import confidence
from streamrec.core.window.sliding import SlidingWindow


def _rows(window: SlidingWindow, alpha: float = 1.0, cap: float = 1e7) -> dict:
    m = window.build()
    cells = rating_cells(m.user_items, alpha, cap)
    return {(m.user_ids[u], m.item_ids[i]): float(r)
            for u, i, r in zip(cells.users, cells.items, cells.ratings, strict=True)}


def test_duplicate_events_become_one_row_with_their_summed_weight():
    window = SlidingWindow(100)
    window.extend([Event("a", "x", 1.0), Event("a", "x", 2.0), Event("b", "x", 1.0),
                   Event("a", "y", 0.5), Event("a", "x", 0.5)])
    assert _rows(window) == {("a", "x"): 3.5, ("a", "y"): 0.5, ("b", "x"): 1.0}


def test_a_negative_event_cancels_the_cells_earlier_events_as_in_the_window():
    window = SlidingWindow(100)
    window.extend([Event("a", "x", 3.0), Event("a", "x", -1.0), Event("a", "x", 0.25),
                   Event("a", "y", 2.0), Event("a", "y", -2.0)])
    # x: the "no" cancels the three clicks, a later event adds to it; y: a plain "no".
    assert _rows(window) == {("a", "x"): -0.75, ("a", "y"): -2.0}


def test_ratings_are_clipped_so_sparks_confidence_equals_the_capped_one():
    window = SlidingWindow(100)
    window.extend([Event("a", "x", 1e6), Event("a", "y", -1e6), Event("a", "z", 4.0)])
    alpha, cap = 2.0, 101.0
    m = window.build()
    cells = rating_cells(m.user_items, alpha, cap)
    spark_confidence = 1.0 + alpha * np.abs(cells.ratings.astype(np.float64))
    ours = confidence(m.user_items.tocoo().data, alpha, cap)
    np.testing.assert_allclose(spark_confidence, ours, rtol=1e-6)
    # The preference (Spark: rating > 0) is the net weight's sign.
    assert list(np.sign(cells.ratings)) == list(np.sign(m.user_items.tocoo().data))
    assert cells.capped == 2 and len(cells) == 3


def test_a_hand_made_matrix_with_a_repeated_cell_is_merged_and_bad_settings_refused():
    repeated = sp.csr_matrix((np.array([1.0, 2.0, 1.0]), np.array([0, 0, 1]),
                              np.array([0, 2, 3])), shape=(2, 2))
    cells = rating_cells(repeated, 1.0)
    assert sorted(zip(cells.users.tolist(), cells.items.tolist(),
                      cells.ratings.tolist(), strict=True)) == [(0, 0, 3.0), (1, 1, 1.0)]
    assert cells.users.dtype == np.int32 and cells.ratings.dtype == np.float32
    with pytest.raises(ValueError, match="alpha"):
        rating_cells(repeated, 0.0)
    with pytest.raises(ValueError, match="cap"):
        rating_cells(repeated, 1.0, 0.5)
