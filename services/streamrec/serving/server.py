"""gunicorn, run programmatically: `streamrec serve` never uses Flask's debug server.

The app is built in each worker (no ``preload_app``) and its background threads (reloader,
notify listener, fold-in consumer) start in ``post_worker_init``, after the fork: librdkafka
and boto3 threads do not survive a fork, and each worker owns its state. Workers map the same
snapshot files, so the factors' pages are shared in the page cache.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from streamrec.config import Config
from streamrec.settings.rows import SERVING_GRACEFUL_S

log = logging.getLogger(__name__)


def build_production_app(config: Config) -> Flask:
    """The app wired to Kafka (fold-in, ingest, notify) and the configured store."""
    from streamrec.adapters.kafka import BOUNDED_PREFETCH, KafkaSink, KafkaSource

    from .app import create_app
    from .http.guards import INGEST_TIMEOUT_S

    layout = config.groups

    def source_factory(offsets: Any) -> KafkaSource:
        # Bounded read-ahead: every worker runs one, and librdkafka's default queue (up to
        # 64 MB per partition) would be most of what an extra worker costs on a backlog.
        # A serving group reads its own partitions only (core/groups.py).
        return KafkaSource(config.kafka, config.topic, tuning=BOUNDED_PREFETCH,
                           only=layout.owned if layout.sharded else None,
                           expected=layout.partitions if layout.sharded else None)

    notify = config.notify
    return create_app(
        config,
        source_factory=source_factory,
        sink=KafkaSink(config.kafka, delivery_timeout=INGEST_TIMEOUT_S),
        notify_factory=(lambda: KafkaSource(config.kafka, notify, tuning=BOUNDED_PREFETCH))
        if notify else None,
        items_factory=lambda: KafkaSource(config.kafka, config.items, tuning=BOUNDED_PREFETCH),
        impressions_factory=lambda: KafkaSource(config.kafka, config.impressions,
                                                tuning=BOUNDED_PREFETCH),
    )


def share_imports() -> None:
    """Import the heavy modules in the gunicorn master, before the fork, and freeze them.

    Each worker then starts with numpy, scipy, Flask, gunicorn's gthread worker, librdkafka
    and the app's code (the whole serving package) already in pages it shares copy-on-write
    with its siblings instead of importing its own copies. Only imports: no client, thread or
    app is created here (those do not survive a fork and are built per worker).

    Importing the serving package creates its metric objects here. prometheus-client gives a
    forked process its own values (it sees the pid change), so what is left of the master are
    its files in ``PROMETHEUS_MULTIPROC_DIR``: the live gauges' files are removed at once
    (``mark_process_dead``), else the master's never-updated values (a 0 ``created_at``)
    would join the workers' ``livemin``/``livemax``/``livesum``; its counters stay at 0.

    ``gc.freeze()`` then moves every object so far out of the collector's reach: a full
    collection in a worker writes to the header of every object it visits, which copied all
    the master's ~24 MB of objects into each worker (measured with a forked child).
    """
    import concurrent.futures  # noqa: F401
    import gc

    import confluent_kafka  # noqa: F401
    import flask  # noqa: F401
    import gunicorn.workers.gthread  # noqa: F401
    import numpy  # noqa: F401
    import prometheus_client  # noqa: F401
    import prometheus_client.multiprocess  # noqa: F401
    import scipy.sparse  # noqa: F401
    import werkzeug.exceptions  # noqa: F401

    from streamrec.adapters import snapshotfiles, source, stores  # noqa: F401
    from streamrec.core import events  # noqa: F401
    from streamrec.core.scoring import model  # noqa: F401
    from streamrec.core.snapshot import arrays as snapshot  # noqa: F401
    from streamrec.serving import app  # noqa: F401  (and with it http, live, feeds, metrics)

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
    gc.collect()
    gc.freeze()


def heartbeat_dir(candidate: str = "/dev/shm") -> str | None:
    """A memory-backed directory for gunicorn's worker heartbeat file, if there is one.

    A gthread worker touches that file (``os.utime``) on every turn of its loop, i.e. about
    once per request under load: 7% of a worker's samples in a py-spy profile with the default
    temp dir on the container's disk-backed filesystem (gunicorn's docs advise ``/dev/shm``).
    """
    return candidate if os.path.isdir(candidate) and os.access(candidate, os.W_OK) else None


def _post_worker_init(worker: Any) -> None:
    app = worker.wsgi
    app.extensions["streamrec"].start()


def _worker_exit(server: Any, worker: Any) -> None:
    service = worker.wsgi.extensions.get("streamrec") if hasattr(worker, "wsgi") else None
    if service is not None:
        service.stop()


def _child_exit(server: Any, worker: Any) -> None:
    # prometheus-client directly: importing serving.metrics here would create the metric
    # objects in the master (see `share_imports`).
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


class Server(BaseApplication):  # type: ignore[misc]
    """gunicorn with the ``gthread`` worker, settings from `Config`."""

    def __init__(self, config: Config) -> None:
        self.config_ = config
        super().__init__()

    def load_config(self) -> None:
        c = self.config_
        settings = {
            "bind": c.bind,
            "workers": c.workers,
            "threads": c.threads,
            "worker_class": "gthread",
            "timeout": int(max(1, c.timeout)),
            "graceful_timeout": SERVING_GRACEFUL_S,
            "accesslog": None,
            "preload_app": False,
            "post_worker_init": _post_worker_init,
            "worker_exit": _worker_exit,
            "child_exit": _child_exit,
            "proc_name": "streamrec-serve",
        }
        shm = heartbeat_dir()
        if shm is not None:
            settings["worker_tmp_dir"] = shm
        for key, value in settings.items():
            self.cfg.set(key, value)
        share_imports()

    def load(self) -> Flask:
        return build_production_app(self.config_)
