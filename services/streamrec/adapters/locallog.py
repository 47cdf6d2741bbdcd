"""A durable local event log behind `EventSource`/`EventSink`: Kafka's contract on one disk.

Each topic is a directory of append-only segment files named by their first offset
(``00000000000000000000.log``). A record is ``length u32 | crc32 u32 | body`` where the body
holds its own offset, the timestamp, key, value and headers, so a torn tail (a crash mid-write)
fails its CRC or its length and is truncated when the writer opens the topic.

Durability is batched: the writer fsyncs every ``fsync_every`` records, every
``fsync_interval`` seconds, on `flush` and on `close`. Only then does it advance the *high
watermark* (``.hwm``: end offset, segment, byte position, CRC). Readers never read past it, just
as Kafka consumers never read past the replicated high watermark, so nothing a reader has seen
(and a snapshot has stored the offset of) can vanish in a power cut. One partition: the offset is
the record index, and the next offset survives restarts. One writer process per topic (an
exclusive ``flock``); any number of readers, threads or processes. Nothing is ever deleted,
but records can be *redacted* for an erasure (`TopicWriter.redact`, ``core/events/erasure.py``):
the writer rolls to a new segment, then rewrites each sealed segment that holds an erased
record with that record's value replaced by ``erasure.REDACTED`` (same offset and timestamp;
no key, no headers) and swaps the file in atomically; a reader notices the new file (its
inode) and finds its offset again.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from streamrec.core.events.erasure import REDACTED

from .source import SourceMessage, SourceUnavailable

__all__ = ["LocalLogSink", "LocalLogSource", "LogError", "LogLocked", "TopicWriter"]

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")  # body length, crc32(body)
_BODY = struct.Struct("<QdiiH")  # offset, ts, key len (-1: none), value len (-1: none), n headers
_HWM = struct.Struct("<QQQ")  # end offset, segment base, byte position in that segment
MAX_RECORD_BYTES = 16 << 20
_READ_CHUNK = 1 << 20  # bytes a reader takes per read
_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class LogError(RuntimeError):
    """The log cannot do what was asked (bad topic name, oversized record, I/O failure)."""


class LogLocked(LogError):
    """Another process already writes this topic."""


def _topic_dir(root: Path, topic: str) -> Path:
    if not _TOPIC_RE.match(topic) or topic in (".", ".."):
        raise LogError(f"invalid topic name {topic!r}")
    return root / topic


def _seg_name(base: int) -> str:
    return f"{base:020d}.log"


def _segments(d: Path) -> list[int]:
    # ASCII only: "²".isdigit() is true, and int() would then fail on a stray file.
    stems = (p.name[:-4] for p in d.glob("*.log"))
    return sorted(int(s) for s in stems if s.isascii() and s.isdigit())


def _encode(offset: int, ts: float, value: bytes | None, key: bytes | None,
            headers: Sequence[tuple[str, bytes]]) -> bytes:
    head = _BODY.pack(offset, ts, -1 if key is None else len(key),
                      -1 if value is None else len(value), len(headers))
    parts = [head, key or b"", value or b""]
    for name, val in headers:
        nb = name.encode()
        parts += [struct.pack("<HI", len(nb), len(val)), nb, val]
    body = b"".join(parts)
    if len(body) > MAX_RECORD_BYTES:
        raise LogError(f"record of {len(body)} bytes is over {MAX_RECORD_BYTES}")
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _decode(body: bytes) -> SourceMessage:
    offset, ts, klen, vlen, nh = _BODY.unpack_from(body, 0)
    pos = _BODY.size
    key = None if klen < 0 else body[pos:pos + klen]
    pos += max(klen, 0)
    value = None if vlen < 0 else body[pos:pos + vlen]
    pos += max(vlen, 0)
    headers = []
    for _ in range(nh):
        nlen, hlen = struct.unpack_from("<HI", body, pos)
        pos += 6
        name = body[pos:pos + nlen].decode()
        pos += nlen
        headers.append((name, body[pos:pos + hlen]))
        pos += hlen
    return SourceMessage(partition=0, offset=offset, value=value, key=key, timestamp=ts,
                         headers=tuple(headers))


def _scan(data: bytes, base: int) -> tuple[int, int]:
    """Valid records at the start of a segment: (count, byte length); stops at the first bad one."""
    pos = count = 0
    while pos + _FRAME.size <= len(data):
        length, crc = _FRAME.unpack_from(data, pos)
        end = pos + _FRAME.size + length
        if length < _BODY.size or length > MAX_RECORD_BYTES or end > len(data):
            break
        body = data[pos + _FRAME.size:end]
        if zlib.crc32(body) != crc or _BODY.unpack_from(body)[0] != base + count:
            break
        pos, count = end, count + 1
    return count, pos


def read_hwm(d: Path) -> tuple[int, int, int]:
    """(end offset, segment base, byte position) that readers may read up to; zeros if none."""
    try:
        raw = (d / ".hwm").read_bytes()
    except FileNotFoundError:
        return 0, 0, 0
    if len(raw) != _HWM.size + 4 or zlib.crc32(raw[:_HWM.size]) != struct.unpack(
            "<I", raw[_HWM.size:])[0]:
        return -1, -1, -1  # caught mid-rewrite: the caller retries
    end, seg, pos = _HWM.unpack(raw[:_HWM.size])
    return end, seg, pos


class TopicWriter:
    """The single appender of one topic directory; shared by every sink of this process."""

    def __init__(self, d: Path, *, segment_bytes: int, fsync_every: int,
                 fsync_interval: float) -> None:
        self.dir = d
        d.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(d / ".writer.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            os.close(self._lock_fd)
            raise LogLocked(f"{d} is being written by another process") from e
        self.segment_bytes, self.fsync_every, self.fsync_interval = (
            segment_bytes, fsync_every, fsync_interval)
        self.cond = threading.Condition()
        self.refs = 0
        self._recover()
        self._hwm_fd = os.open(d / ".hwm", os.O_RDWR | os.O_CREAT, 0o644)
        with self.cond:
            self._publish_hwm()
        self._pending = 0
        self._oldest = 0.0
        self._closed = False
        self._flusher = threading.Thread(target=self._flush_loop, name=f"locallog-{d.name}",
                                         daemon=True)
        self._flusher.start()

    def _recover(self) -> None:
        bases = _segments(self.dir) or [0]
        self.base = bases[-1]
        path = self.dir / _seg_name(self.base)
        data = path.read_bytes() if path.exists() else b""
        count, size = _scan(data, self.base)
        if size < len(data):
            log.warning("locallog: %s: truncating a torn tail of %d bytes after offset %d",
                        path, len(data) - size, self.base + count)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        os.ftruncate(self.fd, size)
        os.fsync(self.fd)
        os.lseek(self.fd, size, os.SEEK_SET)
        self.size, self.end = size, self.base + count

    def _publish_hwm(self) -> None:
        raw = _HWM.pack(self.end, self.base, self.size)
        os.pwrite(self._hwm_fd, raw + struct.pack("<I", zlib.crc32(raw)), 0)
        self.durable = self.end
        self.cond.notify_all()

    def append(self, value: bytes | None, key: bytes | None,
               headers: Sequence[tuple[str, bytes]]) -> int:
        with self.cond:
            if self._closed:
                raise LogError(f"{self.dir}: writer is closed")
            frame = _encode(self.end, time.time(), value, key, headers)
            if self.size and self.size + len(frame) > self.segment_bytes:
                self._roll()
            view = memoryview(frame)
            while view:
                view = view[os.write(self.fd, view):]
            self.size += len(frame)
            self.end += 1
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending += 1
            if self._pending >= self.fsync_every:
                self._sync()
            else:
                self.cond.notify_all()  # wake the flusher's timer
            return self.end - 1

    def append_durable(self, records: Sequence[tuple[bytes, bytes | None]]) -> None:
        """Append (value, key) ``records`` and fsync them: all of them or none.

        On an I/O error (disk full, file too large, fsync failed) the segment is cut back to
        where the batch began and `LogError` is raised: no reader saw any of the records (the
        high watermark moves only after the fsync) and no later fsync can publish them, so the
        caller may say "not written" (``POST /interactions``' 503). A batch never straddles
        segments: it rolls first when it would not fit.
        """
        with self.cond:
            if self._closed:
                raise LogError(f"{self.dir}: writer is closed")
            now = time.time()
            blob = b"".join(_encode(self.end + k, now, value, key, ())
                            for k, (value, key) in enumerate(records))
            if not blob:
                return
            if self.size and self.size + len(blob) > self.segment_bytes:
                self._roll()
            size, end, pending = self.size, self.end, self._pending
            try:
                view = memoryview(blob)
                while view:
                    view = view[os.write(self.fd, view):]
                self.size, self.end = size + len(blob), end + len(records)
                self._pending += len(records)
                self._sync()
            except OSError as e:
                self._rollback(size, end, pending)
                raise LogError(f"{self.dir}: append of {len(records)} records failed, none "
                               f"written: {e}") from e

    def _rollback(self, size: int, end: int, pending: int) -> None:
        """Cut the segment back to ``size`` bytes after a failed append (the lock is held)."""
        try:
            os.ftruncate(self.fd, size)
            os.lseek(self.fd, size, os.SEEK_SET)
        except OSError as e:  # the tail cannot be removed: refuse every later write
            self._closed = True
            self.cond.notify_all()
            log.error("locallog: %s: cannot cut a failed append back (%s); writer closed",
                      self.dir, e)
            return
        self.size, self.end, self._pending = size, end, pending

    def _roll(self) -> None:
        os.fsync(self.fd)
        os.close(self.fd)
        self.base, self.size = self.end, 0
        self.fd = os.open(self.dir / _seg_name(self.base), os.O_RDWR | os.O_CREAT, 0o644)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)  # the new file's name is durable before anything points at it
        finally:
            os.close(dfd)

    def redact(self, erased: Callable[[SourceMessage], bool]) -> int:
        """Redact every record for which ``erased`` is true (see the module); return how
        many. Holds the writer for the rewrite: O(log size), for erasures, which are rare."""
        with self.cond:
            if self._closed:
                raise LogError(f"{self.dir}: writer is closed")
            self._sync()
            if self.size:
                self._roll()
                self._publish_hwm()
            total = 0
            for base in _segments(self.dir):
                if base != self.base:
                    total += self._redact_segment(base, erased)
            return total

    def _redact_segment(self, base: int, erased: Callable[[SourceMessage], bool]) -> int:
        path = self.dir / _seg_name(base)
        data = path.read_bytes()
        count, size = _scan(data, base)
        out, pos, changed = [], 0, 0
        for _ in range(count):
            length = _FRAME.unpack_from(data, pos)[0]
            end = pos + _FRAME.size + length
            msg = _decode(data[pos + _FRAME.size:end])
            if msg.value != REDACTED and erased(msg):
                # Offset and timestamp only: a key or a header may hold the erased id too.
                out.append(_encode(msg.offset, msg.timestamp or 0.0, REDACTED, None, ()))
                changed += 1
            else:
                out.append(data[pos:end])
            pos = end
        if not changed:
            return 0
        tmp = path.with_suffix(".redact.tmp")
        with tmp.open("wb") as f:
            f.write(b"".join(out) + data[size:])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(self.dir, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        return changed

    def _sync(self) -> None:
        if self._pending or self.durable != self.end:
            os.fdatasync(self.fd)
            self._pending = 0
            self._publish_hwm()

    def sync(self) -> None:
        with self.cond:
            if not self._closed:
                self._sync()

    def _flush_loop(self) -> None:
        with self.cond:
            while not self._closed:
                if self._pending:
                    due = self._oldest + self.fsync_interval - time.monotonic()
                    if due <= 0:
                        self._sync()
                        continue
                    self.cond.wait(due)
                else:
                    self.cond.wait()

    def close(self) -> None:
        with self.cond:
            if self._closed:
                return
            self._sync()
            self._closed = True
            self.cond.notify_all()
            for fd in (self.fd, self._hwm_fd, self._lock_fd):
                os.close(fd)
        self._flusher.join(timeout=5.0)


# One writer per topic directory in this process, shared by every sink (refcounted).
_WRITERS: dict[str, TopicWriter] = {}
_WRITERS_LOCK = threading.Lock()


class LocalLogSink:
    """Appends to topics under ``root`` (``root/<topic>/``); see `EventSink`.

    Parameters
    ----------
    root : str or Path
        The log directory (``<data-dir>/log`` in embedded mode).
    segment_bytes, fsync_every, fsync_interval
        Segment roll size, and the batched fsync policy (records, seconds).
    """

    def __init__(self, root: str | Path, *, segment_bytes: int = 64 << 20,
                 fsync_every: int = 1000, fsync_interval: float = 0.02) -> None:
        self.root = Path(root)
        self._opts = {"segment_bytes": segment_bytes, "fsync_every": fsync_every,
                      "fsync_interval": fsync_interval}
        self._writers: dict[str, TopicWriter] = {}
        self._lock = threading.Lock()

    def writer(self, topic: str) -> TopicWriter:
        with self._lock:
            w = self._writers.get(topic)
            if w is None:
                d = _topic_dir(self.root, topic)
                d.mkdir(parents=True, exist_ok=True)
                key = str(d.resolve())
                with _WRITERS_LOCK:
                    w = _WRITERS.get(key)
                    if w is None:
                        w = TopicWriter(d, **self._opts)  # type: ignore[arg-type]
                        _WRITERS[key] = w
                    w.refs += 1
                self._writers[topic] = w
            return w

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        self.writer(topic).append(value, key, headers)

    def produce_offset(self, topic: str, value: bytes, key: bytes | None = None,
                       headers: Sequence[tuple[str, bytes]] = ()) -> int:
        """`produce` that returns the record's offset."""
        return self.writer(topic).append(value, key, headers)

    def produce_acknowledged(self, topic: str, messages: Sequence[tuple[bytes, bytes | None]],
                             timeout: float, partition: int | None = None) -> int:
        """Append and fsync ``messages``, all or none (`TopicWriter.append_durable`); 0, or
        `SourceUnavailable` when none was written. ``timeout`` is not needed: the log is local
        and the call returns when the fsync does. The log has one partition: ``partition``
        other than None or 0 is a `ValueError`."""
        if partition not in (None, 0):
            raise ValueError(f"the local log has one partition, not {partition}")
        try:
            self.writer(topic).append_durable(messages)
        except LogError as e:
            raise SourceUnavailable(f"local log: {e}") from e
        return 0

    def flush(self, timeout: float = 10.0) -> int:
        """fsync every topic written through this sink; nothing is ever left undelivered."""
        with self._lock:
            writers = list(self._writers.values())
        for w in writers:
            w.sync()
        return 0

    def redact(self, topic: str, erased: Callable[[SourceMessage], bool]) -> int:
        """`TopicWriter.redact` on ``topic`` (see `Redacting`)."""
        return self.writer(topic).redact(erased)

    def close(self) -> None:
        with self._lock:
            writers, self._writers = self._writers, {}
        for w in writers.values():
            with _WRITERS_LOCK:
                w.refs -= 1
                last = w.refs == 0
                if last:
                    _WRITERS.pop(str(w.dir.resolve()), None)
            if last:
                w.close()
            else:
                w.sync()


class LocalLogSource:
    """Reads the one partition (0) of ``root/<topic>`` from an offset; see `EventSource`.

    ``group`` names a committed-offsets file, as a Kafka group would (`commit`/`committed`).
    """

    def __init__(self, root: str | Path, topic: str, group: str | None = None,
                 poll_interval: float = 0.01) -> None:
        self.dir = _topic_dir(Path(root), topic)
        self.topic, self.group, self.poll_interval = topic, group, poll_interval
        self._next: int | None = None  # None: not assigned yet
        self._explicit = False
        self._seg: int | None = None
        self._pos = 0
        self._ino = 0  # the segment file read: a redaction replaces it (a new inode)

    def partitions(self) -> list[int]:
        return [0]

    def end_offsets(self) -> dict[int, int]:
        return {0: self._hwm()[0]}

    def _hwm(self) -> tuple[int, int, int]:
        for _ in range(100):
            h = read_hwm(self.dir)
            if h[0] >= 0:
                return h
            time.sleep(0.001)
        raise LogError(f"{self.dir}/.hwm stays unreadable")

    def seek(self, offsets: Mapping[int, int]) -> None:
        start = offsets.get(0)
        self._explicit = start is not None
        self._next = int(start) if start is not None else 0
        self._seg = None

    def _locate(self, offset: int) -> bool:
        """Point the reader at ``offset``; False while its segment does not exist yet."""
        bases = [b for b in _segments(self.dir) if b <= offset]
        if not bases:
            return False
        base = bases[-1]
        with open(self.dir / _seg_name(base), "rb") as f:
            ino = os.fstat(f.fileno()).st_ino
            data = f.read()
        pos, cur = 0, base
        while cur < offset and pos + _FRAME.size <= len(data):
            pos += _FRAME.size + _FRAME.unpack_from(data, pos)[0]
            cur += 1
        if cur < offset:
            return False
        self._seg, self._pos, self._ino = base, pos, ino
        return True

    def _read(self, max_messages: int) -> list[SourceMessage]:
        assert self._next is not None
        end, hseg, hpos = self._hwm()
        if self._next >= end:
            return []
        if self._seg is None and not self._locate(self._next):
            return []
        out: list[SourceMessage] = []
        while len(out) < max_messages and self._next < end:
            assert self._seg is not None
            path = self.dir / _seg_name(self._seg)
            with open(path, "rb") as f:
                stat = os.fstat(f.fileno())
                if stat.st_ino != self._ino:  # redacted since: find our offset in the new file
                    f.close()
                    if not self._locate(self._next):
                        return out
                    continue
                size = stat.st_size if self._seg != hseg else hpos
                avail = size - self._pos
                f.seek(self._pos)
                data = f.read(min(avail, _READ_CHUNK))
                if len(data) >= _FRAME.size:  # one record bigger than the chunk: read it whole
                    need = _FRAME.size + _FRAME.unpack_from(data)[0]
                    if len(data) < need <= avail:
                        f.seek(self._pos)
                        data = f.read(need)
            pos = 0
            while len(out) < max_messages and pos + _FRAME.size <= len(data):
                length, crc = _FRAME.unpack_from(data, pos)
                if pos + _FRAME.size + length > len(data):
                    break
                body = data[pos + _FRAME.size:pos + _FRAME.size + length]
                if zlib.crc32(body) != crc:
                    raise LogError(f"{path}: corrupt record at offset {self._next}")
                out.append(_decode(body))
                pos += _FRAME.size + length
                self._next += 1
            self._pos += pos
            if self._seg != hseg and self._pos >= size and self._next < end:
                if not (self.dir / _seg_name(self._next)).exists():
                    raise LogError(f"{self.dir}: segment {self._next} is missing")
                self._seg, self._pos = self._next, 0  # a sealed segment read to its end
                self._ino = os.stat(self.dir / _seg_name(self._seg)).st_ino
            elif pos == 0:
                break
        return out

    def poll(self, max_messages: int, timeout: float) -> list[SourceMessage]:
        if self._next is None:
            self.seek({})
        deadline = time.monotonic() + timeout
        while True:
            out = self._read(max_messages)
            if out:
                self._explicit = True
                return out
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            w = _WRITERS.get(str(self.dir.resolve())) if self.dir.exists() else None
            if w is not None:
                with w.cond:
                    if w.durable <= (self._next or 0):
                        w.cond.wait(left)
            else:
                time.sleep(min(left, self.poll_interval))

    def positions(self) -> dict[int, int]:
        """Next offset to read; absent until a message was read or an offset was sought."""
        return {0: self._next} if self._explicit and self._next is not None else {}

    def lag(self) -> int | None:
        if self._next is None:
            return None
        return max(0, self._hwm()[0] - self._next)

    def committed(self) -> dict[int, int]:
        if self.group is None:
            return {}
        try:
            raw = json.loads((self.dir / ".groups" / f"{self.group}.json").read_text())
        except FileNotFoundError:
            return {}
        return {int(k): int(v) for k, v in raw.items()}

    def commit(self, offsets: Mapping[int, int]) -> bool:
        if self.group is None or not offsets:
            return False
        d = self.dir / ".groups"
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{self.group}.tmp"
        tmp.write_text(json.dumps({str(k): v for k, v in offsets.items()}))
        os.replace(tmp, d / f"{self.group}.json")
        return True

    def close(self) -> None:
        self._seg = None
