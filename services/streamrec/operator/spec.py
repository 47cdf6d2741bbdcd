"""The RecommenderService custom resource: identity, and its spec parsed once into frozen types.

Each field is a row of the settings table (``streamrec.settings``): its default, its rule and
its attribute name here come from there, and the CRDs are generated from the same rows, so
``kubectl get -o yaml`` shows what the operator will use. Cross-field rules (a SASL protocol
needs a credentials Secret, limits must not be below requests) are checked only here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamrec.core.experiments.spec import Experiment
from streamrec.operator.fields import Fields, InvalidSpec
from streamrec.operator.quantity import parse_quantity
from streamrec.settings import BY_NAME
from streamrec.settings.placements import PlacementSource
from streamrec.settings.rows import (
    FORMATS,
    PULL_POLICIES,
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
)

__all__ = ["FORMATS", "PULL_POLICIES", "SASL_MECHANISMS", "SECURITY_PROTOCOLS", "RecommenderSpec",
           "parse_spec", "validate_name"]

GROUP = "streamrec.io"
VERSION = "v1alpha1"
PLURAL = "recommenderservices"
KIND = "RecommenderService"

# Children are named "<name>-trainer" etc.; 50 leaves room for the longest suffix in a
# 63-character DNS label, and the Service takes the bare name, so it must be a DNS-1035 label.
MAX_NAME_LENGTH = 50
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _d(name: str) -> Any:
    """A setting's CR default (``streamrec.settings``); container resources as `Resources`."""
    value = BY_NAME[name].cr_default_value
    return Resources.of(value) if isinstance(value, Mapping) else value


@dataclass(frozen=True)
class Resources:
    """Container requests and limits as sorted (resource, quantity) pairs."""

    requests: tuple[tuple[str, str], ...]
    limits: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"requests": dict(self.requests), "limits": dict(self.limits)}

    @classmethod
    def of(cls, raw: Mapping[str, Mapping[str, str]]) -> Resources:
        return cls(requests=tuple(sorted(raw["requests"].items())),
                   limits=tuple(sorted(raw["limits"].items())))


TRAINER_RESOURCES: Resources = _d("training_resources")
SERVING_RESOURCES: Resources = _d("serving_resources")


@dataclass(frozen=True)
class ImageSpec:
    # BEGIN GENERATED: make settings (section image)
    repository: str
    tag: str
    pull_policy: str = _d("pull_policy")
    # END GENERATED: make settings (section image)

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class KafkaSpec:
    # BEGIN GENERATED: make settings (section kafka)
    bootstrap_servers: str
    topic: str = _d("topic")
    topic_partitions: int | None = _d("topic_partitions")
    format: str = _d("format")
    min_weight: float | None = _d("min_weight")
    dlq_topic: str | None = _d("dlq_topic")
    notify_topic: str | None = _d("notify_topic")
    items_topic: str | None = _d("items_topic")
    impressions_topic: str | None = _d("impressions_topic")
    security_protocol: str = _d("kafka_security_protocol")
    sasl_mechanism: str = _d("kafka_sasl_mechanism")
    credentials_secret: str | None = _d("kafka_credentials_secret")
    # END GENERATED: make settings (section kafka)

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")


@dataclass(frozen=True)
class ModelSpec:
    # BEGIN GENERATED: make settings (section model)
    feedback_weights: tuple[tuple[str, float], ...] | None = _d("feedback_weights")
    factors: int = _d("factors")
    regularization: float = _d("regularization")
    iterations: int = _d("iterations")
    alpha: float = _d("alpha")
    # END GENERATED: make settings (section model)


@dataclass(frozen=True)
class SparkSpec:
    # BEGIN GENERATED: make settings (section training.spark)
    executors: int = _d("spark_executors")
    executor_cores: int = _d("spark_executor_cores")
    executor_memory: str = _d("spark_executor_memory")
    image: str | None = _d("spark_image")
    # END GENERATED: make settings (section training.spark)


@dataclass(frozen=True)
class TrainingSpec:
    # BEGIN GENERATED: make settings (section training)
    window_size: int = _d("window_size")
    retrain_every: int = _d("retrain_every")
    retrain_interval: int = _d("retrain_interval")
    decay_half_life: float | None = _d("decay_half_life")
    use_gpu: bool = _d("use_gpu")
    resources: Resources = _d("training_resources")
    engine: str = _d("training_engine")
    # END GENERATED: make settings (section training)
    spark: SparkSpec = field(default_factory=SparkSpec)


@dataclass(frozen=True)
class SnapshotsSpec:
    # BEGIN GENERATED: make settings (section snapshots)
    bucket: str
    credentials_secret: str
    prefix: str | None = _d("prefix")
    s3_endpoint: str | None = _d("s3_endpoint")
    region: str | None = _d("region")
    erasure_key_secret: str | None = _d("erasure_key_secret")
    keep: int = _d("keep")
    # END GENERATED: make settings (section snapshots)


@dataclass(frozen=True)
class AutoscalingSpec:
    # BEGIN GENERATED: make settings (section serving.autoscaling)
    enabled: bool = _d("autoscaling_enabled")
    min_replicas: int = _d("min_replicas")
    max_replicas: int = _d("max_replicas")
    target_cpu_utilization_percentage: int = _d("target_cpu_utilization_percentage")
    scale_down_stabilization_seconds: int = _d("scale_down_stabilization_seconds")
    # END GENERATED: make settings (section serving.autoscaling)


@dataclass(frozen=True)
class IngressSpec:
    # BEGIN GENERATED: make settings (section serving.ingress)
    enabled: bool = _d("ingress_enabled")
    host: str | None = _d("host")
    class_name: str | None = _d("class_name")
    path: str = _d("path")
    tls_secret: str | None = _d("tls_secret")
    allow_anonymous_writes: bool = _d("allow_anonymous_writes")
    # END GENERATED: make settings (section serving.ingress)


@dataclass(frozen=True)
class ServingSpec:
    # BEGIN GENERATED: make settings (section serving)
    replicas: int = _d("replicas")
    groups: int = _d("serving_groups")
    forward_timeout: float = _d("forward_timeout")
    shutdown_delay_seconds: int = _d("shutdown_delay_seconds")
    workers: int = _d("workers")
    threads: int = _d("threads")
    reload_interval: int = _d("reload_interval")
    allowed_origins: tuple[str, ...] | None = _d("allowed_origins")
    ingest_token_secret: str | None = _d("ingest_token_secret")
    resources: Resources = _d("serving_resources")
    # END GENERATED: make settings (section serving)
    autoscaling: AutoscalingSpec = field(default_factory=AutoscalingSpec)
    ingress: IngressSpec = field(default_factory=IngressSpec)


@dataclass(frozen=True)
class ScoringSpec:
    """How serving scores a user: recency, the item-item model, the blend (docs/evaluation.md);
    the defaults are the services' own, so a CR that says nothing scores as ``streamrec run``."""

    # BEGIN GENERATED: make settings (section scoring)
    recency_decay: float = _d("recency_decay")
    recency_half_life: float | None = _d("recency_half_life")
    history_cap: int = _d("history_cap")
    item_item_weight: float = _d("item_item_weight")
    sequential_weight: float = _d("sequential_weight")
    weights: tuple[tuple[str, float], ...] | None = _d("scoring_weights")
    item_item_l2: float = _d("item_item_l2")
    item_item_max_dense: int = _d("item_item_max_dense")
    item_item_neighbours: int = _d("item_item_neighbours")
    sequential_steps: int = _d("sequential_steps")
    sequential_successors: int = _d("sequential_successors")
    sequential_query_items: int = _d("sequential_query_items")
    sequential_query_decay: float = _d("sequential_query_decay")
    sequential_predecessors: float = _d("sequential_predecessors")
    ann_min_items: int = _d("ann_min_items")
    ann_ef_search: int = _d("ann_ef_search")
    # END GENERATED: make settings (section scoring)


@dataclass(frozen=True)
class RecommenderSpec:
    image: ImageSpec
    kafka: KafkaSpec
    snapshots: SnapshotsSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    serving: ServingSpec = field(default_factory=ServingSpec)
    scoring: ScoringSpec = field(default_factory=ScoringSpec)
    # BEGIN GENERATED: make settings (section spec)
    experiments: tuple[Experiment, ...] | None = _d("experiments")
    placements: PlacementSource | None = _d("placements")
    # END GENERATED: make settings (section spec)


def validate_name(name: str) -> None:
    """The CR's name becomes child names and label values; reject names that cannot."""
    if len(name) > MAX_NAME_LENGTH or not _DNS_1035.match(name):
        raise InvalidSpec(
            "metadata.name",
            f"must be a DNS-1035 label of at most {MAX_NAME_LENGTH} characters "
            f"(lowercase letters, digits, '-', starting with a letter), got {name!r}",
        )


def parse_spec(raw: Mapping[str, Any]) -> RecommenderSpec:
    """Parse a CR's ``spec`` into a :class:`RecommenderSpec`, applying every default.

    Raises
    ------
    InvalidSpec
        Naming the first offending field, e.g. ``spec.model.factors: must be an integer >= 1``.
    """
    spec = Fields(raw, "spec")
    parsed = RecommenderSpec(
        image=_image(spec.obj("image", required=True)),
        kafka=_kafka(spec.obj("kafka", required=True)),
        snapshots=_snapshots(spec.obj("snapshots", required=True)),
        model=_model(spec.obj("model")),
        training=_training(spec.obj("training")),
        serving=_serving(spec.obj("serving")),
        scoring=_scoring(spec.obj("scoring")),
        **spec.section(""),  # the fields of spec itself (experiments)
    )
    spec.done()
    _check_groups(parsed)
    return parsed


def _check_groups(parsed: RecommenderSpec) -> None:
    """Serving groups split the topic's partitions (``core/groups.py``): they need the count,
    and no more groups than partitions."""
    groups, partitions = parsed.serving.groups, parsed.kafka.topic_partitions
    if groups == 1:
        return
    if partitions is None:
        raise InvalidSpec("spec.kafka.partitions", f"is required with spec.serving.groups "
                                                   f"{groups}: the groups split the partitions")
    if partitions < groups:
        raise InvalidSpec("spec.serving.groups", f"must be at most spec.kafka.partitions "
                                                 f"({groups} > {partitions})")


def _image(f: Fields) -> ImageSpec:
    out = ImageSpec(**f.section("image"))
    f.done()
    return out


def _kafka(f: Fields) -> KafkaSpec:
    out = KafkaSpec(**f.section("kafka"))
    if out.uses_sasl and out.credentials_secret is None:
        raise InvalidSpec(
            f.at("credentialsSecret"),
            f"is required when securityProtocol is {out.security_protocol}",
        )
    if not out.uses_sasl and out.credentials_secret is not None:
        raise InvalidSpec(
            f.at("credentialsSecret"),
            "is only used with securityProtocol SASL_PLAINTEXT or SASL_SSL "
            f"(got {out.security_protocol})",
        )
    f.done()
    return out


def _model(f: Fields) -> ModelSpec:
    out = ModelSpec(**f.section("model"))
    f.done()
    return out


def _training(f: Fields) -> TrainingSpec:
    values = f.section("training")
    values["resources"] = _resources(f, "resources", values["resources"], TRAINER_RESOURCES)
    out = TrainingSpec(**values, spark=_spark(f.obj("spark")))
    f.done()
    return out


def _spark(f: Fields) -> SparkSpec:
    out = SparkSpec(**f.section("training.spark"))
    f.done()
    return out


def _scoring(f: Fields) -> ScoringSpec:
    out = ScoringSpec(**f.section("scoring"))
    f.done()
    return out


def _snapshots(f: Fields) -> SnapshotsSpec:
    values = f.section("snapshots")
    prefix = values["prefix"]
    values["prefix"] = (prefix.strip("/") or None) if prefix is not None else None
    out = SnapshotsSpec(**values)
    f.done()
    return out


def _serving(f: Fields) -> ServingSpec:
    values = f.section("serving")
    values["resources"] = _resources(f, "resources", values["resources"], SERVING_RESOURCES)
    out = ServingSpec(**values, autoscaling=_autoscaling(f.obj("autoscaling")),
                      ingress=_ingress(f.obj("ingress")))
    if out.ingress.allow_anonymous_writes and out.ingest_token_secret is not None:
        raise InvalidSpec(
            f"{f.at('ingress')}.allowAnonymousWrites",
            f"cannot be true while ingestTokenSecret is set ({out.ingest_token_secret!r}): "
            "unset one of them",
        )
    f.done()
    return out


def _autoscaling(f: Fields) -> AutoscalingSpec:
    out = AutoscalingSpec(**f.section("serving.autoscaling"))
    if out.max_replicas < out.min_replicas:
        raise InvalidSpec(
            f.at("maxReplicas"), f"must be >= minReplicas ({out.max_replicas} < {out.min_replicas})"
        )
    f.done()
    return out


def _ingress(f: Fields) -> IngressSpec:
    out = IngressSpec(**f.section("serving.ingress"))
    if out.tls_secret is not None and out.host is None:
        raise InvalidSpec(f.at("host"), "is required when tlsSecret is set")
    f.done()
    return out


def _resources(f: Fields, key: str, raw: object, default: Resources) -> Resources:
    """``raw`` is the value the table's row read (its CRD default when absent)."""
    if isinstance(raw, Mapping) and not raw:
        return default
    res = Fields(raw, f.at(key))
    out = Resources(
        requests=res.quantities("requests", required=("cpu", "memory")),
        limits=res.quantities("limits", required=("cpu", "memory")),
    )
    res.done()
    requests = dict(out.requests)
    for resource, limit in out.limits:
        if resource in requests and parse_quantity(limit) < parse_quantity(requests[resource]):
            raise InvalidSpec(
                f"{res.at('limits')}.{resource}",
                f"must be >= the request ({limit} < {requests[resource]})",
            )
    return out
