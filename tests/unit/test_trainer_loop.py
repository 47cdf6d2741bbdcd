"""The Trainer loop over an in-memory log and a real LocalStore (no Kafka, no S3)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.source import SourceMessage
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.trainer.service import Trainer


class MemoryLog:
    """A one-partition log that is both the source and the sink."""

    def __init__(self) -> None:
        self.topics: dict[str, list[tuple[bytes, tuple[tuple[str, bytes], ...]]]] = {}
        self.topic = "t"
        self.next = 0

    def append(self, topic: str, value: bytes) -> None:
        self.topics.setdefault(topic, []).append((value, ()))

    # EventSource
    def partitions(self) -> list[int]:
        return [0]

    def seek(self, offsets: Mapping[int, int]) -> None:
        self.next = offsets.get(0, 0)

    def poll(self, max_messages: int, timeout: float) -> list[SourceMessage]:
        log = self.topics.get(self.topic, [])
        batch = log[self.next:self.next + max_messages]
        out = [SourceMessage(0, self.next + k, v, timestamp=1.0) for k, (v, _) in enumerate(batch)]
        self.next += len(batch)
        return out

    def positions(self) -> dict[int, int]:
        return {0: self.next}

    def lag(self) -> int | None:
        return len(self.topics.get(self.topic, [])) - self.next

    def close(self) -> None:
        pass

    # EventSink
    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        self.topics.setdefault(topic, []).append((value, tuple(headers)))

    def produce_acknowledged(self, topic: str, messages: Sequence[tuple[bytes, bytes | None]],
                             timeout: float, partition: int | None = None) -> int:
        for value, key in messages:
            self.produce(topic, value, key)
        return 0

    def flush(self, timeout: float = 10.0) -> int:
        return 0


def _config(**kw: object) -> Config:
    base = dict(topic="t", window_size=1000, retrain_every=50, retrain_interval=3600.0,
                factors=4, iterations=2, keep=2, from_beginning=True)
    base.update(kw)
    return Config(**base)  # type: ignore[arg-type]


def _run_until_published(trainer: Trainer, count: int) -> None:
    for _ in range(200):
        trainer.step(timeout=0.0)
        trainer.wait_idle(10)
        if len(trainer.published) >= count:
            return
    raise AssertionError(f"only {trainer.published} published")


def test_events_become_a_snapshot_and_bad_ones_dead_letters(tmp_path: Path):
    log = MemoryLog()
    for k in range(60):
        log.append("t", f"u{k % 7}:i{k % 11}".encode())
    log.append("t", b"not an event")
    store = LocalStore(tmp_path / "store")
    trainer = Trainer(_config(), log, log, store, workdir=tmp_path / "work")
    trainer.resume()
    _run_until_published(trainer, 1)
    version = store.latest()
    assert version == trainer.version == "000000000001"
    snap = read_snapshot(store.fetch(version, tmp_path / "cache"))
    assert snap.manifest.sizes["window"] == 60
    assert (snap.manifest.sizes["users"], snap.manifest.sizes["items"]) == (7, 11)
    assert snap.offsets == {0: 61}
    (value, headers), = log.topics["t.dlq"]
    assert value == b"not an event"
    assert dict(headers)["source-offset"] == b"0:60"
    assert [v for v, _ in log.topics["t.snapshots"]] == [b"000000000001"]
    trainer.shutdown()


def test_a_new_trainer_resumes_the_window_and_offsets_of_the_last_snapshot(tmp_path: Path):
    log = MemoryLog()
    for k in range(120):
        log.append("t", f"u{k % 5}:i{k}".encode())
    store = LocalStore(tmp_path / "store")
    first = Trainer(_config(), log, log, store, workdir=tmp_path / "w1", max_batch=50)
    first.resume()
    _run_until_published(first, 2)
    first.shutdown()
    # Later events, consumed by a trainer that "crashed" before its next snapshot.
    for k in range(120, 140):
        log.append("t", f"u{k % 5}:i{k}".encode())
    second = Trainer(_config(), log, log, store, workdir=tmp_path / "w2")
    point = second.resume()
    assert point is not None and point.how == "snapshot"
    assert second.positions == {0: 100}
    assert second.window.total_appended == 100
    while second.step(timeout=0.0):
        pass
    assert second.window.total_appended == 140
    events = list(second.window.contents().events())
    assert [e.item for e in events] == [f"i{k}" for k in range(140)]
    second.shutdown()
    assert store.versions() == ["000000000001", "000000000002"]


def test_a_retried_event_id_counts_once_even_across_a_restart(tmp_path: Path):
    def event(k: int) -> bytes:
        return f'{{"user":"u{k % 5}","item":"i{k}","event_id":"req-{k}"}}'.encode()

    log = MemoryLog()
    for k in range(50):
        log.append("t", event(k))
    store = LocalStore(tmp_path / "store")
    first = Trainer(_config(), log, log, store, workdir=tmp_path / "w1")
    first.resume()
    _run_until_published(first, 1)
    first.shutdown()
    for k in range(40, 60):  # a client retries 40..49 and sends 50..59
        log.append("t", event(k))
    second = Trainer(_config(), log, log, store, workdir=tmp_path / "w2")
    second.resume()  # from the snapshot: its window's ids come back with it
    while second.step(timeout=0.0):
        pass
    items = [e.item for e in second.window.contents().events()]
    assert items == [f"i{k}" for k in range(60)]
    assert second.window.duplicates == 10
    assert second.metrics.duplicates._value.get() == 10
    assert second.metrics.accepted._value.get() == 10
    second.shutdown()


def test_a_topic_whose_partition_count_is_not_topic_partitions_is_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture):
    # One partition is also where the trainer's count starts: the mismatch must still show.
    log = MemoryLog()
    log.append("t", b"u1:i1")
    trainer = Trainer(_config(topic_partitions=4), log, log, LocalStore(tmp_path / "store"),
                      workdir=tmp_path / "work")
    trainer.resume()
    with caplog.at_level(logging.WARNING, logger="streamrec.trainer.service"):
        trainer.step(timeout=0.0)
    assert any("topic t has 1 partitions, topic_partitions says 4" in r.getMessage()
               for r in caplog.records), caplog.text
    trainer.shutdown()
