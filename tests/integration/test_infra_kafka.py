"""The Kafka broker in the tests is real: produce, consume, commit and resume."""

from __future__ import annotations

import uuid

from confluent_kafka import Consumer, Producer, TopicPartition

N = 10_000


def _consume(
    bootstrap: str, topic: str, group: str, count: int, timeout_polls: int = 300
) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    got: list[bytes] = []
    try:
        for _ in range(timeout_polls):
            if len(got) >= count:
                break
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                assert msg.error() is None, msg.error()
                got.append(msg.value())
                if len(got) == count:
                    consumer.commit(message=msg, asynchronous=False)
                    break
    finally:
        consumer.close()
    return got


def test_ten_thousand_messages_round_trip_and_a_group_resumes_from_its_commit(kafka):
    topic = kafka.create_topic(f"smoke-{uuid.uuid4().hex[:8]}", partitions=1)
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "linger.ms": 5})
    for k in range(N):
        producer.produce(topic, key=f"u{k % 97}", value=f"u{k % 97}:i{k}".encode())
        if k % 1000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0

    group = f"g-{uuid.uuid4().hex[:8]}"
    first = _consume(kafka.bootstrap, topic, group, 6_000)
    assert first == [f"u{k % 97}:i{k}".encode() for k in range(6_000)]

    # A new consumer in the same group starts at the committed offset, not at the beginning.
    rest = _consume(kafka.bootstrap, topic, group, N - 6_000)
    assert rest == [f"u{k % 97}:i{k}".encode() for k in range(6_000, N)]

    probe = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": group})
    committed = probe.committed([TopicPartition(topic, 0)], timeout=10)
    probe.close()
    assert committed[0].offset == N
