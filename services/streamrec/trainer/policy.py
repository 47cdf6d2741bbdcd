"""When to retrain: after N new events or T seconds with new events, one fit at a time.

The trainer's loop asks :meth:`RetrainPolicy.should_start` after every poll. The policy keeps
no thread and does no I/O (the clock is injected), so every rule is unit-tested without
sleeping:

- a retrain is *due* when ``every`` new events have arrived since the last fit started, or when
  ``interval`` seconds have passed since then and at least one new event arrived;
- at most one fit runs at a time; a retrain that falls due while one runs is not dropped, it
  starts as soon as that fit finishes (the events are still pending);
- the count-triggered retrains that piled up during a fit are merged into that one next fit and
  counted in :attr:`coalesced`, so a dashboard can see the trainer falling behind;
- a fit that failed gives its events back, so the next attempt includes them (after a pause
  the caller chooses, so a persistent failure does not spin).
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["RetrainPolicy", "backoff"]


class RetrainPolicy:
    """The retrain schedule; see the module docstring.

    Parameters
    ----------
    every : int
        Retrain after this many new events (>= 1).
    interval : float
        Or after this many seconds, if there is at least one new event (> 0).
    clock : callable, optional
        Monotonic seconds; ``time.monotonic`` unless a test injects one.
    """

    def __init__(self, every: int, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if not interval > 0:
            raise ValueError(f"interval must be > 0, got {interval}")
        self.every = every
        self.interval = interval
        self._clock = clock
        self.pending = 0  # new events since the running (or last) fit took its copy
        self.fitting = False
        self.started = 0  # fits started
        self.coalesced = 0  # count-triggered retrains merged into a later fit
        self._taken = 0  # events the running fit took
        self._since = clock()  # when the last fit started (or the policy was made)
        self._hold_until = float("-inf")  # after a failure, no new fit before this time
        self.urgent = False  # an erasure: retrain now, whatever the count or interval
        self._took_urgent = False

    def on_events(self, count: int) -> None:
        """Record ``count`` new events added to the window."""
        if count < 0:
            raise ValueError(f"count must be >= 0, got {count}")
        self.pending += count

    def hurry(self) -> None:
        """Make a retrain due at once (an erasure: the next snapshot must leave the user out,
        and it bounds how long older snapshots keep them, docs/feedback.md)."""
        self.urgent = True

    def due(self) -> bool:
        """A retrain is owed (whether or not a fit is running now)."""
        if self.urgent or self.pending >= self.every:
            return True
        return self.pending > 0 and self._clock() - self._since >= self.interval

    def seconds_until_due(self) -> float | None:
        """Seconds until a fit may start (0: now); None with no new events. While a fit runs
        this is about the next one, so a caller must not spin on it (see `should_start`)."""
        if self.due():
            return max(0.0, self._hold_until - self._clock())
        if self.pending == 0:
            return None
        return max(0.0, self.interval - (self._clock() - self._since))

    def should_start(self) -> bool:
        """True when a fit should start now: one is due and none is running."""
        return not self.fitting and self.due() and self._clock() >= self._hold_until

    def start(self) -> int:
        """A fit takes its copy of the window now; returns the number of new events it covers."""
        if self.fitting:
            raise RuntimeError("a fit is already running")
        triggers = self.pending // self.every
        if triggers > 1:
            self.coalesced += triggers - 1
        self._taken, self.pending = self.pending, 0
        self._took_urgent, self.urgent = self.urgent, False
        self._since = self._clock()
        self.fitting = True
        self.started += 1
        return self._taken

    def finish(self, ok: bool = True, retry_after: float = 0.0) -> None:
        """The running fit ended. A failed one gives its events back, to be retried no sooner
        than ``retry_after`` seconds from now."""
        if not self.fitting:
            raise RuntimeError("no fit is running")
        if not ok:
            self.pending += self._taken
            self.urgent = self.urgent or self._took_urgent
            self._hold_until = self._clock() + retry_after
        self._taken = 0
        self.fitting = False


def backoff(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): base·2^attempt, capped."""
    return min(cap, base * 2.0 ** min(attempt, 32))
