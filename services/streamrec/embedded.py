"""`streamrec run`: the trainer and the server in one process, on the local log and local snapshots.

The laptop mode. Everything lives under ``--data-dir``: ``log/`` (the durable local event log,
`adapters.locallog`, standing in for Kafka), ``snapshots/`` (a `LocalStore`, standing in for
S3), ``cache/`` and ``work/``. The trainer runs in a thread on the same `Trainer` class as
`streamrec trainer`; the Flask app from `serving.create_app` is served by waitress in the main
thread, its fold-in reading the same log. gunicorn does not fit here: its arbiter owns the main
process and forks workers, so a trainer thread in the master is unsupported and one per worker
would train N times; waitress is a production WSGI server that runs in-process with threads.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from dataclasses import replace
from pathlib import Path
from types import FrameType

from streamrec.adapters.datalock import Busy, DataDirLock, is_locked, port_free
from streamrec.config import Config, ConfigError
from streamrec.settings import BY_NAME, SAME, SETTINGS
from streamrec.settings.flags import add_service_arguments, grace_seconds

log = logging.getLogger("streamrec.embedded")

# Defaults that make the demo snappy (the table's ``run_default``: from_beginning because a
# log without a snapshot yet is all unseen events); a flag or STREAMREC_* variable still wins.
# The paths (store, cache_dir) are placed under --data-dir by `embedded_config`.
_PATHS = ("store", "cache_dir")
EMBEDDED_DEFAULTS: dict[str, object] = {
    r.name: r.run_default for r in SETTINGS
    if r.config and r.run_default is not SAME and r.name not in _PATHS}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # --help shows what `run` really uses: the embedded defaults, the paths under --data-dir.
    add_service_arguments(parser, "run", {
        r.name: r.run_default for r in SETTINGS if r.run_default is not SAME})
    parser.add_argument("--grace", type=grace_seconds, default=10.0,
                        help="seconds a running fit may finish on shutdown (default 10)")


def embedded_config(args: argparse.Namespace, env: dict[str, str] | None = None) -> Config:
    """`Config.load` with the embedded defaults and paths under ``data_dir``."""
    env = dict(os.environ) if env is None else env
    config = Config.load(args, env, service="run")

    def given(name: str) -> bool:  # by a flag or variable `run` reads (Config.load's rule)
        row = BY_NAME[name]
        if "run" not in row.services:
            return False
        env_name = row.env_name
        return getattr(args, name, None) is not None or bool(env_name and env.get(env_name))

    overrides = {k: v for k, v in EMBEDDED_DEFAULTS.items() if not given(k)}
    data = Path(config.data_dir)
    if not given("store"):
        overrides["store"] = str(data / "snapshots")
    if not given("cache_dir"):
        overrides["cache_dir"] = str(data / "cache")
    config = replace(config, **overrides)  # type: ignore[arg-type]
    config.validate()
    if config.store.startswith("s3://"):
        raise ConfigError("store", "embedded mode keeps snapshots in a local directory")
    return config


def claim(config: Config) -> DataDirLock:
    """The data directory's lock, after checking that neither it nor the port is in use, before
    anything under the directory is created or changed; `ConfigError` (exit 2, one line)
    naming ``data_dir`` or ``bind`` otherwise."""
    data = Path(config.data_dir)
    if data.exists() and not data.is_dir():
        raise ConfigError("data_dir", f"{data} is not a directory")
    busy = is_locked(data)
    if busy:
        raise ConfigError("data_dir", busy)
    taken = port_free(config.bind)
    if taken:
        raise ConfigError("bind", taken)
    try:
        return DataDirLock(data).acquire()
    except Busy as e:  # another one started in between
        raise ConfigError("data_dir", str(e)) from None
    except OSError as e:
        raise ConfigError("data_dir", f"cannot create {data}: {e.strerror or e}") from None


def run(args: argparse.Namespace) -> int:
    config = embedded_config(args)
    lock = claim(config)
    try:
        return _run(args, config)
    finally:
        lock.release()


def _run(args: argparse.Namespace, config: Config) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    log.info("streamrec run: %s", config.redacted("run"))  # its own settings, secrets as ***
    # Heavy imports only when the service really runs.
    import waitress.server

    from streamrec.adapters.locallog import LocalLogSink, LocalLogSource
    from streamrec.adapters.stores import open_store
    from streamrec.serving.app import create_app
    from streamrec.trainer.service import Trainer

    data = Path(config.data_dir)
    log_dir = data / "log"
    for field, d in (("data_dir", log_dir), ("store", Path(config.store)),
                     ("data_dir", data / "work")):
        try:
            d.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # a bad flag is exit 2 naming it, not a traceback
            raise ConfigError(field, f"cannot create {d}: {e.strerror or e}") from e
    store = open_store(config.store)
    sink = LocalLogSink(log_dir)
    for topic in (config.topic, config.dlq, config.items, config.impressions,
                  *([config.notify] if config.notify else [])):
        sink.writer(topic)  # recover torn tails now, before anyone reads

    stop = threading.Event()
    trainer = Trainer(config, LocalLogSource(log_dir, config.topic, group=config.group), sink,
                      store, workdir=data / "work",
                      items=LocalLogSource(log_dir, config.items))

    def train() -> None:
        try:
            trainer.run(stop, grace=args.grace)
        except Exception:  # the process must not serve on with a dead trainer
            log.exception("trainer failed; shutting down")
            stop.set()
            os.kill(os.getpid(), signal.SIGTERM)

    notify = config.notify
    app = create_app(
        config, store=store, sink=sink,
        source_factory=lambda _offsets: LocalLogSource(log_dir, config.topic),
        notify_factory=(lambda: LocalLogSource(log_dir, notify)) if notify else None,
        items_factory=lambda: LocalLogSource(log_dir, config.items),
        impressions_factory=lambda: LocalLogSource(log_dir, config.impressions))
    service = app.extensions["streamrec"]
    host, _, port = config.bind.rpartition(":")
    try:
        server = waitress.server.create_server(app, host=host, port=int(port),
                                               threads=config.threads,
                                               channel_timeout=max(config.timeout, 1.0))
    except OSError as e:  # taken, or not an address of this machine
        raise ConfigError("bind", f"cannot listen on {config.bind}: {e.strerror or e}") from e

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()
        raise SystemExit(0)  # waitress' loop catches it and shuts its threads down

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=train, name="trainer", daemon=True)
    thread.start()
    service.start()
    eff = server.effective_host, server.effective_port
    log.info("data in %s; serving on http://%s:%s", data.resolve(), *eff)
    print(f"streamrec run: listening on http://{eff[0]}:{eff[1]}", flush=True)
    try:
        server.run()
    finally:
        stop.set()
        server.close()
        thread.join(args.grace + 15.0)
        service.stop()  # closes the sink too
        sink.close()
    return 0 if not thread.is_alive() else 1
