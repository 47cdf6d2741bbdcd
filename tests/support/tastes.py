"""A tiny synthetic window of two taste groups, for tests of what a model learns from feedback.

Users ``g0-0``..``g0-14`` each take 6 of the items ``a0``..``a9``, users ``g1-*`` 6 of
``b0``..``b9`` (weight 1, a fixed seed): a model fitted on it scores a-items high for an a-user
and b-items high for a b-user.
"""

from __future__ import annotations

import numpy as np

from streamrec.core.window.sliding import SlidingWindow

__all__ = ["two_taste_groups"]


def two_taste_groups(capacity: int = 10_000) -> SlidingWindow:
    """A window holding the two groups (see the module); callers append their own users."""
    window = SlidingWindow(capacity)
    rng = np.random.default_rng(3)
    for g, prefix in ((0, "a"), (1, "b")):
        for u in range(15):
            for i in rng.choice(10, size=6, replace=False):
                window.append(f"g{g}-{u}", f"{prefix}{i}", 1.0)
    return window
