"""KafkaSource/KafkaSink/ensure_topics against the real broker."""

from __future__ import annotations

import uuid

import pytest

from streamrec.adapters.kafka import COMPACTED, KafkaSink, KafkaSource, ensure_topics
from streamrec.adapters.source import SourceMessage, SourceUnavailable
from streamrec.config import Config


def _cfg(kafka) -> Config:  # type: ignore[no-untyped-def]
    return Config(bootstrap_servers=kafka.bootstrap)


def _drain(source: KafkaSource, count: int, polls: int = 100) -> list[SourceMessage]:
    got: list[SourceMessage] = []
    for _ in range(polls):
        if len(got) >= count:
            break
        got.extend(source.poll(500, 0.2))
    return got


def _name(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


def test_sink_to_source_round_trip_over_all_partitions_with_positions_and_lag(kafka):
    cfg = _cfg(kafka)
    topic = kafka.create_topic(_name("adapter"), partitions=3)
    sink = KafkaSink(cfg.kafka)
    for k in range(300):
        sink.produce(topic, f"u{k}:i{k}".encode(), key=f"u{k}".encode(),
                     headers=[("h", b"v")])
    assert sink.flush(30) == 0
    source = KafkaSource(cfg.kafka, topic, group=_name("g"))
    try:
        assert source.partitions() == [0, 1, 2]
        source.seek({})
        got = _drain(source, 300)
        assert sorted(m.value for m in got) == sorted(f"u{k}:i{k}".encode() for k in range(300))
        assert all(m.headers == (("h", b"v"),) and m.timestamp for m in got)
        per_partition = {p: sum(1 for m in got if m.partition == p) for p in range(3)}
        assert source.positions() == per_partition
        assert source.lag() == 0
        assert source.end_offsets() == per_partition
    finally:
        source.close()
        sink.close()


def test_seek_resumes_exactly_at_the_given_offsets_and_commit_is_readable(kafka):
    cfg = _cfg(kafka)
    topic = kafka.create_topic(_name("seek"), partitions=1)
    sink = KafkaSink(cfg.kafka)
    for k in range(20):
        sink.produce(topic, str(k).encode())
    sink.flush(30)
    group = _name("g")
    first = KafkaSource(cfg.kafka, topic, group=group)
    try:
        first.seek({0: 15})
        assert first.lag() == 5
        assert [m.value for m in _drain(first, 5)] == [str(k).encode() for k in range(15, 20)]
        assert first.commit(first.positions())
    finally:
        first.close()
    second = KafkaSource(cfg.kafka, topic, group=group)
    try:
        assert second.committed() == {0: 20}
        second.seek({0: 7})
        assert _drain(second, 1)[0].offset == 7
    finally:
        second.close()


def test_a_reading_source_seeks_again_moving_only_the_listed_partitions_it_reads(kafka):
    """A second seek (fold-in's skip-ahead on a snapshot swap, a rewind to read again) moves
    the partitions it lists whose offset changed; librdkafka refuses to assign a partition
    twice, which the first version of this seek did. A partition this source does not read
    (a serving group's ``only``) is ignored, listed or not."""
    cfg = _cfg(kafka)
    topic = kafka.create_topic(_name("reseek"), partitions=3)
    sink = KafkaSink(cfg.kafka)
    for k in range(10):
        for p in range(3):
            sink._producer.produce(topic, f"{p}:{k}".encode(), partition=p)
    assert sink.flush(30) == 0
    source = KafkaSource(cfg.kafka, topic, only=(0, 2), expected=3)
    try:
        source.seek({0: 0, 1: 0, 2: 0})
        got = _drain(source, 20)
        assert {m.partition for m in got} == {0, 2} and len(got) == 20
        assert source.positions() == {0: 10, 2: 10}
        source.seek({0: 10, 1: 8, 2: 4})  # 0 unchanged, 1 not read, 2 back to 4
        again = _drain(source, 6)
        assert [(m.partition, m.offset) for m in again] == [(2, k) for k in range(4, 10)]
        assert source.positions() == {0: 10, 2: 10}
        source.seek({0: 7, 2: 10})  # ahead of nothing, behind on 0: read 7..9 again
        assert [(m.partition, m.offset) for m in _drain(source, 3)] == [(0, 7), (0, 8), (0, 9)]
        assert source.lag() == 0
    finally:
        source.close()
        sink.close()


def test_ensure_topics_creates_missing_and_tolerates_existing(kafka):
    cfg = _cfg(kafka)
    old = kafka.create_topic(_name("old"))
    new = _name("new")
    assert ensure_topics(cfg.kafka, [old, new]) == [new]
    assert ensure_topics(cfg.kafka, [old, new]) == []


def test_the_items_topic_is_created_compacted(kafka):
    from confluent_kafka.admin import AdminClient, ConfigResource

    cfg = _cfg(kafka)
    name = _name("items")
    assert ensure_topics(cfg.kafka, [name], topic_configs={name: COMPACTED}) == [name]
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap})
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["cleanup.policy"].value == "compact"


def test_a_missing_topic_is_reported_as_unavailable(kafka):
    source = KafkaSource(_cfg(kafka).kafka, _name("absent"))
    try:
        with pytest.raises(SourceUnavailable):
            source.partitions(timeout=2)
    finally:
        source.close()
