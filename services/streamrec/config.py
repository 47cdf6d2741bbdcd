"""One typed, frozen configuration for every streamrec service, parsed once at the edge.

Precedence: command-line flag > ``STREAMREC_*`` environment variable > the default here. Every
default lives in `FIELDS` (mirrored, with comments, in docs/configuration.md and the Helm
values). A bad value raises `ConfigError` naming the field; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from streamrec.core.domains import CONFIG_RANGES, Range
from streamrec.core.events.erasurekey import check_key
from streamrec.core.events.feedback import (
    DEFAULT_WEIGHTS,
    FeedbackError,
    check_table,
    format_table,
    merge_table,
    parse_table,
)
from streamrec.core.origins import parse_origins
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.model import ALSParams

FORMATS = ("auto", "text", "json")
# The scoring defaults live with the scorer (core/scoring/blend.py, core/scoring/itemitem.py), where
# they were tuned.
_SCORING = ScoringParams()
_ITEM_ITEM = ItemItemParams()


class ConfigError(ValueError):
    """An invalid setting. `field` is the config field, `source` where the bad value came from."""

    def __init__(self, field: str, message: str, source: str = "") -> None:
        self.field, self.source, self.message = field, source, message
        where = f" (from {source})" if source else ""
        super().__init__(f"invalid {field}{where}: {message}")


@dataclass(frozen=True)
class Config:
    # Kafka
    bootstrap_servers: str = "127.0.0.1:9092"
    topic: str = "interactions"
    group: str = "streamrec-trainer"
    format: str = "auto"
    min_weight: float | None = None
    # Feedback types (core/events/feedback.py): type -> weight; a given table updates the defaults.
    feedback_weights: tuple[tuple[str, float], ...] = tuple(DEFAULT_WEIGHTS.items())
    dlq_topic: str | None = None  # None: "<topic>.dlq"
    notify_topic: str | None = None  # None: "<topic>.snapshots"; "" disables
    items_topic: str | None = None  # None: "<topic>.items" (item records, core/catalog/records.py)
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_username: str | None = None
    kafka_password: str | None = None
    from_beginning: bool = False
    # Trainer
    window_size: int = 1_000_000
    retrain_every: int = 10_000
    retrain_interval: float = 60.0
    decay_half_life: float | None = None
    factors: int = 64
    regularization: float = 0.05
    iterations: int = 15
    alpha: float = 1.0
    use_gpu: bool = False
    fit_threads: int = 0
    metrics_port: int = 9100
    # Scoring (docs/evaluation.md "Recency and the blend"): written into each snapshot by the
    # trainer, so every replica scores the same way. Defaults tuned on a validation stream.
    recency_decay: float = _SCORING.recency_decay
    recency_half_life: float | None = _SCORING.recency_half_life
    history_cap: int = _SCORING.history_cap
    item_item_weight: float = _SCORING.item_item_weight
    item_item_l2: float = _ITEM_ITEM.l2
    item_item_max_dense: int = _ITEM_ITEM.max_dense_items
    item_item_neighbours: int = _ITEM_ITEM.neighbours
    # Snapshots
    store: str = "./data/snapshots"
    s3_endpoint: str | None = None
    keep: int = 5
    # Serving
    bind: str = "0.0.0.0:8000"
    workers: int = 2
    threads: int = 4
    timeout: float = 30.0
    reload_interval: float = 5.0
    ingest_token: str | None = None
    # Pages of other sites that may write (serving/http/writes.py); this server's own always may.
    allowed_origins: tuple[str, ...] = ()
    # Forgetting (core/events/erasurekey.py): the HMAC key of tombstones and erasure records; None:
    # the snapshot store keeps a generated one (ERASURE_KEY next to LATEST).
    erasure_key: str | None = None
    cache_dir: str | None = None  # where serving replicas unpack snapshots; None: a temp dir
    # Online evaluation (serving/online/tracker.py): recommendation ids, CTR, hit rate
    online_tracking: bool = True  # false: no ids, no tallies (the bench's "off" side)
    online_horizon: float = 1800.0  # seconds a served list judges the user's events
    online_max_users: int = 50_000  # LRU of last lists per worker (~650 B each: bench/online.py)
    online_positive: float | None = None  # weight of a positive event; None: every event
    online_bucket_seconds: float = 60.0  # sliding-window bucket width
    online_buckets: int = 60  # buckets kept (60 x 60 s: one hour of history)
    # Embedded
    data_dir: str = "./data"

    @property
    def dlq(self) -> str:
        return self.dlq_topic or f"{self.topic}.dlq"

    @property
    def items(self) -> str:
        """The items topic: item records (categories, hidden, expires_at;
        core/catalog/records.py)."""
        return self.items_topic or f"{self.topic}.items"

    @property
    def notify(self) -> str | None:
        if self.notify_topic == "":
            return None
        return self.notify_topic or f"{self.topic}.snapshots"

    @property
    def feedback(self) -> dict[str, float]:
        """The feedback table, ``{type: weight}`` (``core/events/feedback.py``)."""
        return dict(self.feedback_weights)

    @property
    def als(self) -> ALSParams:
        return ALSParams(factors=self.factors, regularization=self.regularization,
                         iterations=self.iterations, alpha=self.alpha, use_gpu=self.use_gpu,
                         num_threads=self.fit_threads)

    @property
    def scoring(self) -> ScoringParams:
        return ScoringParams(recency_decay=self.recency_decay,
                             recency_half_life=self.recency_half_life,
                             history_cap=self.history_cap,
                             item_item_weight=self.item_item_weight)

    @property
    def item_item(self) -> ItemItemParams:
        return ItemItemParams(l2=self.item_item_l2, max_dense_items=self.item_item_max_dense,
                              neighbours=self.item_item_neighbours)

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka settings shared by every consumer and producer of this service."""
        conf = {"bootstrap.servers": self.bootstrap_servers,
                "security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_username is not None:
            conf["sasl.username"] = self.kafka_username
        if self.kafka_password is not None:
            conf["sasl.password"] = self.kafka_password
        return conf

    def redacted(self) -> dict[str, Any]:
        """The settings for logs: secrets never appear."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        for secret in ("kafka_password", "ingest_token", "erasure_key"):
            if out[secret] is not None:
                out[secret] = "***"
        return out

    # --- parsing ---------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        return cls.load(None, env)

    @classmethod
    def load(cls, args: argparse.Namespace | None, env: Mapping[str, str] | None = None) -> Config:
        """Defaults, then env, then flags that were given; validated."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}  # where each given value came from, for the error
        token = env.get("STREAMREC_INGEST_TOKEN")
        if token is not None and not token.strip():
            # Set but empty would silently leave every write open: the opposite of the intent.
            raise ConfigError("ingest_token", "is set but empty, which would leave writes open "
                              "to anyone; give a token, or unset it for open writes",
                              "STREAMREC_INGEST_TOKEN")
        for name, (conv, env_name) in FIELDS.items():
            if env_name and env.get(env_name, "") != "":
                values[name] = _convert(name, conv, env[env_name], env_name)
                sources[name] = env_name
        if args is not None:
            for name, (conv, _) in FIELDS.items():
                raw = getattr(args, name, None)
                if raw is not None:
                    flag = "--" + name.replace("_", "-")
                    values[name] = raw if not isinstance(raw, str) else _convert(
                        name, conv, raw, flag)
                    sources[name] = flag
        cfg = replace(cls(), **values)
        try:
            cfg.validate()
        except ConfigError as e:
            if e.source or e.field not in sources:
                raise
            raise ConfigError(e.field, e.message, sources[e.field]) from None
        return cfg

    def validate(self) -> None:
        """Every field in its domain (``core.domains.CONFIG_RANGES`` for the numbers, shared
        with the CRD schema and the CR parser); ``ConfigError`` naming the first that is not."""
        for name, domain in CONFIG_RANGES.items():
            v = getattr(self, name)
            if v is None and name in ("min_weight", "decay_half_life", "online_positive",
                                      "recency_half_life"):
                continue  # not set: no filter, no decay, every event positive
            if isinstance(v, bool) or not isinstance(v, int if domain.integer else (int, float)):
                raise ConfigError(name, f"must be a number in {domain.text()}, got {v!r}")
            if not domain.contains(v):
                kind = "an integer" if domain.integer else "a number"
                raise ConfigError(name, f"must be {kind} in {domain.text()}, got {v!r}")
        try:
            check_table(dict(self.feedback_weights))
        except (FeedbackError, TypeError, ValueError) as e:
            raise ConfigError("feedback_weights", str(e)) from None
        if self.format not in FORMATS:
            raise ConfigError("format", f"must be one of {', '.join(FORMATS)}, got {self.format!r}")
        if not self.topic:
            raise ConfigError("topic", "must not be empty")
        if not self.store:
            raise ConfigError("store", "must be s3://bucket/prefix or a directory")
        if self.store.startswith("s3://") and not self.store[5:].split("/", 1)[0]:
            raise ConfigError("store", f"s3 URL needs a bucket: {self.store!r}")
        if self.erasure_key is not None:
            try:
                check_key(self.erasure_key)
            except ValueError as e:
                raise ConfigError("erasure_key", str(e)) from None
        host, sep, port = self.bind.rpartition(":")
        if not sep or not (port.isascii() and port.isdigit() and int(port) <= 65535):
            raise ConfigError("bind", f"must be HOST:PORT with a port in 0..65535, got "
                                      f"{self.bind!r}")


def _bool(raw: str) -> bool:
    v = raw.strip().lower()
    if v in ("1", "true", "yes", "on"):
        return True
    if v in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _optional_str(raw: str) -> str:
    return raw


def _int(raw: str) -> int:
    """A plain ASCII decimal integer: no ``1_000``, no non-ASCII digits, no ``1e3``."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not (digits.isascii() and digits.isdigit() and len(digits) <= 18):
        raise ValueError(f"not an integer: {raw!r}")
    return int(text)


def _float(raw: str) -> float:
    """A plain ASCII decimal or exponent number (``float`` would also take ``1_0``)."""
    text = raw.strip()
    if not text.isascii() or "_" in text or len(text) > 40:
        raise ValueError(f"not a number: {raw!r}")
    return float(text)


def _feedback(raw: str) -> tuple[tuple[str, float], ...]:
    """``type=weight,...`` merged over the default table (``core.feedback.merge_table``)."""
    return tuple(merge_table(parse_table(raw)).items())


def _convert(name: str, conv: Callable[[str], Any], raw: str, source: str) -> Any:
    try:
        return conv(raw)
    except ValueError as e:
        said = str(e) if conv in (_bool, _feedback, parse_origins) else f"cannot parse {raw!r}"
        raise ConfigError(name, said, source) from e


# field -> (converter from text, env var). Flags are `--field-name`.
FIELDS: dict[str, tuple[Callable[[str], Any], str | None]] = {
    "bootstrap_servers": (str, "STREAMREC_BOOTSTRAP_SERVERS"),
    "topic": (str, "STREAMREC_TOPIC"),
    "group": (str, "STREAMREC_GROUP"),
    "format": (str, "STREAMREC_FORMAT"),
    "min_weight": (_float, "STREAMREC_MIN_WEIGHT"),
    "feedback_weights": (_feedback, "STREAMREC_FEEDBACK_WEIGHTS"),
    "dlq_topic": (str, "STREAMREC_DLQ_TOPIC"),
    "notify_topic": (_optional_str, "STREAMREC_NOTIFY_TOPIC"),
    "items_topic": (str, "STREAMREC_ITEMS_TOPIC"),
    "kafka_security_protocol": (str, "STREAMREC_KAFKA_SECURITY_PROTOCOL"),
    "kafka_sasl_mechanism": (str, "STREAMREC_KAFKA_SASL_MECHANISM"),
    "kafka_username": (str, "STREAMREC_KAFKA_USERNAME"),
    "kafka_password": (str, "STREAMREC_KAFKA_PASSWORD"),
    "from_beginning": (_bool, "STREAMREC_FROM_BEGINNING"),
    "window_size": (_int, "STREAMREC_WINDOW_SIZE"),
    "retrain_every": (_int, "STREAMREC_RETRAIN_EVERY"),
    "retrain_interval": (_float, "STREAMREC_RETRAIN_INTERVAL"),
    "decay_half_life": (_float, "STREAMREC_DECAY_HALF_LIFE"),
    "factors": (_int, "STREAMREC_FACTORS"),
    "regularization": (_float, "STREAMREC_REGULARIZATION"),
    "iterations": (_int, "STREAMREC_ITERATIONS"),
    "alpha": (_float, "STREAMREC_ALPHA"),
    "use_gpu": (_bool, "STREAMREC_USE_GPU"),
    "fit_threads": (_int, "STREAMREC_FIT_THREADS"),
    "metrics_port": (_int, "STREAMREC_METRICS_PORT"),
    "recency_decay": (_float, "STREAMREC_RECENCY_DECAY"),
    "recency_half_life": (_float, "STREAMREC_RECENCY_HALF_LIFE"),
    "history_cap": (_int, "STREAMREC_HISTORY_CAP"),
    "item_item_weight": (_float, "STREAMREC_ITEM_ITEM_WEIGHT"),
    "item_item_l2": (_float, "STREAMREC_ITEM_ITEM_L2"),
    "item_item_max_dense": (_int, "STREAMREC_ITEM_ITEM_MAX_DENSE"),
    "item_item_neighbours": (_int, "STREAMREC_ITEM_ITEM_NEIGHBOURS"),
    "store": (str, "STREAMREC_STORE"),
    "s3_endpoint": (str, "STREAMREC_S3_ENDPOINT"),
    "keep": (_int, "STREAMREC_KEEP"),
    "bind": (str, "STREAMREC_BIND"),
    "workers": (_int, "STREAMREC_WORKERS"),
    "threads": (_int, "STREAMREC_THREADS"),
    "timeout": (_float, "STREAMREC_TIMEOUT"),
    "reload_interval": (_float, "STREAMREC_RELOAD_INTERVAL"),
    "ingest_token": (str, "STREAMREC_INGEST_TOKEN"),
    "allowed_origins": (parse_origins, "STREAMREC_ALLOWED_ORIGINS"),
    "erasure_key": (str, "STREAMREC_ERASURE_KEY"),
    "cache_dir": (str, "STREAMREC_CACHE_DIR"),
    "data_dir": (str, "STREAMREC_DATA_DIR"),
    "online_tracking": (_bool, "STREAMREC_ONLINE_TRACKING"),
    "online_horizon": (_float, "STREAMREC_ONLINE_HORIZON"),
    "online_max_users": (_int, "STREAMREC_ONLINE_MAX_USERS"),
    "online_positive": (_float, "STREAMREC_ONLINE_POSITIVE"),
    "online_bucket_seconds": (_float, "STREAMREC_ONLINE_BUCKET_SECONDS"),
    "online_buckets": (_int, "STREAMREC_ONLINE_BUCKETS"),
}

# Secrets come from the environment (a Secret), never from a flag visible in `ps`.
_NO_FLAG = {"kafka_password", "kafka_username", "ingest_token", "erasure_key"}


def add_config_arguments(parser: argparse.ArgumentParser, names: tuple[str, ...],
                         defaults: Mapping[str, object] | None = None) -> None:
    """Add `--field-name` flags for `names`; they default to None so env/defaults apply.

    The help names the env variable, the default *this command* uses (``defaults`` overrides
    `Config`'s, e.g. the embedded mode's) and the domain of numeric fields.
    """
    base = Config()
    for name in names:
        if name in _NO_FLAG:
            continue
        conv, env_name = FIELDS[name]
        default = (defaults or {}).get(name, getattr(base, name))
        helptext = f"env {env_name}; default {show_default(name, default)}"
        if name in CONFIG_RANGES:
            helptext += f"; range {CONFIG_RANGES[name].text()}"
        flag = "--" + name.replace("_", "-")
        if conv is _bool:  # --x / --no-x: a default of on must be switchable off by a flag too
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                                default=None, help=helptext)
        else:
            parser.add_argument(flag, dest=name, default=None, metavar=name.upper(), help=helptext)


#: The scoring settings, for the services that take them (trainer and embedded).
SCORING_NAMES = ("recency_decay", "recency_half_life", "history_cap", "item_item_weight",
                 "item_item_l2", "item_item_max_dense", "item_item_neighbours")


def in_range(domain: Range) -> Callable[[str], Any]:
    """An argparse ``type`` for a flag outside `Config` with this domain: a bad value makes
    argparse exit 2 naming the flag."""

    def parse(raw: str) -> int | float:
        try:
            value: int | float = _int(raw) if domain.integer else _float(raw)
        except ValueError:
            value = math.nan
        if not domain.contains(value):
            kind = "an integer" if domain.integer else "a number"
            raise argparse.ArgumentTypeError(f"must be {kind} in {domain.text()}, got {raw!r}")
        return value

    return parse


#: ``--grace`` (trainer, run): seconds a running fit may finish on shutdown.
grace_seconds = in_range(Range(0.0, 3600.0))


#: How a default of None reads, where None means something other than "not set".
DEFAULT_TEXT = {
    "dlq_topic": "<topic>.dlq",
    "items_topic": "<topic>.items",
    "notify_topic": "<topic>.snapshots ('' disables)",
    "cache_dir": "a temporary directory",
    "erasure_key": "generated once, kept in the store (ERASURE_KEY)",
    "s3_endpoint": "the AWS default",
    "decay_half_life": "none (no decay)",
    "online_positive": "none (every event)",
    "recency_half_life": "none (off)",
}


def show_default(name: str, value: object) -> str:
    """A default as `--help` and docs/configuration.md write it."""
    if value is None:
        return DEFAULT_TEXT.get(name, "none")
    if name == "allowed_origins" and isinstance(value, tuple):
        return ",".join(value) or "none (only this server's own pages)"
    return _show_default(value)


def _show_default(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, tuple):  # the feedback table
        return format_table(dict(value))
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def config_from_args(args: argparse.Namespace) -> Config:
    return Config.load(args)
