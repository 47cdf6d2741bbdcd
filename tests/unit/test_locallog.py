"""The durable local log: Kafka's offset contract, torn tails, restarts, concurrent readers."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from streamrec.adapters.locallog import LocalLogSink, LocalLogSource, LogError, LogLocked

T = "interactions"


def _read_all(src: LocalLogSource, expect: int, timeout: float = 5.0) -> list[bytes]:
    out: list[bytes] = []
    for _ in range(200):
        if len(out) >= expect:
            break
        out += [m.value or b"" for m in src.poll(1000, timeout / 200)]
    return out


def test_messages_come_back_in_order_with_offsets_keys_headers(tmp_path: Path) -> None:
    sink = LocalLogSink(tmp_path)
    sink.produce(T, b"u1:i1", key=b"u1", headers=[("error", b"bad"), ("source-offset", b"7")])
    sink.produce(T, b"u2:i2")
    assert sink.flush() == 0
    src = LocalLogSource(tmp_path, T)
    msgs = src.poll(10, 1.0)
    assert [(m.partition, m.offset, m.value) for m in msgs] == [(0, 0, b"u1:i1"), (0, 1, b"u2:i2")]
    assert msgs[0].key == b"u1" and msgs[1].key is None
    assert msgs[0].headers == (("error", b"bad"), ("source-offset", b"7"))
    assert msgs[0].timestamp is not None and msgs[0].timestamp > 1e9
    sink.close()


def test_offsets_positions_and_lag_follow_kafka_semantics(tmp_path: Path) -> None:
    sink = LocalLogSink(tmp_path)
    for i in range(10):
        sink.produce(T, f"u:{i}".encode())
    sink.flush()
    src = LocalLogSource(tmp_path, T)
    assert src.partitions() == [0]
    assert src.lag() is None  # nothing assigned yet, like KafkaSource
    src.seek({})
    assert src.positions() == {}  # from the beginning, nothing read yet
    assert src.lag() == 10
    assert [m.offset for m in src.poll(3, 1.0)] == [0, 1, 2]
    assert src.positions() == {0: 3}
    assert src.lag() == 7
    src.seek({0: 8})
    assert src.positions() == {0: 8}
    assert [m.value for m in src.poll(100, 1.0)] == [b"u:8", b"u:9"]
    assert src.positions() == {0: 10} and src.lag() == 0
    assert src.end_offsets() == {0: 10}
    assert src.poll(10, 0.05) == []
    sink.close()


def test_reader_sees_appends_made_while_it_waits(tmp_path: Path) -> None:
    sink = LocalLogSink(tmp_path, fsync_every=10_000, fsync_interval=0.01)
    src = LocalLogSource(tmp_path, T)
    src.seek({})

    def later() -> None:
        for i in range(50):
            sink.produce(T, f"a:{i}".encode())

    t = threading.Timer(0.05, later)
    t.start()
    got = _read_all(src, 50)
    t.join()
    assert got == [f"a:{i}".encode() for i in range(50)]
    sink.close()


def test_restart_keeps_every_flushed_record_and_the_next_offset(tmp_path: Path) -> None:
    sink = LocalLogSink(tmp_path, segment_bytes=300)  # many segments
    for i in range(40):
        sink.produce(T, f"r:{i}".encode())
    sink.close()
    sink = LocalLogSink(tmp_path, segment_bytes=300)
    sink.produce(T, b"after")
    sink.close()
    assert len(list((tmp_path / T).glob("*.log"))) > 3
    src = LocalLogSource(tmp_path, T)
    msgs = src.poll(1000, 1.0)
    msgs += src.poll(1000, 0.1)
    assert [m.value for m in msgs] == [f"r:{i}".encode() for i in range(40)] + [b"after"]
    assert [m.offset for m in msgs] == list(range(41))
    src.seek({0: 25})  # seek into the middle of a later segment
    assert src.poll(1, 1.0)[0].value == b"r:25"


def test_killed_writer_loses_nothing_it_flushed(tmp_path: Path) -> None:
    code = (
        "import os, sys\n"
        "from streamrec.adapters.locallog import LocalLogSink\n"
        f"s = LocalLogSink({str(tmp_path)!r}, fsync_every=10**9, fsync_interval=3600)\n"
        "for i in range(500): s.produce('interactions', b'k:%d' % i)\n"
        "s.flush()\n"
        "for i in range(500, 600): s.produce('interactions', b'k:%d' % i)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=60)
    assert proc.returncode == -9
    src = LocalLogSource(tmp_path, T)
    before_reopen = _read_all(src, 500, timeout=1.0)
    assert before_reopen == [b"k:%d" % i for i in range(500)]  # unflushed tail is not served
    sink = LocalLogSink(tmp_path)
    sink.produce(T, b"next")
    sink.flush()
    values = [m.value for m in LocalLogSource(tmp_path, T).poll(10_000, 1.0)]
    assert values[:500] == [b"k:%d" % i for i in range(500)]
    assert values[-1] == b"next" and len(values) in (501, 601)  # page cache may have kept it
    sink.close()


def test_torn_tail_is_truncated_on_open_and_never_served(tmp_path: Path) -> None:
    sink = LocalLogSink(tmp_path)
    for i in range(5):
        sink.produce(T, f"t:{i}".encode())
    sink.close()
    seg = tmp_path / T / "00000000000000000000.log"
    size = seg.stat().st_size
    with seg.open("ab") as f:  # a half-written record, as a crash mid-write leaves it
        f.write(b"\x40\x00\x00\x00\x12\x34\x56\x78partial")
    sink = LocalLogSink(tmp_path)
    sink.writer(T)  # opening the topic for writing recovers it
    assert seg.stat().st_size == size
    sink.produce(T, b"t:5")
    sink.close()
    got = [m.value for m in LocalLogSource(tmp_path, T).poll(100, 1.0)]
    assert got == [f"t:{i}".encode() for i in range(6)]


def test_corrupted_record_in_the_tail_is_cut_there(tmp_path: Path) -> None:
    sink = LocalLogSink(tmp_path)
    for i in range(5):
        sink.produce(T, f"c:{i}".encode())
    sink.close()
    seg = tmp_path / T / "00000000000000000000.log"
    data = bytearray(seg.read_bytes())
    data[-2] ^= 0xFF  # flip a byte of the last record's value
    seg.write_bytes(bytes(data))
    with pytest.raises(LogError):  # a reader refuses it rather than serve it
        LocalLogSource(tmp_path, T).poll(100, 1.0)
    sink = LocalLogSink(tmp_path)
    sink.writer(T)
    sink.close()
    got = [m.value for m in LocalLogSource(tmp_path, T).poll(100, 1.0)]
    assert got == [f"c:{i}".encode() for i in range(4)]


def test_a_second_writer_process_is_refused(tmp_path: Path) -> None:
    sink = LocalLogSink(tmp_path)
    sink.produce(T, b"x")
    code = (f"from streamrec.adapters.locallog import LocalLogSink, LogLocked\n"
            f"try:\n LocalLogSink({str(tmp_path)!r}).produce('interactions', b'y')\n"
            f"except LogLocked: raise SystemExit(3)\n")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 3
    # a second sink in the same process shares the writer
    other = LocalLogSink(tmp_path)
    other.produce(T, b"y")
    other.close()
    sink.close()
    assert [m.offset for m in LocalLogSource(tmp_path, T).poll(10, 1.0)] == [0, 1]
    assert issubclass(LogLocked, LogError)


def test_reader_in_another_process_follows_the_writer(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from streamrec.adapters.locallog import LocalLogSource\n"
        f"src = LocalLogSource({str(tmp_path)!r}, 'interactions')\n"
        "n = 0\n"
        "for _ in range(1000):\n"
        "    n += len(src.poll(1000, 0.05))\n"
        "    if n >= 300: break\n"
        "print(n, src.positions()[0])\n"
    )
    reader = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    sink = LocalLogSink(tmp_path, fsync_every=7)
    for i in range(300):
        sink.produce(T, f"p:{i}".encode())
    sink.flush()
    out, _ = reader.communicate(timeout=60)
    sink.close()
    assert out.split() == ["300", "300"]


def test_topic_names_and_oversized_records_are_rejected(tmp_path: Path) -> None:
    sink = LocalLogSink(tmp_path)
    with pytest.raises(LogError):
        sink.produce("../evil", b"x")
    with pytest.raises(LogError):
        sink.produce(T, b"x" * (17 << 20))
    sink.produce("interactions.dlq", b"bad", headers=[("error", b"malformed")])
    sink.close()
    assert LocalLogSource(tmp_path, "interactions.dlq").poll(1, 1.0)[0].value == b"bad"


def test_group_commits_survive_restart(tmp_path: Path) -> None:
    src = LocalLogSource(tmp_path, T, group="g")
    assert src.committed() == {}
    assert src.commit({0: 42})
    assert LocalLogSource(tmp_path, T, group="g").committed() == {0: 42}


def test_records_larger_than_a_read_chunk_come_back_whole(tmp_path: Path) -> None:
    sink = LocalLogSink(tmp_path, segment_bytes=4 << 20)
    values = [bytes([i]) * (3 << 19) if i % 2 else b"small%d" % i for i in range(8)]
    for v in values:
        sink.produce(T, v)
    sink.close()
    src = LocalLogSource(tmp_path, T)
    got: list[bytes] = []
    for _ in range(20):
        got += [m.value or b"" for m in src.poll(3, 0.01)]
    assert got == values


# A child process whose files may not grow past LIMIT bytes (RLIMIT_FSIZE, a real EFBIG from
# the kernel, SIGXFSZ ignored): a batch that crosses the limit fails part-way through.
_FULL_DISK = """
import resource, signal, sys
from streamrec.adapters.locallog import LocalLogSink
from streamrec.adapters.source import SourceUnavailable
sink = LocalLogSink(sys.argv[1], fsync_every=1000)
assert sink.produce_acknowledged("interactions", [(b"before", b"u")], 5.0) == 0
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
size = sink.writer("interactions").size
resource.setrlimit(resource.RLIMIT_FSIZE, (size + 150, resource.RLIM_INFINITY))
batch = [(b"x" * 40, b"u")] * 5
try:
    sink.produce_acknowledged("interactions", batch, 5.0)
except SourceUnavailable as e:
    print("refused:", e)
else:
    raise SystemExit("a batch past the size limit was acknowledged")
sink.produce("interactions", b"pending", key=b"u")  # fits; its flush must not publish the batch
sink.close()
"""


def test_a_batch_that_cannot_be_written_whole_is_not_written_at_all(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, str(tmp_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "none written" in proc.stdout and "append of 5 records failed" in proc.stdout
    src = LocalLogSource(tmp_path, T)
    assert [(m.offset, m.value) for m in src.poll(100, 1.0)] == [(0, b"before"), (1, b"pending")]
    # A writer opening the topic again (its torn-tail recovery) finds nothing of the batch.
    sink = LocalLogSink(tmp_path)
    assert sink.produce_acknowledged(T, [(b"after", b"u")], 5.0) == 0
    sink.close()
    assert [m.value for m in LocalLogSource(tmp_path, T).poll(100, 1.0)] == [
        b"before", b"pending", b"after"]
