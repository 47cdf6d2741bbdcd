"""From a poll's raw messages to window events and dead letters; pure, no I/O.

The trainer hands each polled batch here. Every message ends up in exactly one of three
places: an event for the window, a dead letter (with the headers that tell an operator why and
where it came from), or the ``filtered`` count (valid, but below ``min_weight``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from streamrec.adapters.source import SourceMessage
from streamrec.core.catalog.records import InvalidItem, ItemRecord, parse_record_bytes
from streamrec.core.domains import arrival_times
from streamrec.core.events import Event, InvalidEvent, parse_batch
from streamrec.core.events.erasure import Erasure
from streamrec.core.events.partitioning import UserPartitions

__all__ = ["Ingested", "dead_letter_headers", "ingest", "ingest_items"]


@dataclass(slots=True)
class Ingested:
    """One batch, split: ``events`` in offset order, ``dead`` letters, ``filtered`` count, and
    the control records: ``erasures`` (``core/events/erasure.py``) and how many were
    ``redacted``; ``misrouted``: the (message, user) of each event read from a partition its
    user does not hash to (``core/events/partitioning.py``), kept in ``events`` too."""

    events: list[Event] = field(default_factory=list)
    dead: list[tuple[SourceMessage, InvalidEvent]] = field(default_factory=list)
    filtered: int = 0
    erasures: list[Erasure] = field(default_factory=list)
    redacted: int = 0
    misrouted: list[tuple[SourceMessage, str]] = field(default_factory=list)


def ingest(messages: Sequence[SourceMessage], fmt: str = "auto",
           min_weight: float | None = None, now: float | None = None,
           weights: Mapping[str, float] | None = None,
           partitions: UserPartitions | None = None) -> Ingested:
    """Parse ``messages``; the arrival time (the Kafka timestamp, never after ``now``, the
    consumer's clock in unix seconds) is the default ``ts`` of each event and the bound of
    its own (see `streamrec.core.domains`). ``weights`` is the feedback table;
    ``partitions`` the topic's partitioning, against which each event's partition is
    checked (None or one partition: no check)."""
    values: list[bytes] = [m.value for m in messages]  # type: ignore[misc]  # None: tombstone
    arrivals = arrival_times([m.timestamp for m in messages],
                             time.time() if now is None else now)
    parsed = parse_batch(values, fmt=fmt, min_weight=min_weight, default_ts=arrivals,
                         weights=weights)
    wrong: list[int] = []
    if partitions is not None and partitions.partitions > 1:
        arrived = [messages[i].partition for i in parsed.positions]
        wrong = partitions.misrouted([e.user for e in parsed.events], arrived)
    return Ingested(
        events=parsed.events,
        misrouted=[(messages[parsed.positions[k]], parsed.events[k].user) for k in wrong],
        dead=[(messages[i], err) for i, err in parsed.rejected],
        filtered=parsed.filtered,
        erasures=[e for _, e in parsed.erasures],
        redacted=len(parsed.redacted),
    )


def ingest_items(messages: Sequence[SourceMessage]
                 ) -> tuple[list[ItemRecord], list[tuple[SourceMessage, InvalidItem]]]:
    """Parse item records (``core.catalog``) from the items topic: records in offset order,
    and dead letters for the malformed ones."""
    records: list[ItemRecord] = []
    dead: list[tuple[SourceMessage, InvalidItem]] = []
    for m in messages:
        try:
            records.append(parse_record_bytes(m.value))
        except InvalidItem as e:
            dead.append((m, e))
    return records, dead


def dead_letter_headers(msg: SourceMessage, err: InvalidEvent,
                        topic: str | None = None) -> list[tuple[str, bytes]]:
    """``error`` (``reason: detail``) and ``source-offset`` (``partition:offset``) headers,
    and ``source-topic`` when given (the items topic shares the dead-letter topic)."""
    headers = [
        ("error", f"{err.reason}: {err.detail}".encode()),
        ("source-offset", f"{msg.partition}:{msg.offset}".encode()),
    ]
    if topic is not None:
        headers.append(("source-topic", topic.encode()))
    return headers
