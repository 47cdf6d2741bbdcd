"""Incremental matrix factorisation by per-event SGD (ISGD; Vinagre, Jorge & Gama, 2014).

The streaming baseline that needs no retrain at all: every positive event (u, i) is one SGD step
on the squared error of ``1 - p_u·q_i`` with L2 regularisation, as FluRS's ``IncrementalMF``
does for positive-only feedback. New users and items get small random vectors on first sight.
Events below ``min_weight`` are remembered (they are still excluded from the user's lists) but
do not train: the method has no notion of a negative or a weak positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from streamrec.core.events.event import Event

from .strategies import Learner

__all__ = ["ISGD"]

F64 = npt.NDArray[np.float64]


class ISGD:
    """Positive-only incremental MF; both a learner and a recommender (see ``strategies``).

    Unknown users get the items with the most events so far (the same fallback ALS has).
    """

    kind = "isgd"

    def __init__(
        self,
        factors: int = 32,
        learn_rate: float = 0.05,
        regularization: float = 0.01,
        min_weight: float = 4.0,
        init_std: float = 0.1,
        seed: int = 0,
    ) -> None:
        if factors < 1 or learn_rate <= 0 or regularization < 0 or init_std <= 0:
            raise ValueError("ISGD needs factors >= 1, learn_rate > 0, regularization >= 0")
        self.factors, self.learn_rate, self.regularization = factors, learn_rate, regularization
        self.min_weight, self.init_std = min_weight, init_std
        self.name = f"isgd k={factors}"
        self.params: dict[str, Any] = {
            "factors": factors, "learn_rate": learn_rate,
            "regularization": regularization, "min_weight": min_weight,
        }
        self.learner: Learner = self
        self._rng = np.random.default_rng(seed)
        self.users: dict[str, int] = {}
        self.items: dict[str, int] = {}
        self._item_ids: list[str] = []
        self.P: F64 = np.zeros((0, factors))
        self.Q: F64 = np.zeros((0, factors))
        self._counts = np.zeros(0, dtype=np.int64)
        self._seen: list[set[int]] = []
        self.updates = 0

    def _grow(self, matrix: F64, size: int) -> F64:
        if size <= len(matrix):
            return matrix
        more = self._rng.normal(0.0, self.init_std, (max(size, 2 * len(matrix)) - len(matrix),
                                                    self.factors))
        return np.concatenate((matrix, more))

    def _user(self, user: str) -> int:
        u = self.users.get(user)
        if u is None:
            u = self.users[user] = len(self.users)
            self.P = self._grow(self.P, u + 1)
            self._seen.append(set())
        return u

    def _item(self, item: str) -> int:
        i = self.items.get(item)
        if i is None:
            i = self.items[item] = len(self.items)
            self._item_ids.append(item)
            self.Q = self._grow(self.Q, i + 1)
            if i >= len(self._counts):
                self._counts = np.concatenate((self._counts, np.zeros(max(16, i + 1), np.int64)))
        return i

    def error(self, user: str, item: str) -> float:
        """``1 - p_u·q_i`` for a known pair (what the next step on that pair reduces)."""
        return float(1.0 - self.P[self.users[user]] @ self.Q[self.items[item]])

    def warm(self, events: Sequence[Event]) -> None:
        for event in events:
            self.learn(event)

    def learn(self, event: Event) -> None:
        u, i = self._user(event.user), self._item(event.item)
        self._seen[u].add(i)
        self._counts[i] += 1
        if event.weight < self.min_weight:
            return
        p, q = self.P[u].copy(), self.Q[i]
        err = 1.0 - p @ q
        self.P[u] += self.learn_rate * (err * q - self.regularization * p)
        self.Q[i] += self.learn_rate * (err * p - self.regularization * q)
        self.updates += 1

    def recommend(self, user: str, n: int) -> list[str]:
        count = len(self.items)
        u = self.users.get(user)
        if u is None:
            scores = self._counts[:count].astype(np.float64)
        else:
            scores = self.Q[:count] @ self.P[u]
            scores[list(self._seen[u])] = -np.inf
        order = np.lexsort((np.arange(count), -scores))[:n]
        return [self._item_ids[i] for i in order.tolist() if np.isfinite(scores[i])]

    def info(self) -> dict[str, Any]:
        return {"updates": self.updates}

    def diagnostics(self) -> dict[str, Any]:
        return {}
