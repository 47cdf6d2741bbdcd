"""`RepeatFilter`: the first line of a shape passes, then one per interval with a count."""

from __future__ import annotations

import importlib
import logging

import pytest

from streamrec.logthrottle import BROKER_LOGGERS, RepeatFilter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _record(msg: str, *args: object, name: str = "streamrec.adapters.kafka",
            level: int = logging.WARNING) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, msg, args or None, None)


def _passed(flt: RepeatFilter, record: logging.LogRecord) -> str | None:
    return record.getMessage() if flt.filter(record) else None


def test_a_repeated_line_passes_once_per_interval_then_says_how_many_were_dropped() -> None:
    clock = Clock()
    flt = RepeatFilter(30.0, clock)
    assert _passed(flt, _record("kafka: %s", "1/1 brokers are down")) == \
        "kafka: 1/1 brokers are down"
    for k in range(500):
        clock.now = k * 0.05
        assert _passed(flt, _record("kafka: %s", "1/1 brokers are down")) is None
    clock.now = 30.0
    assert _passed(flt, _record("kafka: %s", "1/1 brokers are down")) == \
        "kafka: 1/1 brokers are down (500 more like this in the last 30 s)"
    clock.now = 31.0
    assert _passed(flt, _record("kafka: %s", "1/1 brokers are down")) is None
    assert flt.dropped == 501


def test_lines_that_differ_only_in_numbers_are_one_shape() -> None:
    flt = RepeatFilter(30.0, Clock())
    assert _passed(flt, _record("Connect failed (after %dms in state CONNECT)", 0))
    assert _passed(flt, _record("Connect failed (after %dms in state CONNECT)", 3)) is None


@pytest.mark.parametrize("other", [
    _record("kafka: %s", "1/1 brokers are down", level=logging.ERROR),
    _record("kafka: %s", "1/1 brokers are down", name="streamrec.serving.feeds.consumer"),
    _record("kafka: %s", "1/1 brokers are down", name="streamrec.adapters.kafka.child"),
    _record("kafka: %s", "all brokers are up"),
])
def test_another_level_logger_or_message_passes_at_once(other: logging.LogRecord) -> None:
    flt = RepeatFilter(30.0, Clock())
    assert flt.filter(_record("kafka: %s", "1/1 brokers are down"))
    assert flt.filter(other)


def test_the_shapes_remembered_are_bounded_oldest_forgotten_first() -> None:
    flt = RepeatFilter(30.0, Clock(), max_shapes=3)
    for word in ("a", "b", "c", "d"):
        assert flt.filter(_record("line %s", word))
    assert flt.filter(_record("line %s", "a"))  # forgotten: passes again
    assert not flt.filter(_record("line %s", "d"))


def test_a_non_positive_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="interval"):
        RepeatFilter(0.0)


def test_other_loggers_pass_untouched_even_when_only_their_numbers_change() -> None:
    flt = RepeatFilter(30.0, Clock())
    for version in ("000000000003", "000000000004", "000000000004"):
        assert flt.filter(_record("serving snapshot %s", version,
                                  name="streamrec.serving.feeds.reloader", level=logging.INFO))
    assert flt.dropped == 0


def test_the_throttled_loggers_are_the_modules_that_log_broker_trouble() -> None:
    # A logger is named after its module: a module that moves must take the throttle along.
    for name in BROKER_LOGGERS:
        module = importlib.import_module(name)
        assert module.log.name == name  # type: ignore[attr-defined]
