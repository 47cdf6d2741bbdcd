"""Domains: the accepted range of every number that enters streamrec from outside, in one place.

A value outside its domain is refused where it enters, with the usual error for that door
(a dead letter with the reason, a 400, exit code 2 naming the flag, a CRD schema rejection);
a value inside is used as given. docs/core.md ("Domains") explains each bound. The settings'
ranges are :class:`Range` values in their rows of the settings table (``streamrec.settings``),
from which the CLI help, docs/configuration.md, the CRD schema and the Helm values schema are
generated, so a bound is changed in one place.

The bounds are chosen so that the numeric core (confidence, fit, fold-in) stays finite for every
accepted input, with a wide margin (docs/core.md has the measured limits), and so that no single
accepted event can change anyone else's weights:

- a weight is at most :data:`MAX_WEIGHT`;
- a timestamp is seconds in ``[0, MAX_TS]`` (milliseconds are above it) and at most
  :data:`MAX_TS_AHEAD` seconds ahead of the message's arrival; a ts within that tolerance but
  ahead of arrival is recorded as the arrival time, so the window never holds the future and the
  decay reference (its newest timestamp) can only be "now";
- a cell's confidence ``1 + alpha * w`` is capped at :data:`MAX_CONFIDENCE` (counted, see
  ``training.py``): repeated events may sum past any per-event bound.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "MAX_CONFIDENCE",
    "MAX_TS",
    "MAX_TS_AHEAD",
    "MAX_WEIGHT",
    "Range",
    "arrival_times",
    "show",
    "signed_weight_ok",
    "weight_ok",
]

#: The largest weight of one event. Ratings, play counts and dwell seconds fit far below it;
#: 1e30 is a bug upstream, not a preference.
MAX_WEIGHT = 1e6

#: The largest timestamp, in seconds since the epoch (the year 2286). A timestamp in
#: milliseconds (1.7e12 today) is above it and refused, not taken as the far future.
MAX_TS = 1e10

#: Seconds a message's own ts may be ahead of its arrival (producer clock skew).
MAX_TS_AHEAD = 300.0

#: The cap of a cell's confidence ``1 + alpha * summed weight``, in the fit and the fold-in alike.
#: ALS stays finite far above it (docs/core.md); it only binds when many heavy events of one
#: (user, item) pair pile up in the window.
MAX_CONFIDENCE = 1e7


def show(bound: float) -> str:
    """A bound as people write it in docs and messages: ``1e6``, ``1e-6``, ``300``, ``0.05``."""
    mantissa, exponent, power = f"{bound:g}".partition("e")
    return f"{mantissa}e{int(power)}" if exponent else mantissa


def weight_ok(weight: float) -> bool:
    """True for a weight in the domain ``(0, MAX_WEIGHT]`` (NaN is not)."""
    return 0.0 < weight <= MAX_WEIGHT


def signed_weight_ok(weight: float) -> bool:
    """True for a resolved event weight: non-zero in ``[-MAX_WEIGHT, MAX_WEIGHT]`` (a negative
    one is negative feedback, ``feedback.py``; NaN is not)."""
    return 0.0 < abs(weight) <= MAX_WEIGHT


def ts_ok(ts: float) -> bool:
    """True for a timestamp in the domain ``[0, MAX_TS]`` seconds (NaN is not)."""
    return 0.0 <= ts <= MAX_TS


def arrival_times(transport: Sequence[float | None], now: float) -> list[float | None]:
    """The arrival time of each message: its transport (Kafka) timestamp, never later than
    ``now`` (the consumer's clock: a producer's clock far ahead must not carry events into the
    future) nor outside ``[0, MAX_TS]``; None where the transport had none."""
    return [None if t is None or not ts_ok(t) else min(t, now) for t in transport]


@dataclass(frozen=True)
class Range:
    """The domain of one numeric setting: ``low``..``high`` (inclusive unless ``open_low``)."""

    low: float
    high: float
    open_low: bool = False
    integer: bool = False

    def contains(self, value: float) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        above = value > self.low if self.open_low else value >= self.low
        return above and value <= self.high

    def text(self) -> str:
        """``[1, 1024]`` or ``(0, 1e6]``, as the docs and error messages write it."""
        return f"{'(' if self.open_low else '['}{show(self.low)}, {show(self.high)}]"
