"""Which partition of the interactions topic a user's events belong to: Kafka's murmur2.

A partition of the interactions topic is a user shard: every event of a user must land on the
partition ``toPositive(murmur2(utf8(user))) % partitions``, the rule of the Java client's
default partitioner (``org.apache.kafka.common.utils.Utils.murmur2`` and ``toPositive``, as used
by ``BuiltInPartitioner.partitionForKey``). librdkafka agrees only when a producer sets
``partitioner=murmur2_random`` (its default, ``consistent_random``, is a CRC32 and sends ~88% of
keys elsewhere); every producer of ours does (``adapters/kafka.py``), and docs/trainer.md tells
application producers how to.

Pure: no I/O. The hash is Austin Appleby's MurmurHash2 (32-bit) with Kafka's seed
``0x9747b28c``, read little-endian in 4-byte blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["UserPartitions", "misrouted", "murmur2", "murmur2_many", "partition_for",
           "partition_of_key", "partitions_of_ids"]

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` of ``data``: a signed 32-bit int, exactly as Java returns it.

    Parameters
    ----------
    data : bytes
        The serialized key (for a user id: its UTF-8 bytes).

    Returns
    -------
    int
        In [-2**31, 2**31).
    """
    length = len(data)
    h = (_SEED ^ length) & _MASK
    tail = length & ~3
    for i in range(0, tail, 4):
        k = int.from_bytes(data[i:i + 4], "little")
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ k
    rest = length - tail
    if rest:  # Java's fall-through switch over the last 1-3 bytes
        if rest == 3:
            h ^= data[tail + 2] << 16
        if rest >= 2:
            h ^= data[tail + 1] << 8
        h ^= data[tail]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of_key(key: bytes, partitions: int) -> int:
    """``toPositive(murmur2(key)) % partitions``: the Java client's partition for ``key``.

    Raises
    ------
    ValueError
        If ``partitions`` < 1.
    """
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partition_for(user: str, partitions: int) -> int:
    """The partition (user shard) that ``user``'s events belong to; see `partition_of_key`."""
    return partition_of_key(user.encode(), partitions)


class UserPartitions:
    """Each user's partition among ``partitions``, remembered across calls: a user's events
    keep coming, and a dict hit (~50 ns) is ~80x cheaper than the hash in Python. At most
    ``max_users`` are remembered (then the memory starts over: ~100 B a user)."""

    def __init__(self, partitions: int, max_users: int = 1 << 18) -> None:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions}")
        self.partitions, self.max_users = partitions, max_users
        self._known: dict[str, int] = {}

    def partition(self, user: str) -> int:
        """``user``'s partition (`partition_for`), remembered."""
        known = self._known
        p = known.get(user)
        if p is None:
            if len(known) >= self.max_users:
                known.clear()
            p = known[user] = partition_for(user, self.partitions)
        return p

    def misrouted(self, users: Iterable[str], arrived: Sequence[int]) -> list[int]:
        """Indices ``k`` whose ``users[k]`` does not hash to ``arrived[k]``, the partition its
        event was read from. One partition: nothing is ever misrouted (no hash computed)."""
        if self.partitions <= 1:
            return []
        known, partition = self._known, self.partition
        out: list[int] = []
        for k, user in enumerate(users):
            p = known.get(user)  # the hit inline: this runs once per ingested event
            if p is None:
                p = partition(user)
            if p != arrived[k]:
                out.append(k)
        return out


def misrouted(users: Iterable[str], arrived: Sequence[int], partitions: int) -> list[int]:
    """`UserPartitions.misrouted` with nothing remembered beyond this call."""
    return UserPartitions(max(partitions, 1)).misrouted(users, arrived)


def murmur2_many(data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64]
                 ) -> npt.NDArray[np.int32]:
    """`murmur2` of every key of an id list at once (vectorised over keys, looped over
    4-byte blocks), for the snapshot writer's per-partition split of millions of users.

    Parameters
    ----------
    data, offsets : ndarray
        The keys in ``encode_ids``'s layout (``core/ids.py``): key ``i`` is
        ``data[offsets[i]:offsets[i + 1]]`` (uint8, shape ``(bytes,)``; int64, ``(keys + 1,)``).

    Returns
    -------
    ndarray
        int32, shape ``(keys,)``: exactly what `murmur2` returns for each key.
    """
    starts = np.asarray(offsets[:-1], dtype=np.int64)
    lengths = np.asarray(offsets[1:], dtype=np.int64) - starts
    raw = np.asarray(data, dtype=np.uint8)
    m = np.uint32(_M)
    h = (np.uint32(_SEED) ^ lengths.astype(np.uint32)).astype(np.uint32)
    blocks = lengths >> 2
    for j in range(int(blocks.max()) if len(blocks) else 0):
        rows = np.flatnonzero(blocks > j)
        at = starts[rows] + 4 * j
        k = (raw[at].astype(np.uint32) | (raw[at + 1].astype(np.uint32) << np.uint32(8))
             | (raw[at + 2].astype(np.uint32) << np.uint32(16))
             | (raw[at + 3].astype(np.uint32) << np.uint32(24)))
        k *= m
        k ^= k >> np.uint32(24)
        k *= m
        h[rows] = (h[rows] * m) ^ k
    tail = starts + (blocks << 2)
    rest = lengths & 3
    for shift, need in ((16, 3), (8, 2), (0, 1)):
        rows = np.flatnonzero(rest >= need)
        h[rows] ^= raw[tail[rows] + (need - 1)].astype(np.uint32) << np.uint32(shift)
    rows = np.flatnonzero(rest > 0)
    h[rows] *= m
    h ^= h >> np.uint32(13)
    h *= m
    h ^= h >> np.uint32(15)
    return h.view(np.int32)


def partitions_of_ids(data: npt.NDArray[np.uint8], offsets: npt.NDArray[np.int64],
                      partitions: int) -> npt.NDArray[np.int64]:
    """`partition_of_key` of every key of an id list (`murmur2_many`'s layout): int64, shape
    ``(keys,)``. Raises ``ValueError`` if ``partitions`` < 1."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    positive = murmur2_many(data, offsets).view(np.uint32) & np.uint32(0x7FFFFFFF)
    return (positive % np.uint32(partitions)).astype(np.int64)
