"""Kafka's murmur2 partitioner (core/events/partitioning.py) and the misrouted-event check."""

from __future__ import annotations

import pytest

from streamrec.adapters.source import SourceMessage
from streamrec.core.events.partitioning import (
    UserPartitions,
    misrouted,
    murmur2,
    partition_for,
    partition_of_key,
)
from streamrec.trainer.ingest import ingest

# org.apache.kafka.common.utils.UtilsTest.testMurmur2: what the Java client computes.
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), sorted(JAVA_MURMUR2.items()))
def test_murmur2_equals_the_java_clients_value(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_partition_is_the_positive_hash_modulo_the_partition_count() -> None:
    # toPositive(-790332482) = 1357151166; 1357151166 % 50 = 16.
    assert partition_of_key(b"foobar", 50) == 16
    assert partition_of_key(b"abc", 7) == 479470107 % 7
    assert partition_for("foobar", 50) == 16


def test_a_non_ascii_user_hashes_its_utf8_bytes() -> None:
    assert partition_for("üser-ß", 12) == partition_of_key("üser-ß".encode(), 12)


def test_every_key_has_one_partition_when_the_topic_has_one() -> None:
    assert {partition_of_key(f"u{k}".encode(), 1) for k in range(100)} == {0}


def test_partition_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="partitions must be >= 1"):
        partition_of_key(b"u", 0)


def test_misrouted_names_only_events_off_their_users_partition() -> None:
    users = ["foobar", "abc", "foobar", "21"]
    right = [partition_for(u, 4) for u in users]
    arrived = list(right)
    arrived[2] = (right[2] + 1) % 4
    assert misrouted(users, arrived, 4) == [2]
    assert misrouted(users, right, 4) == []
    assert misrouted(users, [9, 9, 9, 9], 1) == []  # one partition: never misrouted


def test_ingest_reports_misrouted_events_and_keeps_them_in_the_window() -> None:
    users = [f"user-{k}" for k in range(40)]
    msgs = []
    for k, user in enumerate(users):
        p = partition_for(user, 3)
        if k % 10 == 0:  # a producer that got these wrong
            p = (p + 1) % 3
        msgs.append(SourceMessage(p, k, f"{user}:item-{k}".encode(), None, 1.7e9))
    msgs.append(SourceMessage(0, 99, b"not an event", None, 1.7e9))
    got = ingest(msgs, partitions=UserPartitions(3))
    assert len(got.events) == 40 and len(got.dead) == 1
    assert [(m.offset, u) for m, u in got.misrouted] == [(k, users[k]) for k in (0, 10, 20, 30)]
    assert ingest(msgs, partitions=UserPartitions(1)).misrouted == []
    assert ingest(msgs).misrouted == []


def test_remembered_partitions_stay_right_across_calls_and_past_the_bound() -> None:
    parts = UserPartitions(5, max_users=3)
    users = [f"u{k}" for k in range(10)]
    right = [partition_for(u, 5) for u in users]
    for _ in range(3):
        assert parts.misrouted(users, right) == []
        assert parts.misrouted(users, [(p + 1) % 5 for p in right]) == list(range(10))
