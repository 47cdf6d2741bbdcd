"""Event parsing: the formats, every rejection code, and batch == one-by-one."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from streamrec.core.domains import MAX_TS, MAX_WEIGHT
from streamrec.core.events import (
    MAX_EVENT_BYTES,
    REASONS,
    Event,
    InvalidEvent,
    parse_batch,
    parse_event,
    parse_json_value,
    serialize_event,
    validate_event,
)


def test_text_user_item_has_weight_one():
    assert parse_event(b"alice:book-1") == Event("alice", "book-1", 1.0, None)


def test_text_user_item_weight():
    assert parse_event(b"alice:book-1:2.5") == Event("alice", "book-1", 2.5)


def test_str_input_is_accepted_like_bytes():
    assert parse_event("bob:x:3") == parse_event(b"bob:x:3")


def test_surrounding_blanks_are_ignored_but_fields_are_verbatim():
    assert parse_event(b" \tu :i\r\n") == Event("u ", "i")


def test_json_event_with_all_fields():
    raw = b'{"user": "u1", "item": "i1", "weight": 2.0, "ts": 1700000000.5}'
    assert parse_event(raw) == Event("u1", "i1", 2.0, 1700000000.5)


def test_json_aliases_rating_and_timestamp():
    raw = b'{"user": "u1", "item": "i1", "rating": 4, "timestamp": 978300760}'
    assert parse_event(raw) == Event("u1", "i1", 4.0, 978300760.0)


@pytest.mark.parametrize("fields", [
    '"weight": 2, "rating": 5', '"ts": 1, "timestamp": 9', '"rating": 5, "weight": 2',
    '"timestamp": 9, "ts": 1', '"weight": 2, "rating": 2',  # equal values: still one too many
    '"ts": null, "timestamp": 9', '"weight": 2, "rating": 5, "ts": 1, "timestamp": 9',
])
def test_a_field_given_with_its_alias_is_refused_not_silently_resolved(fields):
    with pytest.raises(InvalidEvent) as e:
        parse_event(f'{{"user": "u", "item": "i", {fields}}}'.encode())
    assert e.value.reason == "ambiguous_field"


@pytest.mark.parametrize("raw", [
    b'{"user": "a", "user": "b", "item": "i"}', b'{"user": "u", "item": "i", "item": "i"}',
    b'{"user": "u", "item": "i", "weight": 1, "weight": 2}',
    b'{"erase": "user", "id": "u", "id": "v", "at": 1}',
])
def test_a_json_key_given_twice_is_a_dead_letter_naming_it(raw):
    with pytest.raises(InvalidEvent) as e:
        parse_event(raw)
    assert e.value.reason == "duplicate_key"
    assert "given more than once" in e.value.detail


def test_a_recommendation_id_comes_back_in_json_and_in_the_four_field_text_form():
    raw = b'{"user": "u", "item": "i", "recommendation_id": "ab12-7f"}'
    assert parse_event(raw) == Event("u", "i", 1.0, None, "ab12-7f")
    assert parse_event(b"u:i:2.5:ab12-7f") == Event("u", "i", 2.5, None, "ab12-7f")
    assert parse_event(b"u:i::ab12-7f") == Event("u", "i", 1.0, None, "ab12-7f")  # weight 1
    assert parse_event(b'{"user": "u", "item": "i", "recommendation_id": null}') == Event("u", "i")
    with pytest.raises(InvalidEvent) as err:
        parse_event(b'{"user": "u", "item": "i", "recommendation_id": ["x"]}')
    assert err.value.reason == "bad_id"


def test_events_with_a_recommendation_id_round_trip_in_both_formats():
    event = Event("u", "i", 3.0, None, "w1-2a")
    for fmt in ("json", "text"):
        assert parse_event(serialize_event(event, fmt)) == event
    assert serialize_event(event, "text") == b"u:i:3.0:w1-2a"
    batch = parse_batch([b"u:i:3.0:w1-2a", b"v:j",
                         b'{"user":"w","item":"k","recommendation_id":"r"}'])
    assert [e.recommendation_id for e in batch.events] == ["w1-2a", None, "r"]


def test_integer_ids_are_stringified():
    assert parse_event(b'{"user": 42, "item": -7}') == Event("42", "-7")


def test_unknown_json_keys_are_ignored():
    assert parse_event(b'{"user": "u", "item": "i", "source": "web"}') == Event("u", "i")


def test_auto_detects_json_by_leading_brace():
    assert parse_event(b'  {"user": "u", "item": "i"}').user == "u"


def test_fixed_text_format_reads_a_brace_as_an_id():
    assert parse_event(b"{u:i", fmt="text") == Event("{u", "i")


def test_fixed_json_format_refuses_text():
    with pytest.raises(InvalidEvent) as err:
        parse_event(b"u:i", fmt="json")
    assert err.value.reason == "bad_json"


def test_default_ts_fills_in_only_when_the_message_has_none():
    assert parse_event(b"u:i", default_ts=5.0).ts == 5.0
    assert parse_event(b'{"user":"u","item":"i","ts":3}', default_ts=5.0).ts == 3.0


def test_unknown_format_is_a_configuration_error_not_invalid_data():
    with pytest.raises(ValueError) as err:
        parse_event(b"u:i", fmt="csv")
    assert not isinstance(err.value, InvalidEvent)


def test_ids_of_exactly_256_bytes_are_accepted_even_multibyte():
    assert parse_event(("é" * 128 + ":i").encode()).user == "é" * 128
    assert parse_event(("u" * 256 + ":i").encode()).user == "u" * 256


REJECTIONS = [
    (b"", "empty"),
    (b" \r\n", "empty"),
    (None, "empty"),
    (b"just-a-user", "malformed"),
    (b"a:b:1:2:3", "malformed"),
    (b"a:b:x:r1", "bad_weight"),
    (b"a:b:1:", "bad_id"),
    (b'{"user": "u"}', "malformed"),
    (b'{"user": null, "item": "i"}', "malformed"),
    (b'{"user": "u", "item": "i"', "bad_json"),
    (b"{" * 100_000 + b"}" * 100_000, "too_large"),
    (b"{" + b'"a":[' * 5_000 + b"]" * 5_000 + b"}", "bad_json"),
    (b"\xff\xfe:x", "bad_encoding"),
    (b":i", "bad_id"),
    (b"u:", "bad_id"),
    (b'{"user": 1.5, "item": "i"}', "bad_id"),
    (b'{"user": true, "item": "i"}', "bad_id"),
    (b'{"user": "\\ud800", "item": "i"}', "bad_id"),
    (("u" * 257 + ":i").encode(), "id_too_long"),
    (("é" * 129 + ":i").encode(), "id_too_long"),
    (b"u\x00:i", "control_char"),
    (b"u:i\x07", "control_char"),
    ("u\u0085:i".encode(), "control_char"),
    (b'{"user": "a\\u0007", "item": "b"}', "control_char"),
    (b"u:i:0", "bad_weight"),
    (b"u:i:-1", "bad_weight"),
    (b"u:i:nan", "bad_weight"),
    (b"u:i:inf", "bad_weight"),
    (b"u:i:1e400", "bad_weight"),
    (b"u:i:", "bad_weight"),
    (b"u:i:1_0", "bad_weight"),
    ("u:i:\u0663".encode(), "bad_weight"),
    (b'{"user": "u", "item": "i", "weight": "2"}', "bad_weight"),
    (b'{"user": "u", "item": "i", "weight": true}', "bad_weight"),
    (b'{"user": "u", "item": "i", "weight": 1e400}', "bad_weight"),
    (b'{"user": "u", "item": "i", "rating": 0}', "bad_weight"),
    (b'{"user": "u", "item": "i", "ts": "2024-01-01"}', "bad_timestamp"),
    (b'{"user": "u", "item": "i", "ts": NaN}', "bad_timestamp"),
    (b'{"user": "u", "item": "i", "timestamp": 1' + b"0" * 400 + b"}", "bad_timestamp"),
    (b"u:" + b"i" * MAX_EVENT_BYTES, "too_large"),
]


@pytest.mark.parametrize(("raw", "reason"), REJECTIONS)
def test_invalid_messages_are_rejected_with_a_reason_code(raw, reason):
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw)
    assert err.value.reason == reason
    assert reason in REASONS


@pytest.mark.parametrize("raw", [b"u: :1", b"a b: ", b"u:\xe3\x80\x80", "\u3000:i".encode(),
                                 b'{"user": " ", "item": "i"}', b'{"user": "u", "item": "\\t "}'])
def test_whitespace_only_ids_are_refused_alone_and_in_a_batch(raw):
    with pytest.raises(InvalidEvent) as err:
        parse_event(raw)
    assert err.value.reason in ("bad_id", "control_char")
    batch = parse_batch([b"u:i", raw, b"a b:c d"])  # the fast text path must agree
    assert [e.item for e in batch.events] == ["i", "c d"]
    assert [k for k, _ in batch.rejected] == [1]


def test_rejection_message_names_the_reason_and_what_was_wrong():
    with pytest.raises(InvalidEvent) as err:
        parse_event(b"u:i:zero")
    assert str(err.value) == "invalid event (bad_weight): weight 'zero' is not a number in (0, 1e6]"
    assert err.value.detail == "weight 'zero' is not a number in (0, 1e6]"


def test_rejection_detail_never_echoes_a_huge_value():
    with pytest.raises(InvalidEvent) as err:
        parse_event(("u:i:" + "9" * 5000 + "x").encode())
    assert len(err.value.detail) < 100


def test_invalid_event_is_a_value_error():
    assert issubclass(InvalidEvent, ValueError)


def test_validate_event_applies_the_parsing_rules_to_built_events():
    assert validate_event(Event("u", "i", 2.0)) == Event("u", "i", 2.0)
    assert validate_event(Event("u", "i", -3.0)).weight == -3.0  # negative feedback
    for bad in (Event("", "i"), Event("u", "i", 0.0), Event("u", "i", -2e6),
                Event("u", "i", ts=math.inf)):
        with pytest.raises(InvalidEvent):
            validate_event(bad)


def test_text_serialization_refuses_ids_it_cannot_carry():
    for event in (Event("a:b", "i"), Event("u", " i"), Event("{u", "i")):
        with pytest.raises(InvalidEvent) as err:
            serialize_event(event, "text")
        assert err.value.reason == "malformed"


def test_json_serialization_is_compact_utf8():
    raw = serialize_event(Event("ü", "i", 2.0, 3.0))
    assert raw == '{"user":"ü","item":"i","weight":2.0,"ts":3.0}'.encode()


# -- batches ------------------------------------------------------------------------------


def test_batch_accounts_for_every_input_exactly_once():
    values = [b"a:x", b"bad", b"b:y:0.5", b'{"user":"c","item":"z"}', b"", b"d:w:3"]
    batch = parse_batch(values, min_weight=1.0)
    assert batch.positions == [0, 3, 5]
    assert [e.user for e in batch.events] == ["a", "c", "d"]
    assert [(i, e.reason) for i, e in batch.rejected] == [(1, "malformed"), (4, "empty")]
    assert batch.filtered == 1
    assert len(batch) == len(values)


def test_batch_min_weight_filters_valid_events_without_rejecting_them():
    batch = parse_batch([b"u:i:2", b"u:i:3", b"u:j:5"], min_weight=3.0)
    assert [e.weight for e in batch.events] == [3.0, 5.0]
    assert batch.filtered == 1 and not batch.rejected


def test_batch_keeps_input_order_across_mixed_formats():
    values = [b'{"user":"1","item":"a"}', b"2:b", b'{"user":"3","item":"c"}', b"4:d"]
    assert [e.user for e in parse_batch(values).events] == ["1", "2", "3", "4"]


def test_batch_takes_one_default_timestamp_per_message_or_one_for_all():
    values = [b"u:i", b'{"user":"u","item":"i","ts":1.5}', b"v:j"]
    assert [e.ts for e in parse_batch(values, default_ts=[1.0, 2.0, 3.0]).events] == [1, 1.5, 3]
    assert [e.ts for e in parse_batch(values, default_ts=5.0).events] == [5, 1.5, 5]


def test_batch_with_wrong_number_of_default_timestamps_is_an_error():
    with pytest.raises(ValueError):
        parse_batch([b"u:i", b"v:j"], default_ts=[1.0])


def test_empty_batch_is_empty():
    batch = parse_batch([])
    assert (batch.events, batch.positions, batch.rejected, batch.filtered) == ([], [], [], 0)


def _single(values, fmt, min_weight, default_ts):
    events, positions, rejected, filtered = [], [], [], 0
    for i, value in enumerate(values):
        ts = default_ts[i] if isinstance(default_ts, list) else default_ts
        try:
            event = parse_event(value, fmt, ts)
        except InvalidEvent as exc:
            rejected.append((i, exc))
            continue
        if min_weight is not None and 0 < event.weight < min_weight:
            filtered += 1
        else:
            events.append(event)
            positions.append(i)
    return events, positions, rejected, filtered


_ID_CHARS = st.sampled_from(list("ab:{ \t\r\n\x00\x85é€0") + ["\U0001f600"])
_IDS = st.text(_ID_CHARS, min_size=0, max_size=4) | st.sampled_from(["u" * 257, "é" * 65])
_WEIGHTS = st.sampled_from(["1", "2.5", "0", "-1", "nan", "1e400", "", "x", "1_0", " 3"])
_TEXT = st.builds(
    lambda u, i, w: f"{u}:{i}" if w is None else f"{u}:{i}:{w}", _IDS, _IDS, st.none() | _WEIGHTS
)
_JSON = st.builds(
    lambda u, i, w: json.dumps({"user": u, "item": i, "rating": w}),
    _IDS | st.integers(),
    _IDS,
    st.none() | st.floats() | st.integers(-2, 5) | st.text(max_size=2),
)
_VALUE = (
    _TEXT.map(str.encode)
    | _JSON.map(str.encode)
    | st.binary(max_size=12)
    | st.sampled_from([b"", b" ", b"\n", b"u:i\n", b"{", b"u" * 300 + b":i"])
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(_VALUE, max_size=12),
    fmt=st.sampled_from(["auto", "text", "json"]),
    min_weight=st.none() | st.sampled_from([1.0, 2.0]),
    ts=st.booleans(),
)
def test_batch_parsing_matches_parsing_each_message_alone(values, fmt, min_weight, ts):
    default_ts = [float(i) for i in range(len(values))] if ts else 7.0
    batch = parse_batch(values, fmt, min_weight, default_ts)
    expected = _single(values, fmt, min_weight, default_ts)
    assert (batch.events, batch.positions, batch.rejected, batch.filtered) == expected


# Without control characters or newlines the batch takes its fast path: check that too.
_CLEAN_IDS = st.text(st.sampled_from(list("ab:{ é0") + ["\U0001f600"]), max_size=4) | st.just(
    "é" * 65
)
_CLEAN_TEXT = st.builds(
    lambda u, i, w: f"{u}:{i}" if w is None else f"{u}:{i}:{w}",
    _CLEAN_IDS,
    _CLEAN_IDS,
    st.none() | _WEIGHTS.filter(lambda w: w.isprintable()),
)


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(_CLEAN_TEXT.map(str.encode), max_size=12),
    min_weight=st.none() | st.just(2.0),
)
def test_fast_batch_path_matches_parsing_each_message_alone(values, min_weight):
    batch = parse_batch(values, "auto", min_weight, 1.0)
    expected = _single(values, "auto", min_weight, 1.0)
    assert (batch.events, batch.positions, batch.rejected, batch.filtered) == expected


# -- round trips ----------------------------------------------------------------------------

# A whitespace-only id (" ") is refused (bad_id), so it is no good id.
_GOOD_IDS = st.text(
    st.characters(blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
).filter(lambda s: len(s.encode()) <= 256 and not s.isspace())  # check_id refuses blanks
_EVENTS = st.builds(
    Event,
    _GOOD_IDS,
    _GOOD_IDS,
    st.floats(min_value=0.0, max_value=MAX_WEIGHT, exclude_min=True),
    st.none() | st.floats(min_value=0.0, max_value=MAX_TS),
    event_id=st.none() | _GOOD_IDS.filter(lambda s: len(s.encode()) <= 128),
)


@given(_EVENTS)
def test_json_round_trip_gives_the_same_event(event):
    assert parse_event(serialize_event(event, "json")) == event


@given(_EVENTS)
def test_text_round_trip_gives_the_same_event_with_transport_timestamp(event):
    for value in (event.user, event.item):
        assume(":" not in value and value == value.strip(" \t\r\n"))
    assume(not event.user.startswith("{"))
    if event.event_id is not None:  # text has no event_id: refused, never silently dropped
        with pytest.raises(InvalidEvent, match="event_id"):
            serialize_event(event, "text")
        return
    assert parse_event(serialize_event(event, "text"), default_ts=event.ts) == event


# -- arbitrary bytes -------------------------------------------------------------------------

_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(
        st.sampled_from(["user", "item", "weight", "rating", "ts", "timestamp", "x"]),
        inner,
        max_size=5,
    ),
    max_leaves=8,
)
# Mostly noise, plus bytes that get past the first checks: JSON-shaped values (valid or with
# noise appended), text with separators, and a value just over the size limit.
_ANY_BYTES = (
    st.binary(max_size=300)
    | st.builds(lambda v, tail: json.dumps(v).encode() + tail, _JSON_VALUES, st.binary(max_size=3))
    | st.builds(lambda b: b"{" + b, st.binary(max_size=40))
    | st.lists(st.binary(max_size=6), min_size=1, max_size=4).map(b":".join)
    | st.just(b"u:" + b"i" * MAX_EVENT_BYTES)
)


@settings(max_examples=500, deadline=None)
@given(raw=_ANY_BYTES, fmt=st.sampled_from(["auto", "text", "json"]))
def test_arbitrary_bytes_give_an_event_or_invalid_event_and_nothing_else(raw, fmt):
    try:
        event = parse_event(raw, fmt, 1.0)
    except InvalidEvent as exc:
        assert exc.reason in REASONS and exc.detail
    else:
        assert isinstance(event, Event) and event.weight != 0 and math.isfinite(event.weight)
        assert abs(event.weight) <= MAX_WEIGHT


@settings(max_examples=300, deadline=None)
@given(values=st.lists(_ANY_BYTES, max_size=20), fmt=st.sampled_from(["auto", "text", "json"]))
def test_a_batch_of_arbitrary_bytes_never_raises_and_accounts_for_every_value(values, fmt):
    batch = parse_batch(values, fmt, None, 1.0)
    assert len(batch) == len(values)
    accounted = batch.positions + [i for i, _ in batch.rejected] + [
        i for i, _ in batch.erasures] + batch.redacted
    assert sorted(accounted) == list(range(len(values)))
    assert all(isinstance(e, InvalidEvent) and e.reason in REASONS for _, e in batch.rejected)


DECODED = [
    {"user": "u1", "item": "i1"},
    {"user": 7, "item": "é/1", "weight": 2.5, "ts": 1_700_000_000, "recommendation_id": "r-1"},
    {"user": "u1", "item": "i1", "type": "like"},
    {"user": "u1", "item": "i1", "type": "nope"},
    {"user": "u1", "item": "i1", "weight": True},
    {"user": "u1", "item": "i1", "weight": float("nan")},
    {"user": "u1", "item": "i1", "ts": 1e15},
    {"user": "u\ud800", "item": "i1"},
    {"user": "", "item": "i1"},
    {"item": "i1"},
    {"erase": "user", "id": "u1"},
    {"user": "u1", "item": "x" * (MAX_EVENT_BYTES + 1)},
]


@pytest.mark.parametrize("obj", DECODED)
def test_a_decoded_json_event_is_parsed_as_its_message_text_is(obj: dict):
    """The ingest route decodes a body once: the same event, value and errors as the log's
    reader gets from the compact JSON text."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        want: object = (parse_event(text, "json", 1_800_000_000.0), text.encode("utf-8"))
    except InvalidEvent as e:
        want = (e.reason, e.detail)
    try:
        got: object = parse_json_value(obj, 1_800_000_000.0)
    except InvalidEvent as e:
        got = (e.reason, e.detail)
    assert got == want
