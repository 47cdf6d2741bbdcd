"""Feedback types: an event's ``type`` (click, purchase, dislike, ...) becomes a signed weight.

One table maps each type to a weight (:data:`DEFAULT_WEIGHTS`, overridden by the
``feedback_weights`` setting). An event's weight in the model is

    w = table[type] * count

where ``count`` is the event's own ``weight`` field (default 1: "two purchases" is
``{"type": "purchase", "weight": 2}``). An event without a type keeps its weight as given, as
before types existed; such a weight may also be negative, which is how a resolved typed event
travels (``codec.serialize_event``). A negative weight is *negative feedback*: it enters the
user x item matrix as a negative entry, which implicit reads as preference 0 with confidence
``1 + alpha * |w|`` (see ``foldin.py`` and docs/feedback.md). Repeated events of one item
net out by :func:`aggregate` (a "no" cancels what came before it), in the window and in every
scorer's history alike.

An unknown type is refused (the message is dead-lettered with reason ``unknown_type``), never
given a default weight: a misspelt type ("purchse") would otherwise train the model silently
with a wrong weight, while a dead letter is counted, visible and can be replayed once the type
is added to the table.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt

from ..domains import MAX_WEIGHT, show

__all__ = [
    "aggregate",
    "DEFAULT_WEIGHTS",
    "FeedbackError",
    "check_table",
    "format_table",
    "merge_table",
    "parse_table",
    "type_ok",
]

#: The default table. Positive types scale with how much effort the action shows; the two
#: negative ones outweigh a click, so one dislike after a few clicks reads as a "no"
#: (``window.py``: a negative event also cancels the pair's earlier events).
DEFAULT_WEIGHTS: dict[str, float] = {
    "view": 0.5,
    "click": 1.0,
    "like": 3.0,
    "purchase": 5.0,
    "dislike": -3.0,
    "hide": -5.0,
}

#: A type name: lower-case ASCII letters, digits, ``_`` and ``-``, 1-32 characters.
_TYPE = re.compile(r"[a-z][a-z0-9_-]{0,31}")
#: The most types a table may hold (the table travels in env vars and CR specs).
MAX_TYPES = 64


class FeedbackError(ValueError):
    """A malformed feedback table (a configuration error: exit 2, a 422 CR, naming it)."""


def type_ok(name: str) -> bool:
    """True for a well-formed type name (``_TYPE``)."""
    return bool(_TYPE.fullmatch(name))


def _check_weight(name: str, weight: object) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise FeedbackError(f"the weight of {name!r} must be a number, got {weight!r}")
    w = float(weight)
    if not math.isfinite(w) or w == 0.0 or abs(w) > MAX_WEIGHT:
        raise FeedbackError(f"the weight of {name!r} must be non-zero and in "
                            f"[-{show(MAX_WEIGHT)}, {show(MAX_WEIGHT)}], got {weight!r}")
    return w


def check_table(table: Mapping[str, object]) -> dict[str, float]:
    """Validate a ``{type: weight}`` table; return it with float weights.

    Raises ``FeedbackError`` naming the first bad type or weight.
    """
    if len(table) > MAX_TYPES:
        raise FeedbackError(f"at most {MAX_TYPES} feedback types, got {len(table)}")
    out: dict[str, float] = {}
    for name, weight in table.items():
        if not isinstance(name, str) or not type_ok(name):
            raise FeedbackError(f"feedback type {name!r} must match {_TYPE.pattern}")
        out[name] = _check_weight(name, weight)
    return out


def parse_table(text: str) -> dict[str, float]:
    """``"click=1,purchase=5,dislike=-3"`` (the env var and flag form) as a table.

    Blanks around names and numbers are ignored; an empty (or blank) string is an empty
    table. Raises ``FeedbackError`` for a malformed entry, an empty one (``click=1,,like=3``, a
    trailing comma: likely a lost entry), a repeated type or a bad weight.
    """
    out: dict[str, object] = {}
    if not text.strip():
        return {}
    for k, entry in enumerate(e.strip() for e in text.split(",")):
        if not entry:
            raise FeedbackError(f"entry {k + 1} is empty; expected type=weight,...")
        name, sep, raw = entry.partition("=")
        name, raw = name.strip(), raw.strip()
        if not sep or not name or not raw:
            raise FeedbackError(f"expected type=weight, got {entry!r}")
        if name in out:
            raise FeedbackError(f"feedback type {name!r} is given twice")
        if not raw.isascii() or "_" in raw:
            raise FeedbackError(f"the weight of {name!r} is not a number: {raw!r}")
        try:
            out[name] = float(raw)
        except ValueError:
            raise FeedbackError(f"the weight of {name!r} is not a number: {raw!r}") from None
    return check_table(out)


def merge_table(overrides: Mapping[str, float] | Iterable[tuple[str, float]]) -> dict[str, float]:
    """The defaults updated by ``overrides``: a configured table changes or adds types, and
    the defaults it does not name stay (so setting ``purchase=10`` alone keeps ``dislike``)."""
    return {**DEFAULT_WEIGHTS, **check_table(dict(overrides))}


def format_table(table: Mapping[str, float]) -> str:
    """The inverse of :func:`parse_table` (``repr`` floats, so it round-trips exactly)."""
    return ",".join(f"{name}={weight!r}" for name, weight in table.items())


def aggregate(
    items: npt.ArrayLike, weights: npt.ArrayLike
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    """The net weight of each distinct item, for events given oldest first, as the window
    aggregates repeated (user, item) pairs: the weights add up, except that a negative event
    cancels every earlier event of its item (a "no" after three clicks is a no; later events
    add to it again). Without negative weights this is a plain sum, in any order.

    Returns the sorted distinct items (intp) and their net weights (float64).
    """
    idx = np.asarray(items, dtype=np.intp).reshape(-1)
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if len(idx) != len(w):
        raise ValueError(f"{len(idx)} items but {len(w)} weights")
    if len(idx) < 2 or bool(np.all(idx[1:] > idx[:-1])):
        # Already distinct and sorted (an aggregated history, aggregated again by the fold-in):
        # each net weight is its one event's; np.unique's sort would give the same arrays.
        return idx, w
    unique, inverse = np.unique(idx, return_inverse=True)
    inverse = inverse.reshape(-1)
    negative = w < 0
    if negative.any():
        position = np.arange(len(idx))
        last = np.full(len(unique), -1, dtype=np.intp)
        np.maximum.at(last, inverse[negative], position[negative])
        keep = position >= last[inverse]
        inverse, w = inverse[keep], w[keep]
    summed = np.bincount(inverse, weights=w, minlength=len(unique))
    return unique, summed.astype(np.float64, copy=False)
