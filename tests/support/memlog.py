"""An in-memory event log implementing `EventSource`/`EventSink` honestly, for unit tests.

It is a real log, not a mock: topics with partitions, append-only, offsets like Kafka's (the
next offset to read), messages partitioned by key, and blocking polls with a timeout. It only
lacks durability, which unit tests do not need; integration tests use the real broker.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Mapping, Sequence

from streamrec.adapters.source import SourceMessage


class MemLog:
    def __init__(self, partitions: int = 1) -> None:
        self.default_partitions = partitions
        self.topics: dict[str, list[list[SourceMessage]]] = {}
        self.cond = threading.Condition()

    def create_topic(self, topic: str, partitions: int | None = None) -> None:
        with self.cond:
            self.topics.setdefault(topic, [[] for _ in range(partitions or
                                                            self.default_partitions)])

    def append(self, topic: str, value: bytes, key: bytes | None = None,
               headers: Sequence[tuple[str, bytes]] = ()) -> tuple[int, int]:
        with self.cond:
            self.create_topic(topic)
            parts = self.topics[topic]
            p = zlib.crc32(key) % len(parts) if key is not None else 0
            msg = SourceMessage(p, len(parts[p]), value, key, time.time(), tuple(headers))
            parts[p].append(msg)
            self.cond.notify_all()
            return p, msg.offset

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self.cond:
            return {p: len(msgs) for p, msgs in enumerate(self.topics.get(topic, []))}


class MemSource:
    """`EventSource` over one topic of a `MemLog`."""

    def __init__(self, log: MemLog, topic: str) -> None:
        self.log, self.topic = log, topic
        log.create_topic(topic)
        self._pos: dict[int, int] = {}
        self.closed = False

    def partitions(self) -> list[int]:
        return list(range(len(self.log.topics[self.topic])))

    def seek(self, offsets: Mapping[int, int]) -> None:
        self._pos = {p: int(offsets.get(p, 0)) for p in self.partitions()}

    def poll(self, max_messages: int, timeout: float) -> list[SourceMessage]:
        deadline = time.monotonic() + timeout
        with self.log.cond:
            while True:
                out: list[SourceMessage] = []
                for p, msgs in enumerate(self.log.topics[self.topic]):
                    start = self._pos.setdefault(p, 0)
                    take = msgs[start:start + max_messages - len(out)]
                    out.extend(take)
                    self._pos[p] = start + len(take)
                if out:
                    return out
                left = deadline - time.monotonic()
                if left <= 0:
                    return []
                self.log.cond.wait(left)

    def positions(self) -> dict[int, int]:
        return dict(self._pos)

    def lag(self) -> int | None:
        ends = self.log.end_offsets(self.topic)
        return sum(max(0, end - self._pos.get(p, 0)) for p, end in ends.items())

    def close(self) -> None:
        self.closed = True


class MemSink:
    """`EventSink` appending to a `MemLog`; every message is delivered at once."""

    def __init__(self, log: MemLog) -> None:
        self.log = log

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        self.log.append(topic, value, key, headers)

    def produce_acknowledged(self, topic: str, messages: Sequence[tuple[bytes, bytes | None]],
                             timeout: float, partition: int | None = None) -> int:
        for value, key in messages:
            self.log.append(topic, value, key, ())
        return 0

    def flush(self, timeout: float = 10.0) -> int:
        return 0

    def close(self) -> None:
        pass
