"""Repeated log lines, rate-limited: the first one passes, then one summary per interval.

With the broker down, every librdkafka client of every worker reports each reconnect attempt
(``Connect to ... failed``, ``1/1 brokers are down``), and the consumers log each failed poll:
thousands of lines a minute that say one thing. `RepeatFilter` is a standard `logging.Filter`
on a handler. It looks only at the records of the loggers it is given (`BROKER_LOGGERS`: the
Kafka adapter and the background consumers; every other record passes untouched, so "serving
snapshot 000000000004" is never taken for "serving snapshot 000000000003"). Of those, a record
whose *shape* (logger, level, and its message with digits blanked, so "after 0ms" and "after
3ms" are one shape) was let through less than ``interval`` seconds ago is dropped and counted;
the next one after the interval passes with the count appended, e.g. ``... (312 more like
this in the last 30 s)``. A different message (the broker back, an
error of another kind) is a different shape and passes at once. The shapes remembered are
bounded (least recently passed forgotten first).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

__all__ = ["BROKER_LOGGERS", "INTERVAL_S", "RepeatFilter", "install"]

#: Seconds between two lines of one shape (the summary's period).
INTERVAL_S = 30.0
#: Shapes remembered at most.
MAX_SHAPES = 1000
#: The loggers (and their children) whose repeats are rate-limited by default.
BROKER_LOGGERS = ("streamrec.adapters.kafka", "streamrec.serving.feeds.consumer",
                  "streamrec.serving.groups.forward")  # a serving group down: every request

_DIGITS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Let the first record of each shape through, then one per ``interval`` seconds with the
    number dropped in between; see the module.

    Parameters
    ----------
    interval : float
        Seconds, > 0.
    loggers : tuple of str
        Logger names whose records (theirs and their children's) are rate-limited; the rest
        always pass.
    clock : callable, optional
        Monotonic seconds (tests pass their own).
    max_shapes : int
        Shapes remembered; the least recently passed one is forgotten past this.
    """

    def __init__(self, interval: float = INTERVAL_S,
                 clock: Callable[[], float] = time.monotonic,
                 max_shapes: int = MAX_SHAPES,
                 loggers: tuple[str, ...] = BROKER_LOGGERS) -> None:
        super().__init__()
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self.interval, self.clock, self.max_shapes = interval, clock, max_shapes
        self.loggers = loggers
        # shape -> (when it last passed, records dropped since)
        self._shapes: OrderedDict[tuple[str, int, str], tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if not any(record.name == n or record.name.startswith(n + ".") for n in self.loggers):
            return True
        message = record.getMessage()
        shape = (record.name, record.levelno, _DIGITS.sub("#", message))
        now = self.clock()
        with self._lock:
            seen = self._shapes.get(shape)
            if seen is not None and now - seen[0] < self.interval:
                self._shapes[shape] = (seen[0], seen[1] + 1)
                self.dropped += 1
                return False
            self._shapes[shape] = (now, 0)
            self._shapes.move_to_end(shape)
            while len(self._shapes) > self.max_shapes:
                self._shapes.popitem(last=False)
        if seen is not None and seen[1]:
            # The formatted text, once: the handler formats msg % args, so the args go.
            record.msg = (f"{message} ({seen[1]} more like this in the last "
                          f"{now - seen[0]:.0f} s)")
            record.args = None
        return True


def install(interval: float = INTERVAL_S) -> RepeatFilter:
    """Put one `RepeatFilter` on every handler of the root logger; return it."""
    flt = RepeatFilter(interval)
    for handler in logging.getLogger().handlers:
        handler.addFilter(flt)
    return flt
