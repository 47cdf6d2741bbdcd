"""The trainer keeps the item catalogue: records into snapshots, bad ones dead-lettered, resumed."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.memlog import MemLog, MemSink, MemSource

from streamrec.adapters.snapshotfiles import read_snapshot
from streamrec.adapters.stores import LocalStore
from streamrec.config import Config
from streamrec.core.catalog.records import ItemRecord
from streamrec.trainer.service import Trainer

CONFIG = Config(topic="t", window_size=1000, retrain_every=40, retrain_interval=3600.0,
                factors=4, iterations=2, keep=3, from_beginning=True)


def _trainer(log: MemLog, store: LocalStore, work: Path) -> Trainer:
    return Trainer(CONFIG, MemSource(log, "t"), MemSink(log), store, workdir=work,
                   items=MemSource(log, "t.items"))


def _publish_one_more(trainer: Trainer, log: MemLog, start: int) -> None:
    for k in range(start, start + 40):
        log.append("t", f"u{k % 5}:i{k % 9}".encode(), key=b"u")
    before = len(trainer.published)
    for _ in range(100):
        trainer.step(timeout=0.0)
        trainer.wait_idle(10)
        if len(trainer.published) > before:
            return
    raise AssertionError("no snapshot published")


def test_item_records_go_into_the_snapshot_and_bad_ones_to_the_dead_letter_topic(
        tmp_path: Path) -> None:
    log = MemLog()
    log.append("t.items", json.dumps({"item": "i1", "categories": ["Comedy"]}).encode())
    log.append("t.items", b'{"item": "i2", "hiden": true}')
    log.append("t.items", json.dumps({"item": "i1", "categories": ["Drama"]}).encode())
    store = LocalStore(tmp_path / "store")
    trainer = _trainer(log, store, tmp_path / "w")
    trainer.resume()
    _publish_one_more(trainer, log, 0)
    snap = read_snapshot(store.fetch(store.latest() or "", tmp_path / "c"), window=False)
    assert snap.catalog.records() == [ItemRecord("i1", ("Drama",))]
    assert snap.item_offsets == {0: 3}
    (dead,) = log.topics["t.dlq"][0]
    headers = dict(dead.headers)
    assert dead.value == b'{"item": "i2", "hiden": true}'
    assert headers["error"].startswith(b"malformed: unknown field(s) ['hiden']")
    assert headers["source-topic"] == b"t.items" and headers["source-offset"] == b"0:1"
    trainer.shutdown()


def test_a_restarted_trainer_resumes_the_catalogue_and_reads_on_from_its_offsets(
        tmp_path: Path) -> None:
    log = MemLog()
    log.append("t.items", json.dumps({"item": "i1", "title": "One"}).encode())
    store = LocalStore(tmp_path / "store")
    first = _trainer(log, store, tmp_path / "w1")
    first.resume()
    _publish_one_more(first, log, 0)
    first.shutdown()
    log.append("t.items", json.dumps({"item": "i2", "hidden": True}).encode())
    second = _trainer(log, store, tmp_path / "w2")
    point = second.resume()
    assert point is not None and [r.item for r in second.catalog.records()] == ["i1"]
    _publish_one_more(second, log, 40)
    snap = read_snapshot(store.fetch(store.latest() or "", tmp_path / "c"), window=False)
    assert [(r.item, r.title, r.hidden) for r in snap.catalog.records()] == [
        ("i1", "One", False), ("i2", None, True)]
    assert snap.item_offsets == {0: 2}
    assert len(log.topics.get("t.dlq", [[]])[0]) == 0  # nothing read twice, nothing refused
    second.shutdown()
