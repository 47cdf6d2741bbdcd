"""The interaction event and the error raised for a message that cannot become one.

An event is one implicit-feedback interaction: who (``user``), what (``item``), how strongly
(``weight``) and when (``ts``, seconds since the epoch). Everything downstream (window, model,
snapshots) speaks only this type, so the wire formats stay in the codec.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..domains import MAX_TS, MAX_TS_AHEAD, MAX_WEIGHT, show

__all__ = ["MAX_EVENT_BYTES", "MAX_EVENT_ID_BYTES", "MAX_ID_BYTES", "REASONS", "Event",
           "InvalidEvent"]

#: Messages larger than this are rejected as ``too_large`` before any decoding or parsing, so a
#: hostile producer cannot make a consumer spend time or memory on a huge value.
MAX_EVENT_BYTES = 64 * 1024

#: Ids are at most this many bytes of UTF-8; they end up as dictionary keys and in snapshots.
MAX_ID_BYTES = 256

#: A client's ``event_id`` is at most this many bytes of UTF-8: the trainer and every replica
#: keep one per event of the window (``eventids.py``), so it is kept shorter than an id.
MAX_EVENT_ID_BYTES = 128

#: Every ``InvalidEvent.reason``, with what it means. Dead-letter headers and metrics use the code.
REASONS: dict[str, str] = {
    "empty": "the message is empty or only whitespace",
    "malformed": "wrong shape: not user:item[:weight], not a JSON object, or a missing field",
    "bad_json": "the message starts like JSON but does not parse",
    "duplicate_key": "a JSON object gives one key twice (which one counts would be a guess)",
    "ambiguous_field": "a JSON event gives a field and its alias (ts and timestamp, weight and "
                       "rating)",
    "bad_encoding": "the message is not valid UTF-8",
    "bad_id": "an id is empty or not a string or an integer (an event_id: not a string)",
    "id_too_long": f"an id is longer than {MAX_ID_BYTES} bytes of UTF-8 (an event_id: "
                   f"{MAX_EVENT_ID_BYTES})",
    "control_char": "the message or an id contains a control character",
    "bad_weight": f"the weight is not a number in (0, {show(MAX_WEIGHT)}] (text, or with a "
                  f"type), or not non-zero in [-{show(MAX_WEIGHT)}, {show(MAX_WEIGHT)}] (JSON "
                  "without a type), or type weight x weight is beyond that",
    "bad_type": "the feedback type is not a string",
    "unknown_type": "the feedback type is not in the configured table (feedback_weights)",
    "control_record": "an erasure or redaction record where an event was expected",
    "bad_control": "a control record (an 'erase' key) that is not a valid erasure",
    "bad_timestamp": f"the timestamp is not a number of seconds in [0, {show(MAX_TS)}]",
    "future_timestamp": f"the timestamp is more than {show(MAX_TS_AHEAD)} s after the message "
                        "arrived",
    "too_large": f"the message is larger than {MAX_EVENT_BYTES} bytes",
}


@dataclass(frozen=True, slots=True)
class Event:
    """One interaction: ``user`` interacted with ``item``.

    Parameters
    ----------
    user, item : str
        Opaque ids, 1-256 bytes of UTF-8 without control characters (checked by the parsers,
        not here: constructing an event must stay cheap on the batch path).
    weight : float
        Strength of the interaction, non-zero in [-1e6, 1e6] (``domains.MAX_WEIGHT``), after
        the feedback type's weight was applied (``feedback.py``). Negative: negative feedback.
        Repeated (user, item) pairs add up, except that a negative event cancels the pair's
        earlier ones (``window.py``).
    ts : float or None
        Seconds since the epoch, in [0, 1e10] and never after the arrival time; ``None`` when
        neither the message nor its transport had one.
    recommendation_id : str or None
        The ``recommendation_id`` of the served list this interaction came from, when the app
        echoes it back (online evaluation, ``serving/online/tracker.py``). Never used for training.
    event_id : str or None
        The client's id of this event, 1-128 bytes of UTF-8 (JSON only): an event whose
        ``event_id`` is already in the window is a retry and is dropped, by the trainer and
        by fold-in alike (``eventids.py``), so resending after an error is always safe.
    """

    user: str
    item: str
    weight: float = 1.0
    ts: float | None = None
    recommendation_id: str | None = None
    event_id: str | None = None


class InvalidEvent(ValueError):
    """A message that cannot be turned into an :class:`Event`.

    ``reason`` is a short stable code (see :data:`REASONS`) for counters and dead-letter
    headers; ``detail`` says what exactly was wrong, for a human.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason = reason
        self.detail = detail

    def __str__(self) -> str:
        return f"invalid event ({self.reason}): {self.detail}"

    def __eq__(self, other: object) -> bool:
        # Two rejections are the same when they say the same thing; the batch parser's tests
        # compare its rejections with the single-message parser's.
        if not isinstance(other, InvalidEvent):
            return NotImplemented
        return (self.reason, self.detail) == (other.reason, other.detail)

    def __hash__(self) -> int:
        return hash((self.reason, self.detail))
