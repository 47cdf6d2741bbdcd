"""Batch parsing: many Kafka values to events, fast, with the single-message semantics.

The consumer hands over a poll's worth of values at a time. Parsing them one by one costs a
decode, a strip and several regex scans each; here the checks that are almost always clean
(encoding, control characters, sizes, stray newlines) run once over the joined batch in C, and
the per-message loop only splits and looks up. Anything that looks unusual in the slightest is
handed to :func:`streamrec.core.events.codec.parse_bytes`, so the result is by construction the same
as parsing each value alone (a property the tests check with hypothesis).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .codec import BLANKS_BYTES, SAFE_ID_CHARS, Weights, check_format, parse_record, text_weight
from .erasure import Erasure
from .event import MAX_EVENT_BYTES, MAX_ID_BYTES, Event, InvalidEvent

__all__ = ["ParsedBatch", "parse_batch"]

# C0 controls and DEL except the newline that joins the batch (checked on the bytes), and the
# C1 controls (checked on the decoded text, where they are single characters).
_CONTROL_BUT_NEWLINE = re.compile(rb"[\x00-\x09\x0b-\x1f\x7f]")
_C1_CONTROL = re.compile("[\x80-\x9f]")


@dataclass(slots=True)
class ParsedBatch:
    """The outcome of :func:`parse_batch`; every input index is in exactly one of the three.

    Attributes
    ----------
    events : list of Event
        Accepted events, in input order.
    positions : list of int
        ``positions[k]`` is the input index of ``events[k]``.
    rejected : list of (int, InvalidEvent)
        Input index and reason for each invalid value, in input order.
    filtered : int
        Valid events dropped because their (positive) weight was below ``min_weight``.
    erasures : list of (int, Erasure)
        Input index and erasure of each control record (``erasure.py``), in input order.
    redacted : list of int
        Input indices of records the embedded log redacted for an erasure: skipped, no error.
    """

    events: list[Event] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)
    rejected: list[tuple[int, InvalidEvent]] = field(default_factory=list)
    filtered: int = 0
    erasures: list[tuple[int, Erasure]] = field(default_factory=list)
    redacted: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        """Number of inputs accounted for."""
        return (len(self.events) + len(self.rejected) + self.filtered + len(self.erasures)
                + len(self.redacted))


class _Batch:
    """Accumulates one :class:`ParsedBatch`; ``one`` is the careful path for a single value."""

    def __init__(
        self,
        values: Sequence[bytes],
        fmt: str,
        min_weight: float,
        default_ts: Sequence[float | None] | float | None,
        weights: Weights | None = None,
    ) -> None:
        self.values, self.fmt, self.min_weight = values, fmt, min_weight
        self.weights = weights
        self.ts_each: Sequence[float | None] | None
        self.ts_all: float | None
        if default_ts is None or isinstance(default_ts, (int, float)):
            self.ts_each, self.ts_all = None, default_ts
        else:
            self.ts_each, self.ts_all = default_ts, None
        self.out = ParsedBatch()

    def ts(self, index: int) -> float | None:
        return self.ts_all if self.ts_each is None else self.ts_each[index]

    def one(self, index: int) -> None:
        value = self.values[index]
        try:
            if value is None:
                raise InvalidEvent("empty", "message has no value")
            event = parse_record(bytes(value), self.fmt, self.ts(index), self.weights)
        except InvalidEvent as exc:
            self.out.rejected.append((index, exc))
            return
        if event is None:
            self.out.redacted.append(index)
        elif isinstance(event, Erasure):
            self.out.erasures.append((index, event))
        elif 0.0 < event.weight < self.min_weight:  # negative feedback is never filtered
            self.out.filtered += 1
        else:
            self.out.events.append(event)
            self.out.positions.append(index)

    def text(self, indices: Sequence[int], blob: bytes) -> None:
        """Parse the text values at ``indices``, joined by newlines into ``blob``."""
        if (
            blob.count(b"\n") != len(indices) - 1
            or max(map(len, map(self.values.__getitem__, indices))) > MAX_EVENT_BYTES
            or _CONTROL_BUT_NEWLINE.search(blob)
        ):
            for index in indices:
                self.one(index)
            return
        ascii_only = blob.isascii()
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if not text or (not ascii_only and _C1_CONTROL.search(text)):
            for index in indices:
                self.one(index)
            return
        self._text_lines(indices, text.split("\n"), ascii_only, b" " in blob)

    def _text_lines(
        self, indices: Sequence[int], lines: list[str], ascii_only: bool, has_space: bool
    ) -> None:
        # Longer ids may still be valid; the careful path measures their UTF-8 size.
        limit = MAX_ID_BYTES if ascii_only else SAFE_ID_CHARS
        events, positions = self.out.events, self.out.positions
        min_weight, ts_each, ts_all = self.min_weight, self.ts_each, self.ts_all
        # Few distinct weight strings recur ("1", "4.5"): parse each once per batch.
        weights: dict[str, float | None] = {}
        filtered = 0
        for k, line in enumerate(lines):
            parts = line.split(":")
            if len(parts) == 2:
                user, item = parts
                weight: float | None = 1.0
            elif len(parts) == 3:
                user, item, raw_weight = parts
                weight = weights.get(raw_weight, -1.0)
                if weight == -1.0:
                    weight = weights[raw_weight] = text_weight(raw_weight)
            else:
                weight = None
            if (
                weight is None
                or not user
                or not item
                or len(user) > limit
                or len(item) > limit
                or (has_space and (line[0] == " " or line[-1] == " "))
                # a whitespace-only id (" " or, in non-ASCII text, say U+3000): codec refuses it
                or ((has_space or not ascii_only) and (user.isspace() or item.isspace()))
            ):
                self.one(indices[k])
                continue
            if weight < min_weight:
                filtered += 1
                continue
            index = indices[k]
            events.append(Event(user, item, weight, ts_all if ts_each is None else ts_each[index]))
            positions.append(index)
        self.out.filtered += filtered


def _merge(first: ParsedBatch, second: ParsedBatch) -> ParsedBatch:
    # Both halves are in input order; keep the result in input order too.
    pairs = heapq.merge(
        zip(first.positions, first.events, strict=True),
        zip(second.positions, second.events, strict=True),
        key=lambda pair: pair[0],
    )
    merged = ParsedBatch(filtered=first.filtered + second.filtered,
                         redacted=sorted(first.redacted + second.redacted))
    merged.erasures = list(heapq.merge(first.erasures, second.erasures, key=lambda r: r[0]))
    for position, event in pairs:
        merged.positions.append(position)
        merged.events.append(event)
    merged.rejected = list(heapq.merge(first.rejected, second.rejected, key=lambda r: r[0]))
    return merged


def parse_batch(
    values: Sequence[bytes],
    fmt: str = "auto",
    min_weight: float | None = None,
    default_ts: Sequence[float | None] | float | None = None,
    weights: Weights | None = None,
) -> ParsedBatch:
    """Parse a batch of values; never raises for bad data.

    Parameters
    ----------
    values : sequence of bytes
        Kafka values in offset order (``None`` tombstones are rejected as ``empty``).
    fmt : {"auto", "text", "json"}
        As for :func:`streamrec.core.events.codec.parse_event`.
    min_weight : float, optional
        Valid events with a smaller weight are counted in ``filtered`` and dropped.
    default_ts : float or sequence of float, optional
        The timestamp for events that carry none: one for all, or one per value.
    weights : mapping of str to float, optional
        The feedback table (``feedback.py``); default ``feedback.DEFAULT_WEIGHTS``.

    Returns
    -------
    ParsedBatch
    """
    check_format(fmt)
    if (
        default_ts is not None
        and not isinstance(default_ts, (int, float))
        and len(default_ts) != len(values)
    ):
        raise ValueError(f"{len(default_ts)} default timestamps for {len(values)} values")
    batch = _Batch(values, fmt, 0.0 if min_weight is None else min_weight, default_ts, weights)
    if not values:
        return batch.out
    try:
        blob = b"\n".join(values)
    except TypeError:  # a tombstone or a str among the values: take the careful path
        blob = None
    if blob is None or fmt == "json":
        for index in range(len(values)):
            batch.one(index)
        return batch.out
    if fmt == "text" or b"{" not in blob:
        batch.text(range(len(values)), blob)
        return batch.out
    # Mixed formats: JSON values go the careful way, the text ones still share a fast pass.
    text_at = [i for i, v in enumerate(values) if v.lstrip(BLANKS_BYTES)[:1] != b"{"]
    is_text = set(text_at)
    for index in range(len(values)):
        if index not in is_text:
            batch.one(index)
    if not text_at:
        return batch.out
    text_batch = _Batch(values, fmt, batch.min_weight, default_ts, weights)
    text_batch.text(text_at, b"\n".join(values[i] for i in text_at))
    return _merge(batch.out, text_batch.out)
