"""The two interfaces between the services and their event log: Kafka or the embedded local log.

The trainer, the serving fold-in and `POST /interactions` only ever see these protocols, so the
embedded mode runs exactly the same code paths as the cluster. Offsets work like Kafka's: per
partition, the offset stored is the *next* one to read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable


class SourceMessage(NamedTuple):
    """One raw message as read from the log; parsing happens in core.events.

    A NamedTuple, not a frozen dataclass: one is built per consumed message, and a tuple costs
    a third of the time to construct (the Kafka ingest loop is bound by it)."""

    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: float | None = None  # seconds since the epoch (Kafka message timestamp)
    headers: tuple[tuple[str, bytes], ...] = ()


class SourceUnavailable(RuntimeError):
    """The log cannot be reached right now (broker down); callers retry, never crash."""


class EventSource(Protocol):
    """Reads messages from every partition of one topic from given offsets (no group commit)."""

    def partitions(self) -> list[int]: ...

    def seek(self, offsets: Mapping[int, int]) -> None:
        """Start each listed partition at its offset; others start at the beginning. Called
        again on a source that is reading, it moves the listed partitions and may leave a
        partition it already reads and that is not listed where it is."""

    def poll(self, max_messages: int, timeout: float) -> list[SourceMessage]: ...

    def positions(self) -> dict[int, int]:
        """Next offset to read per partition: what a snapshot stores to resume exactly."""

    def lag(self) -> int | None:
        """Messages behind the end of the log, summed over partitions; None if unknown."""

    def close(self) -> None: ...


@runtime_checkable
class Redacting(Protocol):
    """A sink whose log can be rewritten (the embedded log; Kafka's cannot): erasures redact
    the erased records in place, keeping every offset (``core/events/erasure.py``)."""

    def redact(self, topic: str, erased: Callable[[SourceMessage], bool]) -> int:
        """Replace every record of ``topic`` for which ``erased`` is true by a redaction
        marker; return how many were redacted."""
        ...


class EventSink(Protocol):
    """Appends messages to a topic (the interactions topic, the dead-letter topic, notify)."""

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None: ...

    def flush(self, timeout: float = 10.0) -> int:
        """Wait for delivery; return the number of messages still undelivered."""

    def produce_acknowledged(self, topic: str, messages: Sequence[tuple[bytes, bytes | None]],
                             timeout: float, partition: int | None = None) -> int:
        """Append (value, key) ``messages`` and wait until the log acknowledges each one or
        gives it up for good; return how many of *these* messages were not acknowledged.
        ``partition``: put them all on that partition, not the key's (an erasure meant for a
        serving group, ``core/groups.py``); a log with one partition takes only None or 0.

        The contract behind ``POST /interactions`` (docs/reliability.md, "Delivery"): a
        message counted here is never sent again by this sink. One that never reached the log
        is not written; only one the log received but did not acknowledge in time (Kafka: a
        broker that stalled or failed mid-request) may be written all the same.
        `SourceUnavailable` when the log refuses the messages at once.
        """
        ...

    def close(self) -> None: ...
