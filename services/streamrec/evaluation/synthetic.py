"""A synthetic interaction stream with known structure, for scale runs and tests.

Items have Zipf popularity; users belong to latent clusters, and each cluster prefers its own
Zipf-ranked slice of the catalogue, so a personal model has something to find that popularity
alone cannot. User activity is Zipf too (a few heavy users, a long tail), timestamps follow a
Poisson process, and a user does not rate the same item twice (as in MovieLens). Ratings are
1-5: draws from the user's cluster are mostly 4-5, draws from the global popularity are uniform.
Deterministic for a given seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from streamrec.core.events.event import Event

__all__ = ["SyntheticSpec", "generate"]


@dataclass(frozen=True)
class SyntheticSpec:
    events: int = 100_000
    users: int = 2_000
    items: int = 2_000
    clusters: int = 20
    zipf: float = 1.0  # exponent of item popularity within a ranking
    cluster_share: float = 0.7  # share of events drawn from the user's cluster
    rate: float = 1.0  # events per second
    start: float = 1_700_000_000.0
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.events, self.users, self.items, self.clusters) < 1:
            raise ValueError("events, users, items and clusters must be >= 1")
        if not 0.0 <= self.cluster_share <= 1.0 or self.zipf < 0 or self.rate <= 0:
            raise ValueError("cluster_share must be in [0, 1], zipf >= 0, rate > 0")


def _zipf(n: int, s: float) -> npt.NDArray[np.float64]:
    p: npt.NDArray[np.float64] = np.power(np.arange(1, n + 1, dtype=np.float64), -s)
    out: npt.NDArray[np.float64] = p / p.sum()
    return out


def generate(spec: SyntheticSpec = SyntheticSpec()) -> list[Event]:
    """``spec.events`` events in time order."""
    rng = np.random.default_rng(spec.seed)
    item_p = _zipf(spec.items, spec.zipf)
    global_order = rng.permutation(spec.items)
    cluster_order = np.stack([rng.permutation(spec.items) for _ in range(spec.clusters)])
    user_cluster = rng.integers(0, spec.clusters, spec.users)
    user_p = _zipf(spec.users, 0.8)[rng.permutation(spec.users)]
    users = rng.choice(spec.users, size=spec.events, p=user_p)
    from_cluster = rng.random(spec.events) < spec.cluster_share
    ranks = rng.choice(spec.items, size=(spec.events, 4), p=item_p)  # spares for repeats
    good = rng.integers(4, 6, spec.events)
    any_rating = rng.integers(1, 6, spec.events)
    ts = spec.start + np.cumsum(rng.exponential(1.0 / spec.rate, spec.events))
    seen: dict[int, set[int]] = {}
    out: list[Event] = []
    for k in range(spec.events):
        u = int(users[k])
        order = cluster_order[user_cluster[u]] if from_cluster[k] else global_order
        mine = seen.setdefault(u, set())
        item = next((int(order[r]) for r in ranks[k] if int(order[r]) not in mine), None)
        if item is None:  # all spares already rated: skip rather than repeat
            continue
        mine.add(item)
        rating = float(good[k] if from_cluster[k] else any_rating[k])
        out.append(Event(f"u{u}", f"i{item}", rating, float(ts[k])))
    return out
