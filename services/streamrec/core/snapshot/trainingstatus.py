"""The trainer's report on its fits, kept in the snapshot store next to ``LATEST``.

A failed fit publishes no snapshot, so nothing in the snapshots says that the model has stopped
improving. The trainer therefore writes this small JSON object (``<prefix>/TRAINING``) after
every fit attempt; serving shows it in ``GET /model`` and the operator turns it into the
``Training`` condition of the RecommenderService. It is a report, never an input to the model:
a missing or unreadable one only means "nothing reported".
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from typing import Any

__all__ = ["MAX_MESSAGE", "TRAINING_NAME", "TrainingStatus"]

#: The object's name next to ``LATEST``.
TRAINING_NAME = "TRAINING"
#: Characters of an error message kept (a traceback does not belong in a status).
MAX_MESSAGE = 500
_MAX_BYTES = 4096


@dataclass(frozen=True)
class TrainingStatus:
    """The outcome of the trainer's fits so far.

    Attributes
    ----------
    ok : bool
        The last fit attempt published a snapshot.
    failures : int
        Failed attempts since the last success (0 when ``ok``).
    failures_total : int
        Failed attempts over the trainer's runs (a restarted trainer continues the stored
        report).
    reason, message : str or None
        The last failure's reason code (``FitFailed.reason``, or ``error``) and text; kept
        after a success so that the last error stays visible.
    last_attempt_at, last_success_at, last_failure_at : float or None
        Unix seconds.
    version : str or None
        The last snapshot published.
    recovered_from : str or None
        Set when the last published fit is the safe-cap retry of a failed first attempt.
    """

    ok: bool = True
    failures: int = 0
    failures_total: int = 0
    reason: str | None = None
    message: str | None = None
    last_attempt_at: float | None = None
    last_success_at: float | None = None
    last_failure_at: float | None = None
    version: str | None = None
    recovered_from: str | None = None

    def failed(self, reason: str, message: str, now: float) -> TrainingStatus:
        return replace(self, ok=False, failures=self.failures + 1,
                       failures_total=self.failures_total + 1, reason=reason,
                       message=message[:MAX_MESSAGE], last_attempt_at=now, last_failure_at=now)

    def succeeded(self, version: str, now: float, recovered_from: str | None) -> TrainingStatus:
        return replace(self, ok=True, failures=0, last_attempt_at=now, last_success_at=now,
                       version=version,
                       recovered_from=None if recovered_from is None
                       else recovered_from[:MAX_MESSAGE])

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes) -> TrainingStatus:
        """Parse a report; ``ValueError`` for anything that is not one (never trusted blindly:
        a store is shared, and this text ends up in a status and an HTTP answer)."""
        if len(raw) > _MAX_BYTES:
            raise ValueError(f"training status is {len(raw)} bytes; at most {_MAX_BYTES}")
        obj = json.loads(raw.decode("utf-8"))
        if not isinstance(obj, dict):
            raise ValueError("training status is not a JSON object")
        out: dict[str, Any] = {}
        for name, default in asdict(cls()).items():
            value = obj.get(name, default)
            if name == "ok":
                ok = isinstance(value, bool)
            elif name.startswith("failures"):
                ok = type(value) is int and value >= 0
            elif name.endswith("_at"):
                ok = value is None or (isinstance(value, (int, float))
                                       and not isinstance(value, bool) and math.isfinite(value))
            else:
                ok = value is None or (isinstance(value, str) and len(value) <= MAX_MESSAGE)
            if not ok:
                raise ValueError(f"training status field {name!r} is invalid: {value!r:.60}")
            out[name] = value
        return cls(**out)
