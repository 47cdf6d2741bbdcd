"""The lifecycle shared by a worker's background consumers (fold-in, the items follower).

Each owns one `EventSource`, polled by one daemon thread of its own (started after the fork,
never before: librdkafka threads do not survive a fork). A subclass gives ``step`` (one poll)
and may override ``_idle_or_step`` to do more around it; ``stop`` ends the thread and closes
the source.
"""

from __future__ import annotations

import logging
import threading

from streamrec.adapters.source import EventSource, SourceUnavailable

log = logging.getLogger(__name__)

POLL_MAX = 500  # messages taken in one poll
POLL_TIMEOUT = 0.05  # seconds: the longest wait for a first message (how often `stop` is checked)
RETRY_WAIT = 1.0  # seconds waited after a failed step


class BackgroundConsumer:
    """A daemon thread calling ``step`` until ``stop``; nothing before ``source`` or a pending
    seek exists. A failed step is logged and waited out (``RETRY_WAIT``), never the end of the
    thread: an unreachable log (`SourceUnavailable`) as a warning, anything else with its
    traceback."""

    #: The thread's name and the word the logs use for this consumer.
    name = "consumer"

    def __init__(self) -> None:
        self.source: EventSource | None = None
        self._pending: dict[int, int] | None = None  # offsets to seek to next
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def step(self) -> int:
        """One poll; returns how many messages it read."""
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._idle_or_step()

    def _idle_or_step(self) -> None:
        if self.source is None and self._pending is None:
            self._stop.wait(POLL_TIMEOUT)
            return
        self._guarded_step()

    def _guarded_step(self) -> None:
        try:
            self.step()
        except SourceUnavailable as e:
            log.warning("%s source unavailable: %s", self.name, e)
            self._stop.wait(RETRY_WAIT)
        except Exception:  # keep consuming after a bug in one batch
            log.exception("%s step failed", self.name)
            self._stop.wait(RETRY_WAIT)

    def stop(self, timeout: float = 5.0) -> None:
        """Seconds ``timeout``: how long to wait for the thread before closing the source."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self.source is not None:
            self.source.close()
