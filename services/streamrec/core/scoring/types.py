"""The model's value types: hyperparameters, fit metrics, results and errors.

Kept apart from :mod:`streamrec.core.scoring.model` so the ranking helpers, the snapshot reader and
the
serving layer can share them without importing the model class (or each other).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

__all__ = [
    "Ranker",
    "ALSParams",
    "FitInfo",
    "ModelError",
    "Recommendations",
    "UnknownItem",
    "UnknownUser",
    "FitFailed",
    "Pairs",
]

#: A user's events as (item id, weight) pairs, oldest first; a third element, when given, is
#: the event's timestamp in seconds (None: unknown), used by time-based recency.
Pairs = Sequence[tuple[str, float] | tuple[str, float, float | None]]


class Ranker(Protocol):
    """A request's own final ranking step (a placement, ``core/placements/rerank.py``): from
    every item's scores (float32, ``(items,)``, its to modify), the banned item indices, the
    candidate indices (None: all) and ``n``, the chosen indices, their scores and a mark each."""

    def __call__(self, scores: npt.NDArray[np.float32], banned: npt.NDArray[np.intp],
                 candidates: npt.NDArray[np.intp] | None, n: int
                 ) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float32], list[str | None]]: ...


class ModelError(Exception):
    """Base for model errors."""


class FitFailed(ModelError):
    """A fit that produced no usable model. ``reason`` is a short stable code for metrics and
    status conditions (``empty_window``, ``nonfinite_factors``, ``solver_error``); ``detail``
    says what happened, for a human."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason, self.detail = reason, detail

    def __str__(self) -> str:
        return f"fit failed ({self.reason}): {self.detail}"


class UnknownUser(ModelError, KeyError):
    """The user is not in the model and brought no events of their own."""

    def __init__(self, user: str) -> None:
        super().__init__(user)
        self.user = user

    def __str__(self) -> str:
        return f"unknown user {self.user!r}: no interactions in the model's window"


class UnknownItem(ModelError, KeyError):
    """The item is not in the model (never seen, or fallen out of the window)."""

    def __init__(self, item: str) -> None:
        super().__init__(item)
        self.item = item

    def __str__(self) -> str:
        return f"unknown item {self.item!r}: not in the model's window"


@dataclass(frozen=True)
class ALSParams:
    """Hyperparameters. Confidence is ``1 + alpha * weight`` (see docs/core.md).

    ``num_threads`` (0: all cores) is an addition for the trainer's CPU budget.
    """

    factors: int = 64
    regularization: float = 0.05
    iterations: int = 15
    alpha: float = 1.0
    use_gpu: bool = False
    random_state: int | None = 42
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.factors < 1:
            raise ValueError(f"factors must be >= 1, got {self.factors}")
        if not 0.0 < self.regularization < math.inf:
            # λ > 0 keeps every fold-in system positive definite, hence solvable.
            raise ValueError(f"regularization must be > 0, got {self.regularization}")
        if self.iterations < 1:
            raise ValueError(f"iterations must be >= 1, got {self.iterations}")
        if not 0.0 < self.alpha < math.inf:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ALSParams:
        """From :meth:`to_dict` output; unknown keys (from newer writers) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class FitInfo:
    """How a fit went: wall seconds, implicit's training loss, and the device used.

    ``capped_cells`` counts the window cells whose confidence hit ``confidence_cap``;
    ``recovered_from`` is the error of a first attempt that failed, when this fit is the
    retry with the safe cap (see ``training.fit``). ``engine`` is the training engine that
    fitted it (``implicit`` or ``spark``; the manifest's ``fit.engine``).
    """

    seconds: float
    loss: float | None = None
    device: str = "cpu"
    capped_cells: int = 0
    confidence_cap: float | None = None
    recovered_from: str | None = None
    engine: str = "implicit"

    def to_dict(self) -> dict[str, object]:
        return {"seconds": self.seconds, "loss": self.loss, "device": self.device,
                "capped_cells": self.capped_cells, "confidence_cap": self.confidence_cap,
                "recovered_from": self.recovered_from, "engine": self.engine}


@dataclass(frozen=True)
class Recommendations:
    """Ranked items with their scores; ``fallback`` names why it is not personal (or None)."""

    items: list[str]
    scores: list[float]
    fallback: str | None = None
    #: Per item, what put it there when a placement chose the list (``promoted``,
    #: ``exploration`` or None: organic); None without a placement.
    marks: list[str | None] | None = None
