"""One typed, frozen configuration for the streamrec services, parsed once at the edge.

Precedence: command-line flag > ``STREAMREC_*`` environment variable > the default. Every
field is a row of the settings table (``streamrec.settings``): its default, env var, flag and
its one validation rule come from there (docs/configuration.md is generated from the same rows).
A bad value raises `ConfigError` naming the field; the CLI turns it into exit code 2.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from streamrec.core.experiments.spec import Experiment
from streamrec.core.groups import GroupLayout
from streamrec.core.scoring.ann import AnnParams
from streamrec.core.scoring.blend import ScoringParams
from streamrec.core.scoring.itemitem import ItemItemParams
from streamrec.core.scoring.model import ALSParams
from streamrec.core.scoring.sequential import SequentialParams
from streamrec.core.snapshot.usersides import UserShard
from streamrec.settings import BY_NAME, CONFIG_ROWS, SERVICES, service_rows
from streamrec.settings.flags import add_config_arguments, grace_seconds, in_range
from streamrec.settings.placements import PlacementSource
from streamrec.settings.sections import KafkaSettings, S3Settings
from streamrec.settings.table import Setting

__all__ = ["Config", "ConfigError", "add_config_arguments", "config_from_args",
           "grace_seconds", "in_range", "show_default"]

#: Each field's default, from its row.
_D: dict[str, Any] = {r.name: r.default for r in CONFIG_ROWS}


class ConfigError(ValueError):
    """An invalid setting. `field` is the config field, `source` where the bad value came from."""

    def __init__(self, field: str, message: str, source: str = "") -> None:
        self.field, self.source, self.message = field, source, message
        where = f" (from {source})" if source else ""
        super().__init__(f"invalid {field}{where}: {message}")


@dataclass(frozen=True)
class Config:
    """Every setting of the trainer, serve and run, typed (the rows of ``streamrec.settings``
    whose ``config`` is true; ``make settings`` writes the fields)."""

    # BEGIN GENERATED: make settings (Config)
    bootstrap_servers: str = _D["bootstrap_servers"]
    topic: str = _D["topic"]
    topic_partitions: int | None = _D["topic_partitions"]
    group: str = _D["group"]
    format: str = _D["format"]
    min_weight: float | None = _D["min_weight"]
    feedback_weights: tuple[tuple[str, float], ...] = _D["feedback_weights"]
    dlq_topic: str | None = _D["dlq_topic"]
    notify_topic: str | None = _D["notify_topic"]
    items_topic: str | None = _D["items_topic"]
    impressions_topic: str | None = _D["impressions_topic"]
    kafka_security_protocol: str = _D["kafka_security_protocol"]
    kafka_sasl_mechanism: str | None = _D["kafka_sasl_mechanism"]
    kafka_username: str | None = _D["kafka_username"]
    kafka_password: str | None = _D["kafka_password"]
    from_beginning: bool = _D["from_beginning"]
    window_size: int = _D["window_size"]
    retrain_every: int = _D["retrain_every"]
    retrain_interval: float = _D["retrain_interval"]
    decay_half_life: float | None = _D["decay_half_life"]
    factors: int = _D["factors"]
    regularization: float = _D["regularization"]
    iterations: int = _D["iterations"]
    alpha: float = _D["alpha"]
    use_gpu: bool = _D["use_gpu"]
    fit_threads: int = _D["fit_threads"]
    training_engine: str = _D["training_engine"]
    spark_master: str = _D["spark_master"]
    spark_executors: int = _D["spark_executors"]
    spark_executor_cores: int = _D["spark_executor_cores"]
    spark_executor_memory: str = _D["spark_executor_memory"]
    spark_driver_memory: str = _D["spark_driver_memory"]
    spark_image: str | None = _D["spark_image"]
    metrics_port: int = _D["metrics_port"]
    recency_decay: float = _D["recency_decay"]
    recency_half_life: float | None = _D["recency_half_life"]
    history_cap: int = _D["history_cap"]
    item_item_weight: float = _D["item_item_weight"]
    sequential_weight: float = _D["sequential_weight"]
    scoring_weights: tuple[tuple[str, float], ...] | None = _D["scoring_weights"]
    item_item_l2: float = _D["item_item_l2"]
    item_item_max_dense: int = _D["item_item_max_dense"]
    item_item_neighbours: int = _D["item_item_neighbours"]
    sequential_steps: int = _D["sequential_steps"]
    sequential_successors: int = _D["sequential_successors"]
    sequential_query_items: int = _D["sequential_query_items"]
    sequential_query_decay: float = _D["sequential_query_decay"]
    sequential_predecessors: float = _D["sequential_predecessors"]
    ann_min_items: int = _D["ann_min_items"]
    ann_ef_search: int = _D["ann_ef_search"]
    store: str = _D["store"]
    s3_endpoint: str | None = _D["s3_endpoint"]
    erasure_key: str | None = _D["erasure_key"]
    keep: int = _D["keep"]
    serving_groups: int = _D["serving_groups"]
    serving_group: int = _D["serving_group"]
    group_urls: tuple[str, ...] = _D["group_urls"]
    forward_timeout: float = _D["forward_timeout"]
    bind: str = _D["bind"]
    workers: int = _D["workers"]
    threads: int = _D["threads"]
    timeout: float = _D["timeout"]
    reload_interval: float = _D["reload_interval"]
    ingest_token: str | None = _D["ingest_token"]
    allowed_origins: tuple[str, ...] = _D["allowed_origins"]
    cache_dir: str | None = _D["cache_dir"]
    online_tracking: bool = _D["online_tracking"]
    online_horizon: float = _D["online_horizon"]
    online_max_users: int = _D["online_max_users"]
    online_positive: float | None = _D["online_positive"]
    online_bucket_seconds: float = _D["online_bucket_seconds"]
    online_buckets: int = _D["online_buckets"]
    experiments: tuple[Experiment, ...] = _D["experiments"]
    placements: PlacementSource = _D["placements"]
    data_dir: str = _D["data_dir"]
    # END GENERATED: make settings (Config)

    @property
    def dlq(self) -> str:
        return self.dlq_topic or f"{self.topic}.dlq"

    @property
    def items(self) -> str:
        """The items topic: item records (categories, hidden, expires_at;
        core/catalog/records.py)."""
        return self.items_topic or f"{self.topic}.items"

    @property
    def impressions(self) -> str:
        """The impressions topic: what each user was shown under a placement with rotation or
        exploration (core/placements/impressions.py)."""
        return self.impressions_topic or f"{self.topic}.impressions"

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
                             item_item_weight=self.item_item_weight,
                             sequential_weight=self.sequential_weight,
                             scorer_weights=self.scoring_weights)

    @property
    def item_item(self) -> ItemItemParams:
        return ItemItemParams(l2=self.item_item_l2, max_dense_items=self.item_item_max_dense,
                              neighbours=self.item_item_neighbours)

    @property
    def sequential(self) -> SequentialParams:
        return SequentialParams(steps=self.sequential_steps,
                                successors=self.sequential_successors,
                                query_items=self.sequential_query_items,
                                query_decay=self.sequential_query_decay,
                                predecessors=self.sequential_predecessors)

    @property
    def ann(self) -> AnnParams:
        return AnnParams(min_items=self.ann_min_items, ef_search=self.ann_ef_search)

    @property
    def scorer_params(self) -> dict[str, Any]:
        """The configured params of the registered scorers fitted from the window, by name
        (``core/scoring/scorer.py``); a scorer not listed is fitted with its defaults."""
        return {"item_item": self.item_item, "sequential": self.sequential}

    @property
    def groups(self) -> GroupLayout:
        """The serving groups and this replica's place in them (``core/groups.py``)."""
        return GroupLayout(self.serving_groups, self.serving_group,
                           max(self.topic_partitions or 1, self.serving_groups))

    @property
    def user_partitions(self) -> int:
        """How many partitions the trainer splits a snapshot's user side into (format 9,
        ``core/snapshot/usersides.py``): the topic's once several serving groups read them
        apart, else 1 (one group maps every user anyway, and merging parts back costs it a
        copy at every reload)."""
        return (self.topic_partitions or 1) if self.serving_groups > 1 else 1

    @property
    def user_shard(self) -> UserShard | None:
        """The user partitions this serving replica fetches and maps of a split snapshot: its
        group's; None (every user) with one group."""
        if self.serving_groups <= 1:
            return None
        layout = self.groups
        return UserShard(layout.partitions, frozenset(layout.owned))

    @property
    def kafka(self) -> KafkaSettings:
        """What the Kafka adapters need (``adapters.kafka``), and nothing more."""
        return KafkaSettings(self.bootstrap_servers, self.kafka_security_protocol,
                             self.kafka_sasl_mechanism, self.kafka_username, self.kafka_password)

    @property
    def s3(self) -> S3Settings:
        """What the S3 snapshot store needs (``adapters.stores.open_store``), and nothing more."""
        return S3Settings(self.s3_endpoint)

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka settings shared by every consumer and producer of this service."""
        return self.kafka.client_config()

    def __repr__(self) -> str:  # the dataclass' own would print the secrets
        return f"Config({self.redacted()})"

    def redacted(self, service: str | None = None) -> dict[str, Any]:
        """The settings for logs, those ``service`` reads (every field when None); secrets
        never appear."""
        rows = _rows(service)
        out = {row.name: getattr(self, row.name) for row in rows}
        for row in rows:
            if row.secret and out[row.name] is not None:
                out[row.name] = "***"
        return out

    # --- parsing ---------------------------------------------------------------------------

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Config:
        return cls.load(None, env)

    @classmethod
    def load(cls, args: argparse.Namespace | None, env: Mapping[str, str] | None = None,
             service: str | None = None) -> Config:
        """Defaults, then env, then flags that were given; validated.

        ``service`` (``trainer``, ``serve`` or ``run``): read and check only the settings that
        command takes (the rows whose ``services`` name it, ``settings.service_rows``); every
        other field keeps its default, so another service's variable in a shared environment
        (a ConfigMap, a ``.env``), even a malformed one, neither applies nor stops this one.
        None reads every row (tools and tests)."""
        env = os.environ if env is None else env
        rows = _rows(service)
        given: dict[str, tuple[Any, str]] = {}  # each given value and where it came from
        for row in rows:
            env_name = row.env_name
            if env_name and row.refuse_blank and env_name in env and not env[env_name].strip():
                raise ConfigError(row.name, row.refuse_blank, env_name)
            if env_name and env.get(env_name, "") != "":
                given[row.name] = env[env_name], env_name
        if args is not None:
            for row in rows:
                raw = getattr(args, row.name, None)
                if raw is not None:  # a flag wins over the variable, even a malformed one
                    given[row.name] = raw, "--" + row.name.replace("_", "-")
        values = {name: _convert(BY_NAME[name], raw, source) if isinstance(raw, str) else raw
                  for name, (raw, source) in given.items()}
        sources = {name: source for name, (_, source) in given.items()}
        cfg = replace(cls(), **values)
        try:
            cfg.validate(service)
        except ConfigError as e:
            if e.source or e.field not in sources:
                raise
            raise ConfigError(e.field, e.message, sources[e.field]) from None
        return cfg

    def validate(self, service: str | None = None) -> None:
        """Every field by its row's rule (``streamrec.settings``: the same rule the flags, the
        CRD schema and the operator's CR parser apply); ``ConfigError`` naming the first that
        breaks it. A field whose default is None may be None (not set). ``service``: the
        command whose settings these are (`load`); a rule between settings applies only when
        it takes them all."""
        for row in CONFIG_ROWS:
            value = getattr(self, row.name)
            if value is None and row.default is None:
                continue
            problem = row.kind.problem(value)
            if problem is not None:
                said = problem if row.kind.says_why else f"{problem}, got {value!r}"
                raise ConfigError(row.name, said)
        self._check_placement_arms()
        self._check_groups({r.name for r in _rows(service)})

    def _check_groups(self, takes: set[str]) -> None:
        """Serving groups need the partition count and, where the command forwards requests
        (``takes`` ``group_urls``: serving, not the trainer), every group's URL
        (``core/groups.py``)."""
        if self.serving_group >= self.serving_groups:
            raise ConfigError("serving_group", f"must be below serving_groups "
                                               f"({self.serving_groups}), got {self.serving_group}")
        if self.serving_groups == 1:
            return
        if self.topic_partitions is None:
            raise ConfigError("topic_partitions", f"is required with serving_groups "
                                                  f"{self.serving_groups}: the groups split the "
                                                  f"topic's partitions (set --topic-partitions "
                                                  f"or STREAMREC_TOPIC_PARTITIONS)")
        if self.topic_partitions < self.serving_groups:
            raise ConfigError("topic_partitions", f"must be at least serving_groups "
                                                  f"({self.serving_groups}), got "
                                                  f"{self.topic_partitions}")
        if "group_urls" in takes and len(self.group_urls) != self.serving_groups:
            raise ConfigError("group_urls", f"must list {self.serving_groups} URLs, one per "
                                            f"group in group order, got {len(self.group_urls)} "
                                            f"(--group-urls or STREAMREC_GROUP_URLS)")

    def _check_placement_arms(self) -> None:
        """An experiment's placements name configured placements (a command that takes
        neither setting has none of either)."""
        known = {p.name for p in self.placements.placements}
        listed = ", ".join(sorted(known)) or "none"
        for k, e in enumerate(self.experiments):
            named = [(f"[{k}].placement", e.placement)] + [
                (f"[{k}].arms[{j}].placement", a.placement) for j, a in enumerate(e.arms)]
            for path, name in named:
                if name is not None and name not in known:
                    raise ConfigError("experiments", f"{path}: no placement named {name!r} "
                                                     f"(placements: {listed})")


def _rows(service: str | None) -> tuple[Setting, ...]:
    """The ``Config`` rows ``service`` reads; every one for None."""
    if service is None:
        return CONFIG_ROWS
    if service not in SERVICES:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return tuple(r for r in service_rows(service) if r.config)


def _convert(row: Setting, raw: str, source: str) -> Any:
    if raw and not raw.strip():  # "  " is a slip, never a topic, a path or a password
        raise ConfigError(row.name, "is blank (only whitespace); give a value, or unset it for "
                                    "the default", source)
    try:
        return row.kind.parse(raw)
    except ValueError as e:
        said = str(e) if row.kind.says_why else f"cannot parse {raw!r}"
        raise ConfigError(row.name, said, source) from e


def show_default(name: str, value: object) -> str:
    """A default as ``--help`` and docs/configuration.md write it."""
    return BY_NAME[name].show_default(value)


def config_from_args(args: argparse.Namespace) -> Config:
    return Config.load(args)
