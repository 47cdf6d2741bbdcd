"""``streamrec serve``: the serving replica (gunicorn, gthread workers) from one `Config`.

Prometheus metrics of all workers are merged through ``PROMETHEUS_MULTIPROC_DIR``; when it is
not set, a private directory is made for this run. It must be set before prometheus-client is
imported, hence the imports inside `run`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path

from streamrec import logthrottle
from streamrec.config import Config
from streamrec.settings.flags import add_service_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_service_arguments(parser, "serve")  # the rows of the settings table that name "serve"


def _metrics_dir() -> None:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not path:
        path = tempfile.mkdtemp(prefix="streamrec-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    Path(path).mkdir(parents=True, exist_ok=True)
    for pattern in ("*.db", "online_*.json"):  # values of a previous run's (dead) workers
        for stale in Path(path).glob(pattern):
            stale.unlink()


def run(args: argparse.Namespace) -> int:
    config = Config.load(args, service="serve")
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    # A broker outage repeats one line per reconnect attempt of each client: rate-limited.
    logthrottle.install()
    made_cache = None
    if config.cache_dir is None:  # all workers must share one cache to share pages
        made_cache = tempfile.mkdtemp(prefix="streamrec-cache-")
        os.environ["STREAMREC_CACHE_DIR"] = made_cache
        config = Config.load(args, service="serve")
    _metrics_dir()
    from .server import Server

    logging.getLogger(__name__).info("streamrec serve: %s", config.redacted("serve"))
    try:
        Server(config).run()
    finally:
        if made_cache is not None:
            # Its snapshot may hold ids erased later; a cache dir that was set is pruned by
            # the next start instead (serving/reloader.py).
            shutil.rmtree(made_cache, ignore_errors=True)
    return 0
