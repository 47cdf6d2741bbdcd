"""`streamrec trainer`: the Kafka + snapshot-store wiring around `Trainer`, and its signals.

Also accepts the original service's positional form
``streamrec trainer TOPIC RETRAIN_EVERY WINDOW [-b/--from-beginning]``; flags and
``STREAMREC_*`` variables (docs/configuration.md) cover everything else. SIGTERM or SIGINT
stops the loop; a running fit gets a grace period, then the process exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

from streamrec.config import Config, ConfigError
from streamrec.settings.flags import add_service_arguments, grace_seconds

__all__ = ["add_arguments", "run"]

log = logging.getLogger("streamrec.trainer")

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pos_topic", nargs="?", metavar="TOPIC",
                        help="the interactions topic (same as --topic)")
    parser.add_argument("pos_retrain_every", nargs="?", metavar="RETRAIN_EVERY",
                        help="retrain after this many events (same as --retrain-every)")
    parser.add_argument("pos_window", nargs="?", metavar="WINDOW",
                        help="sliding window size in events (same as --window-size)")
    add_service_arguments(parser, "trainer")  # the settings table's "trainer" rows
    parser.add_argument("-b", dest="from_beginning", action="store_const", const=True,
                        default=None, help="same as --from-beginning")
    parser.add_argument("--grace", type=grace_seconds, default=30.0,
                        help="seconds a running fit may finish after SIGTERM (default 30)")


def _config(args: argparse.Namespace) -> Config:
    positional: set[str] = set()
    for attr, name in (("pos_topic", "topic"), ("pos_retrain_every", "retrain_every"),
                       ("pos_window", "window_size")):
        value = getattr(args, attr, None)
        if value is None:
            continue
        if getattr(args, name, None) is not None:
            raise ConfigError(name, "given both as a positional argument and as a flag")
        setattr(args, name, value)
        positional.add(name)
    try:
        return Config.load(args, service="trainer")
    except ConfigError as e:
        if e.field in positional and e.source.startswith("--"):  # it came positionally
            raise ConfigError(e.field, e.message, f"positional {e.field.upper()}") from None
        raise


class JsonFormatter(logging.Formatter):
    """One JSON object per line; a message that is itself a JSON object is merged in."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        message = record.getMessage()
        try:
            parsed = json.loads(message) if message.startswith("{") else None
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            out.update(parsed)
        else:
            out["msg"] = message
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def run(args: argparse.Namespace) -> int:
    config = _config(args)
    if config.training_engine == "spark":
        from streamrec.adapters.spark import missing

        problem = missing()
        if problem is not None:  # at start, not at the first retrain minutes later
            raise ConfigError("training_engine", f"spark {problem}")
    _setup_logging()
    # Heavy imports only when the trainer really runs (implicit, confluent-kafka, boto3).
    from streamrec.adapters.kafka import (
        COMPACTED,
        IMPRESSIONS,
        KafkaSink,
        KafkaSource,
        ensure_topics,
    )
    from streamrec.adapters.source import SourceUnavailable
    from streamrec.adapters.stores import LocalStore, StoreError, open_store

    from .metrics import MetricsServer, TrainerMetrics
    from .policy import backoff
    from .service import Trainer

    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("%s", json.dumps({"event": "start", "config": config.redacted("trainer")},
                              default=str))

    try:
        store = open_store(config.store, config.s3)
        if isinstance(store, LocalStore):
            store.check_writable()
    except (ValueError, StoreError) as e:
        raise ConfigError("store", str(e)) from e
    topics = [config.topic, config.dlq, config.items, config.impressions] + (
        [config.notify] if config.notify else [])
    attempt = 0
    while not stop.is_set():
        try:
            # The items topic keeps the newest record per item (keyed by item id) for good.
            # Impressions (what users were shown, serving/placements/) are kept one day.
            ensure_topics(config.kafka, topics, topic_configs={config.items: COMPACTED,
                                                               config.impressions: IMPRESSIONS},
                          topic_partitions={config.topic: config.topic_partitions or 1})
            break
        except SourceUnavailable as e:
            log.warning("kafka not ready (%s); retrying", e)
            stop.wait(backoff(attempt))
            attempt += 1

    metrics = TrainerMetrics()
    server = MetricsServer(metrics, port=config.metrics_port).start()
    log.info("%s", json.dumps({"event": "metrics", "port": server.port}))
    source = KafkaSource(config.kafka, config.topic, group=config.group)
    sink = KafkaSink(config.kafka)
    trainer = Trainer(config, source, sink, store, metrics=metrics,
                      items=KafkaSource(config.kafka, config.items))
    started = time.monotonic()
    try:
        trainer.run(stop, grace=args.grace)
    finally:
        server.stop()
        sink.close()
    log.info("%s", json.dumps({"event": "stop", "published": len(trainer.published),
                               "version": trainer.version,
                               "uptime_s": round(time.monotonic() - started, 1)}))
    return 0
