"""Kafka behind the `EventSource`/`EventSink` protocols (confluent-kafka / librdkafka).

The source assigns *every* partition of one topic by hand and never lets the group coordinator
move offsets: the trainer stores the next offsets in its snapshots and serving replicas seek to
a snapshot's offsets, so Kafka's own commits are only a courtesy (`commit`, for lag dashboards
and for the trainer's no-snapshot start). A broker that goes away is librdkafka's problem to
reconnect to; we log its errors and keep polling, and raise `SourceUnavailable` only from calls
whose caller cannot go on without an answer (`partitions`, `end_offsets`, `ensure_topics`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streamrec.settings.sections import KafkaSettings

from .source import SourceMessage, SourceUnavailable

__all__ = ["BOUNDED_PREFETCH", "COMPACTED", "IMPRESSIONS", "PARTITIONER", "KafkaSink",
           "KafkaSource", "ensure_topics"]

log = logging.getLogger(__name__)

# How often the source looks for partitions added to the topic while it runs.
_REFRESH_PARTITIONS_S = 30.0
# Errors librdkafka reports while it retries by itself; logged, never raised.
_QUIET = {KafkaError._PARTITION_EOF}
# The producer's own size limit (librdkafka's default is 1 MB). A dead letter keeps the
# original value, which the broker may have accepted up to the topic's max.message.bytes; the
# broker, not the client, decides what fits.
_PRODUCE_MAX_BYTES = 64 * 1024 * 1024
# How long `KafkaSink.produce_acknowledged` waits, past its timeout, for the delivery reports
# of messages librdkafka gives up (it looks for timed-out messages about once a second).
_REPORT_GRACE_S = 3.0


#: The librdkafka partitioner of every producer of ours: Kafka's Java default (murmur2 of the
#: key, toPositive, modulo the partitions), random for a null key. Application producers on
#: librdkafka clients set it too (docs/trainer.md, "Partitions").
PARTITIONER = "murmur2_random"


#: Consumer properties that bound librdkafka's read-ahead, for a consumer in every serving
#: worker. By default it prefetches up to 100k messages or 64 MB per partition (measured:
#: +41 MB private per process on a 200k-message backlog; bounded: +3 to +7 MB). A small queue
#: alone made catching up 8x slower (10 s for 200k messages): librdkafka then waits
#: ``fetch.queue.backoff.ms`` (1 s by default) each time the queue is full; at 10 ms the same
#: catch-up takes 0.4 s, against 1.2 s with the defaults.
BOUNDED_PREFETCH: dict[str, object] = {
    "queued.min.messages": 2000,
    "queued.max.messages.kbytes": 2048,
    "fetch.max.bytes": 1048576,
    "max.partition.fetch.bytes": 1048576,
    "fetch.queue.backoff.ms": 10,
}


def _log_error(err: KafkaError) -> None:
    if err.code() in _QUIET:
        return
    level = logging.ERROR if err.fatal() else logging.WARNING
    log.log(level, "kafka: %s", err.str(), extra={"kafka_code": err.name()})


class KafkaSource:
    """Reads all partitions of ``topic`` from explicit offsets; see `EventSource`.

    Parameters
    ----------
    settings : KafkaSettings
        Bootstrap servers and security settings (``Config.kafka``).
    topic : str
        The topic to read.
    group : str, optional
        Consumer group id, used only by `committed`/`commit`; a private one if not given.
    tuning : mapping, optional
        Extra librdkafka consumer properties, applied last (e.g. `BOUNDED_PREFETCH`).
    only : collection of int, optional
        Read only these partitions (a serving group's, ``core/groups.py``); every partition,
        present and added later, when None. A listed partition the topic lacks is not read.
    expected : int, optional
        The partition count the reader relies on (a serving group's ``topic_partitions``):
        every `seek` logs an ERROR while the topic has another.
    """

    def __init__(self, settings: KafkaSettings, topic: str, group: str | None = None,
                 tuning: Mapping[str, object] | None = None,
                 only: Collection[int] | None = None, expected: int | None = None) -> None:
        self.topic = topic
        self.group = group
        self.only = None if only is None else frozenset(only)
        self.expected = expected
        conf: dict[str, object] = dict(settings.client_config())
        conf.update({
            "group.id": group or f"streamrec-reader-{uuid.uuid4().hex[:12]}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
            "error_cb": _log_error,
            "logger": log,
        })
        conf.update(tuning or {})
        self._consumer = Consumer(conf)
        self._positions: dict[int, int] = {}
        self._assigned: list[int] = []
        self._checked_at = 0.0

    # --- metadata ---------------------------------------------------------------------------

    def partitions(self, timeout: float = 10.0) -> list[int]:
        """The topic's partitions; `SourceUnavailable` if the broker or topic cannot be seen."""
        try:
            md = self._consumer.list_topics(topic=self.topic, timeout=timeout)
        except KafkaException as e:
            raise SourceUnavailable(f"kafka: cannot list topic {self.topic}: {e}") from e
        t = md.topics.get(self.topic)
        if t is None or t.error is not None or not t.partitions:
            why = t.error if t is not None else "missing"
            raise SourceUnavailable(f"kafka: topic {self.topic} unavailable: {why}")
        return sorted(t.partitions)

    def _watermarks(self, partition: int, timeout: float) -> tuple[int, int]:
        low, high = self._consumer.get_watermark_offsets(
            TopicPartition(self.topic, partition), timeout=timeout, cached=False)
        return int(low), int(high)

    def end_offsets(self, timeout: float = 10.0) -> dict[int, int]:
        """The high watermark (the next offset to be written) of every partition."""
        try:
            return {p: self._watermarks(p, timeout)[1] for p in self.partitions(timeout)}
        except KafkaException as e:
            raise SourceUnavailable(f"kafka: cannot read end offsets of {self.topic}: {e}") from e

    def offsets_for_time(self, at: float, timeout: float = 10.0) -> dict[int, int]:
        """Per partition, the first offset whose timestamp is at or after ``at`` (seconds
        since the epoch); the end of a partition with none (Kafka's ``offsets_for_times``)."""
        try:
            parts = self.partitions(timeout)
            got = self._consumer.offsets_for_times(
                [TopicPartition(self.topic, p, int(at * 1000)) for p in parts], timeout=timeout)
            return {tp.partition: tp.offset if tp.offset >= 0
                    else self._watermarks(tp.partition, timeout)[1] for tp in got}
        except KafkaException as e:
            raise SourceUnavailable(f"kafka: cannot find offsets by time in {self.topic}: "
                                    f"{e}") from e

    def committed(self, timeout: float = 10.0) -> dict[int, int]:
        """The group's committed offsets (partitions without a commit are left out)."""
        if self.group is None:
            return {}
        tps = [TopicPartition(self.topic, p) for p in self.partitions(timeout)]
        try:
            got = self._consumer.committed(tps, timeout=timeout)
        except KafkaException as e:
            raise SourceUnavailable(f"kafka: cannot read committed offsets: {e}") from e
        return {tp.partition: tp.offset for tp in got if tp.offset >= 0}

    def commit(self, offsets: Mapping[int, int]) -> bool:
        """Commit ``offsets`` for the group, best effort: False (and a log line) on failure."""
        if self.group is None or not offsets:
            return False
        tps = [TopicPartition(self.topic, p, o) for p, o in sorted(offsets.items())]
        try:
            self._consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as e:
            log.warning("kafka: commit of %s failed: %s", dict(offsets), e)
            return False
        return True

    # --- reading ----------------------------------------------------------------------------

    def seek(self, offsets: Mapping[int, int]) -> None:
        """Read every partition read (``only``) from ``offsets``: the first call assigns them,
        listed ones at their offset and the others at the beginning; a later call moves the
        listed partitions whose offset differs from the position (skip ahead, read again) and
        assigns new ones, and leaves every other partition where it is. Offsets of partitions
        this source does not read are ignored."""
        every = self.partitions()
        if self.expected is not None and len(every) != self.expected:
            # A serving group owns users by the configured count (core/groups.py): with more
            # partitions, some users' events are read by no group; with fewer, some never come.
            log.error("kafka: topic %s has %d partitions, expected %d (topic_partitions): "
                      "users are owned by the expected count", self.topic, len(every),
                      self.expected)
        parts = self._read(every)
        if not self._assigned:
            self._assign(parts, offsets)
            return
        moved = [p for p in parts if p in self._assigned and p in offsets
                 and int(offsets[p]) != self._positions.get(p)]
        new = [p for p in parts if p not in self._assigned]
        if moved:  # librdkafka refuses to assign a partition twice: take it back first
            self._consumer.incremental_unassign([TopicPartition(self.topic, p) for p in moved])
            self._assigned = [p for p in self._assigned if p not in moved]
        if moved or new:
            self._assign(moved + new, offsets)

    def _read(self, partitions: Iterable[int]) -> list[int]:
        return [p for p in partitions if self.only is None or p in self.only]

    def _assign(self, partitions: Iterable[int], offsets: Mapping[int, int]) -> None:
        tps = []
        for p in partitions:
            start = offsets.get(p)
            tps.append(TopicPartition(self.topic, p,
                                      OFFSET_BEGINNING if start is None else int(start)))
            if start is not None:
                self._positions[p] = int(start)
            else:
                self._positions.pop(p, None)
        if self._assigned:
            self._consumer.incremental_assign(tps)
            self._assigned = sorted({*self._assigned, *(tp.partition for tp in tps)})
        else:
            self._consumer.assign(tps)
            self._assigned = sorted(tp.partition for tp in tps)
        self._checked_at = time.monotonic()

    def _refresh(self) -> None:
        """Pick up partitions added to the topic since the last look (from their beginning)."""
        self._checked_at = time.monotonic()
        try:
            new = [p for p in self._read(self.partitions(timeout=2.0))
                   if p not in self._assigned]
        except SourceUnavailable as e:
            log.warning("%s; will look again", e)
            return
        if new:
            log.info("kafka: topic %s gained partitions %s", self.topic, new)
            self._assign(new, {})

    def poll(self, max_messages: int, timeout: float) -> list[SourceMessage]:
        """Up to ``max_messages`` messages; an empty list when none arrive within ``timeout``."""
        if not self._assigned:
            try:
                self.seek({})
            except SourceUnavailable as e:
                log.warning("%s; retrying", e)
                time.sleep(min(timeout, 1.0))
                return []
        elif time.monotonic() - self._checked_at > _REFRESH_PARTITIONS_S:
            self._refresh()
        try:
            raw = self._consumer.consume(num_messages=max_messages, timeout=timeout)
        except KafkaException as e:  # e.g. all brokers down: librdkafka keeps reconnecting
            log.warning("kafka: consume failed: %s", e)
            return []
        out: list[SourceMessage] = []
        append, positions = out.append, self._positions
        for msg in raw:
            err = msg.error()
            if err is not None:
                _log_error(err)
                continue
            item = _to_source(msg)
            append(item)
            positions[item.partition] = item.offset + 1
        return out

    def positions(self) -> dict[int, int]:
        """Next offset per partition; partitions not read yet and seeked to nothing are absent
        (they start at the beginning, which is what `seek` does with a missing partition)."""
        return dict(self._positions)

    def lag(self) -> int | None:
        """Messages between our positions and the end of each partition; None if unknown."""
        if not self._assigned:
            return None
        total = 0
        try:
            for p in self._assigned:
                low, high = self._watermarks(p, timeout=1.0)
                pos = self._positions.get(p, low)
                total += max(0, high - max(pos, low))
        except KafkaException as e:
            log.debug("kafka: lag unknown: %s", e)
            return None
        return total

    def close(self) -> None:
        try:
            self._consumer.close()
        except (KafkaException, RuntimeError) as e:  # RuntimeError: already closed
            log.debug("kafka: close: %s", e)


def _to_source(msg: Message) -> SourceMessage:
    # The hot path of ingest: one call per consumed message, kept to the C accessors.
    ts_type, ts_ms = msg.timestamp()
    # Consumed headers are a list of (str, bytes | None) or None; the stub allows a dict too.
    raw_headers: list[tuple[str, str | bytes | None]] | None = msg.headers()  # type: ignore[assignment]
    value, key = msg.value(), msg.key()
    return SourceMessage(
        msg.partition(),  # type: ignore[arg-type]  # set on every non-error message
        msg.offset(),  # type: ignore[arg-type]
        value.encode() if isinstance(value, str) else value,
        key.encode() if isinstance(key, str) else key,
        None if ts_type == TIMESTAMP_NOT_AVAILABLE else ts_ms / 1000.0,
        () if not raw_headers else tuple((k, _as_bytes(v) or b"") for k, v in raw_headers),
    )


def _as_bytes(raw: str | bytes | None) -> bytes | None:
    return raw.encode() if isinstance(raw, str) else raw


class _Tally:
    """The delivery reports of one `KafkaSink.produce_acknowledged` call. librdkafka runs the
    callbacks in whichever thread polls the shared producer, so the counts take a lock."""

    __slots__ = ("errors", "failed", "lock", "pending")

    def __init__(self, n: int) -> None:
        self.pending, self.failed = n, 0
        self.errors: dict[str, int] = {}
        self.lock = threading.Lock()

    def report(self, err: KafkaError | None, _msg: Message) -> None:
        with self.lock:
            self.pending -= 1
            if err is not None:
                self.failed += 1
                self.errors[err.name()] = self.errors.get(err.name(), 0) + 1


class KafkaSink:
    """An idempotent producer; see `EventSink`. Delivery failures are counted and logged.

    Parameters
    ----------
    settings : KafkaSettings
        Bootstrap servers and security settings (``Config.kafka``).
    linger_ms : int
        librdkafka's ``linger.ms``: how long a message waits for others to share its batch.
    delivery_timeout : float, optional
        Seconds after which librdkafka gives a message up for good (``message.timeout.ms``,
        alias ``delivery.timeout.ms``): the bound behind `produce_acknowledged`'s promise
        that a message not acknowledged is never sent again. None: librdkafka's default
        (300 s), for the trainer's dead letters and notifications, which may wait out an
        outage.
    """

    def __init__(self, settings: KafkaSettings, linger_ms: int = 5,
                 delivery_timeout: float | None = None) -> None:
        conf: dict[str, object] = dict(settings.client_config())
        conf.update({
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": linger_ms,
            "message.max.bytes": _PRODUCE_MAX_BYTES,
            # A keyed message lands where a Java client puts it (core/events/partitioning.py):
            # librdkafka's default (consistent_random, a CRC32) agrees on ~12% of keys.
            "partitioner": PARTITIONER,
            "error_cb": _log_error,
            "logger": log,
        })
        if delivery_timeout is not None:
            ms = max(1, round(delivery_timeout * 1000))
            # A produce request is given up with its messages, not 30 s later (its default).
            conf.update({"message.timeout.ms": ms, "request.timeout.ms": min(ms, 30_000)})
        self.delivery_timeout = delivery_timeout
        self._producer = Producer(conf)
        self.failed = 0  # messages whose delivery finally failed

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.failed += 1
            log.error("kafka: delivery to %s failed: %s", msg.topic(), err.str())

    def produce(self, topic: str, value: bytes, key: bytes | None = None,
                headers: Sequence[tuple[str, bytes]] = ()) -> None:
        """Queue one message; waits (serving delivery reports) while the local queue is full.

        A message the client refuses at once (too large, unknown topic) raises
        `SourceUnavailable`, which every caller handles, instead of crashing it.
        """
        self._produce(topic, value, key, headers, self._delivered)

    def _produce(self, topic: str, value: bytes, key: bytes | None,
                 headers: Sequence[tuple[str, bytes]],
                 on_delivery: Callable[[KafkaError | None, Message], None],
                 partition: int | None = None) -> None:
        # -1: librdkafka's RD_KAFKA_PARTITION_UA, "let the partitioner choose".
        where = -1 if partition is None else partition
        for _ in range(600):
            try:
                self._producer.produce(topic, value=value, key=key,
                                       headers=list(headers) or None,
                                       on_delivery=on_delivery, partition=where)
            except BufferError:
                self._producer.poll(0.1)
                continue
            except KafkaException as e:
                self.failed += 1
                raise SourceUnavailable(f"kafka: cannot produce to {topic}: {e}") from e
            self._producer.poll(0)
            return
        raise SourceUnavailable(f"kafka: producer queue for {topic} stayed full for 60 s")

    def produce_acknowledged(self, topic: str, messages: Sequence[tuple[bytes, bytes | None]],
                             timeout: float, partition: int | None = None) -> int:
        """Produce ``messages`` and wait for their own delivery reports; see `EventSink`.

        Only this call's messages are counted (a per-call tally of delivery callbacks), never
        the other requests' that share the producer. Every message is given up by librdkafka
        ``delivery_timeout`` after it was queued (``message.timeout.ms``), so after that the
        producer never sends it again; this waits up to ``timeout`` plus `_REPORT_GRACE_S`
        for the reports (librdkafka scans for timed-out messages about once a second). Its
        caveat: a message already on the wire when the broker failed is "possibly persisted"
        (librdkafka's message status), and may be in the log although it is counted here.
        """
        if self.delivery_timeout is None or self.delivery_timeout > timeout:
            raise ValueError("produce_acknowledged needs a sink whose delivery_timeout "
                             f"({self.delivery_timeout}) is at most the wait ({timeout})")
        tally = _Tally(len(messages))
        for k, (value, key) in enumerate(messages):
            try:
                self._produce(topic, value, key, (), tally.report, partition)
            except SourceUnavailable as e:
                if not k:
                    raise
                # The ones queued before still go out (or time out): wait for them, so the
                # count stays "never sent again"; the rest was never queued.
                log.warning("%s; %d of %d messages not queued", e, len(messages) - k,
                            len(messages))
                with tally.lock:
                    tally.pending -= len(messages) - k
                    tally.failed += len(messages) - k
                break
        deadline = time.monotonic() + timeout + _REPORT_GRACE_S
        while tally.pending and time.monotonic() < deadline:
            self._producer.poll(0.05)
        if tally.failed or tally.pending:
            self.failed += tally.failed
            log.warning("kafka: %d of %d messages to %s not acknowledged within %.1f s "
                        "(errors %s)%s", tally.failed + tally.pending, len(messages), topic,
                        timeout, tally.errors,
                        f" ({tally.pending} not reported yet)" if tally.pending else "")
        return tally.failed + tally.pending

    def flush(self, timeout: float = 10.0) -> int:
        return int(self._producer.flush(timeout))

    def close(self) -> None:
        left = self.flush(10.0)
        if left:
            log.warning("kafka: %d messages undelivered at close", left)


#: Topic settings of a compacted topic: the newest message per key is kept for good.
COMPACTED: dict[str, str] = {"cleanup.policy": "compact"}
#: The impressions topic keeps a day (the longest rotation window), in hour-long segments so
#: the retention takes effect by the hour.
IMPRESSIONS: dict[str, str] = {"retention.ms": str(86_400_000), "segment.ms": str(3_600_000)}


def ensure_topics(settings: KafkaSettings, names: Iterable[str], partitions: int = 1,
                  replication: int = 1, timeout: float = 30.0,
                  topic_configs: Mapping[str, Mapping[str, str]] | None = None,
                  topic_partitions: Mapping[str, int] | None = None) -> list[str]:
    """Create the topics in ``names`` that do not exist yet; return the ones created.

    ``topic_configs`` gives topic settings (e.g. `COMPACTED`) for some of them, at creation;
    ``topic_partitions`` their partition count where not ``partitions``. An existing topic is
    left as it is (adding partitions would move users between shards).

    A topic created concurrently by someone else counts as existing. `SourceUnavailable` if the
    cluster cannot be reached or refuses for another reason.
    """
    conf: dict[str, object] = {**settings.client_config(), "logger": log}
    admin = AdminClient(conf)  # type: ignore[arg-type]
    wanted = sorted(set(names))
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as e:
        raise SourceUnavailable(f"kafka: cannot list topics: {e}") from e
    missing = [n for n in wanted if n not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=(topic_partitions or {}).get(n, partitions),
                  replication_factor=replication,
                  config=dict((topic_configs or {}).get(n, {}))) for n in missing],
        request_timeout=timeout)
    created = []
    for name, fut in futures.items():
        try:
            fut.result(timeout=timeout)
            created.append(name)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise SourceUnavailable(f"kafka: cannot create topic {name}: {e}") from e
    if created:
        log.info("kafka: created topics %s", created)
    return sorted(created)
