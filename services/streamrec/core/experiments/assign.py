"""Assignment: a user's arm from a salted hash, stateless and the same everywhere.

A user is in an experiment when ``h1 < traffic`` and then in the arm whose cumulative weight
share first exceeds ``h2``, where ``h1`` and ``h2`` are two independent uniform numbers in
[0, 1) drawn from BLAKE2b (RFC 7693) of the experiment's key (its ``salt``, default its name)
and the user id, with two different personalisations. Nothing is stored: every worker,
replica and shard computes the same arm for the same user, a restart changes nothing, and two
experiments (two keys) split users independently. Separate draws for "in" and "which arm"
keep a user's arm when the traffic share is raised (users already in stay in, in their arm).

This is Gorse's requested design (gorse#366) and the usual one (e.g. Kohavi, Tang & Xu,
*Trustworthy Online Controlled Experiments*, 2020, ch. 14: hash of user id and experiment).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

from .spec import Arm, Experiment

__all__ = ["Assignment", "arm_of", "assign", "unit"]

_SCALE = float(1 << 64)


def unit(key: str, user: str, purpose: bytes) -> float:
    """A uniform number in [0, 1) from (``key``, ``user``); ``purpose`` (at most 16 bytes)
    makes independent draws from the same pair."""
    digest = hashlib.blake2b(f"{key}\x00{user}".encode(), digest_size=8,
                             person=purpose).digest()
    return int.from_bytes(digest, "big") / _SCALE


def arm_of(experiment: Experiment, user: str) -> Arm | None:
    """The arm of ``user`` in ``experiment`` (None: outside its traffic share); ignores time."""
    if unit(experiment.key, user, b"streamrec-in") >= experiment.traffic:
        return None
    weights = [a.weight for a in experiment.arms]
    bounds = list(accumulate(weights))
    k = bisect_right(bounds, unit(experiment.key, user, b"streamrec-arm") * bounds[-1])
    return experiment.arms[min(k, len(experiment.arms) - 1)]


@dataclass(frozen=True)
class Assignment:
    """A user's arm in a running experiment."""

    experiment: Experiment
    arm: Arm

    @property
    def label(self) -> str:
        """``experiment.arm``: the suffix of recommendation ids, and the key of tallies."""
        return f"{self.experiment.name}.{self.arm.name}"


def assign(experiments: Sequence[Experiment], user: str, now: float,
           placement: str | None = None) -> Assignment | None:
    """The user's arm in the first running experiment that applies to a request asking
    ``placement`` (`Experiment.applies`) and whose traffic share takes them.

    Experiments that run at the same time are layered in order: a user taken by one is not
    offered to the next. Each draw is independent of the others', so the next experiment's
    arms stay balanced over the users it does get."""
    for experiment in experiments:
        if experiment.running(now) and experiment.applies(placement):
            arm = arm_of(experiment, user)
            if arm is not None:
                return Assignment(experiment, arm)
    return None
