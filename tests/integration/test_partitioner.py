"""Every producer of ours puts a user's events where a Java client would (murmur2), checked
against the real broker; the trainer counts events that arrive elsewhere."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from confluent_kafka import Producer

from streamrec.adapters.kafka import KafkaSink, KafkaSource
from streamrec.adapters.source import SourceMessage
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.core.events.partitioning import partition_of_key
from streamrec.trainer.service import Trainer

PARTITIONS = 6


def _read(cfg: Config, topic: str, count: int) -> list[SourceMessage]:
    source = KafkaSource(cfg.kafka, topic)
    got: list[SourceMessage] = []
    try:
        source.seek({})
        for _ in range(150):
            got.extend(source.poll(1000, 0.2))
            if len(got) >= count:
                break
    finally:
        source.close()
    assert len(got) == count
    return got


def _keys(messages: Sequence[SourceMessage]) -> list[bytes]:
    return [m.key or b"" for m in messages]


def test_kafka_sink_puts_every_key_on_the_java_clients_murmur2_partition(kafka):
    cfg = Config(bootstrap_servers=kafka.bootstrap)
    topic = kafka.create_topic(f"part-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    users = [f"user-{k}" for k in range(300)] + ["üser-ß", "21", "foobar", "a" * 70]
    sink = KafkaSink(cfg.kafka)
    for user in users:
        sink.produce(topic, f"{user}:item-1".encode(), key=user.encode())
    assert sink.flush(30) == 0
    got = _read(cfg, topic, len(users))
    assert sorted(_keys(got)) == sorted(u.encode() for u in users)
    wrong = [m for m in got if m.partition != partition_of_key(m.key or b"", PARTITIONS)]
    assert wrong == []
    assert len({m.partition for m in got}) == PARTITIONS  # the check covered every partition


def test_trainer_counts_events_a_crc32_producer_put_off_their_users_partition(kafka, tmp_path):
    topic = kafka.create_topic(f"part-{uuid.uuid4().hex[:8]}", partitions=PARTITIONS)
    cfg = Config(bootstrap_servers=kafka.bootstrap, topic=topic, group=f"g-{topic}",
                 retrain_every=10**9, retrain_interval=3600.0, from_beginning=True)
    # librdkafka's default partitioner: what KafkaSink used before, and many applications do.
    producer = Producer({"bootstrap.servers": kafka.bootstrap,
                         "partitioner": "consistent_random"})
    users = [f"user-{k}" for k in range(200)]
    for user in users:
        producer.produce(topic, f"{user}:item-1".encode(), key=user.encode())
    assert producer.flush(30) == 0
    del producer  # its thread would keep reconnecting once the broker is gone
    got = _read(cfg, topic, len(users))
    expected = sum(m.partition != partition_of_key(m.key or b"", PARTITIONS) for m in got)
    assert expected > len(users) // 2  # CRC32 and murmur2 mostly disagree

    trainer = Trainer(cfg, KafkaSource(cfg.kafka, topic, cfg.group), None,
                      LocalStore(tmp_path / "store"), workdir=tmp_path / "work")
    try:
        assert trainer.resume() is not None
        for _ in range(100):
            if trainer.window.total_appended >= len(users):
                break
            trainer.step(timeout=0.2)
        assert trainer.window.total_appended == len(users)  # kept, not dropped
        counted = sum(c._value.get() for c in trainer.metrics.misrouted._metrics.values())
        assert counted == expected
    finally:
        trainer.shutdown()
