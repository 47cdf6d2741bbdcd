"""A poll's messages split into events, dead letters and filtered."""

from __future__ import annotations

from streamrec.adapters.source import SourceMessage
from streamrec.core.events import Event
from streamrec.trainer.ingest import dead_letter_headers, ingest


def _msgs(*values: bytes | None) -> list[SourceMessage]:
    return [SourceMessage(partition=1, offset=10 + k, value=v, timestamp=100.0 + k)
            for k, v in enumerate(values)]


def test_every_message_is_an_event_a_dead_letter_or_filtered():
    msgs = _msgs(b"u1:i1", b"garbage", b'{"user": "u2", "item": "i2", "rating": 1}',
                 None, b"u3:i3:5")
    out = ingest(msgs, min_weight=2.0)
    assert out.events == [Event("u3", "i3", 5.0, 104.0)]
    assert [(m.offset, e.reason) for m, e in out.dead] == [(11, "malformed"), (13, "empty")]
    assert out.filtered == 2
    assert len(out.events) + len(out.dead) + out.filtered == len(msgs)


def test_kafka_timestamp_is_the_default_ts_and_the_message_ts_wins():
    out = ingest(_msgs(b"u:i", b'{"user": "u", "item": "j", "ts": 5}'))
    assert [e.ts for e in out.events] == [100.0, 5.0]


def test_dead_letter_headers_say_why_and_where():
    msgs = _msgs(b"a:b:c:d:e")  # five fields: no text form has that many
    (msg, err), = ingest(msgs).dead
    headers = dict(dead_letter_headers(msg, err))
    assert headers["source-offset"] == b"1:10"
    assert headers["error"].startswith(b"malformed: ")
