"""The RecommenderService custom resource: identity, and its spec parsed once into frozen types.

Every default of the CR lives here; ``k8s/crd.yaml`` mirrors them (a unit test keeps the two in
step) so that ``kubectl get -o yaml`` shows what the operator will use. Bounds match the CRD's
OpenAPI schema; cross-field rules (a SASL protocol needs a credentials Secret, limits must not
be below requests) are checked only here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from streamrec.core.events.feedback import FeedbackError, check_table
from streamrec.core.origins import normalise_origin
from streamrec.operator.fields import Fields, InvalidSpec
from streamrec.operator.quantity import parse_quantity
from streamrec.operator.scoring import ScoringSpec, parse_scoring

GROUP = "streamrec.io"
VERSION = "v1alpha1"
PLURAL = "recommenderservices"
KIND = "RecommenderService"

FORMATS = ("auto", "text", "json")
PULL_POLICIES = ("IfNotPresent", "Always", "Never")
SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

# Children are named "<name>-trainer" etc.; 50 leaves room for the longest suffix in a
# 63-character DNS label, and the Service takes the bare name, so it must be a DNS-1035 label.
MAX_NAME_LENGTH = 50
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# An Ingress host: a lowercase DNS name, optionally with a leading "*." wildcard.
_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class Resources:
    """Container requests and limits as sorted (resource, quantity) pairs."""

    requests: tuple[tuple[str, str], ...]
    limits: tuple[tuple[str, str], ...]

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"requests": dict(self.requests), "limits": dict(self.limits)}


TRAINER_RESOURCES = Resources(
    requests=(("cpu", "500m"), ("memory", "1Gi")), limits=(("cpu", "2"), ("memory", "4Gi"))
)
SERVING_RESOURCES = Resources(
    requests=(("cpu", "250m"), ("memory", "512Mi")), limits=(("cpu", "1"), ("memory", "1Gi"))
)


@dataclass(frozen=True)
class ImageSpec:
    repository: str
    tag: str
    pull_policy: str = "IfNotPresent"

    @property
    def reference(self) -> str:
        return f"{self.repository}:{self.tag}"


@dataclass(frozen=True)
class KafkaSpec:
    bootstrap_servers: str
    topic: str = "interactions"
    format: str = "auto"
    min_weight: float | None = None
    dlq_topic: str | None = None
    items_topic: str | None = None
    notify_topic: str | None = None
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "SCRAM-SHA-512"
    credentials_secret: str | None = None

    @property
    def uses_sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")


@dataclass(frozen=True)
class ModelSpec:
    factors: int = 64
    regularization: float = 0.05
    iterations: int = 15
    alpha: float = 1.0
    #: ``model.feedbackWeights``: type -> weight overrides of ``core.feedback.DEFAULT_WEIGHTS``
    #: (None: the defaults).
    feedback_weights: tuple[tuple[str, float], ...] | None = None


@dataclass(frozen=True)
class TrainingSpec:
    window_size: int = 1_000_000
    retrain_every: int = 10_000
    retrain_interval_seconds: int = 60
    decay_half_life_seconds: float | None = None
    gpu: bool = False
    resources: Resources = TRAINER_RESOURCES


@dataclass(frozen=True)
class SnapshotsSpec:
    bucket: str
    credentials_secret: str
    prefix: str | None = None  # None: the resource's name, so services can share a bucket
    endpoint: str | None = None
    region: str | None = None
    keep: int = 5
    #: Secret whose key ``erasureKey`` is the HMAC key of erasures (STREAMREC_ERASURE_KEY);
    #: None: the store keeps a generated one.
    erasure_key_secret: str | None = None


@dataclass(frozen=True)
class AutoscalingSpec:
    enabled: bool = False
    min_replicas: int = 2
    max_replicas: int = 10
    target_cpu_utilization_percentage: int = 70


@dataclass(frozen=True)
class IngressSpec:
    enabled: bool = False
    host: str | None = None
    class_name: str | None = None
    path: str = "/"
    tls_secret: str | None = None
    # Writes (POST /interactions, /items, the delete routes) through the Ingress need a token
    # unless this is set; see streamrec.operator.writeauth.
    allow_anonymous_writes: bool = False


@dataclass(frozen=True)
class ServingSpec:
    replicas: int = 2
    workers: int = 2
    threads: int = 4
    reload_interval_seconds: int = 5
    ingest_token_secret: str | None = None
    # Pages of other sites that may write from a browser (STREAMREC_ALLOWED_ORIGINS).
    allowed_origins: tuple[str, ...] | None = None  # None: no other site
    autoscaling: AutoscalingSpec = field(default_factory=AutoscalingSpec)
    resources: Resources = SERVING_RESOURCES
    ingress: IngressSpec = field(default_factory=IngressSpec)


@dataclass(frozen=True)
class RecommenderSpec:
    image: ImageSpec
    kafka: KafkaSpec
    snapshots: SnapshotsSpec
    model: ModelSpec = field(default_factory=ModelSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    serving: ServingSpec = field(default_factory=ServingSpec)
    scoring: ScoringSpec = field(default_factory=ScoringSpec)


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
        scoring=parse_scoring(spec.obj("scoring")),
    )
    spec.done()
    return parsed


def _image(f: Fields) -> ImageSpec:
    out = ImageSpec(
        repository=f.required_string("repository"),
        tag=f.required_string("tag"),
        pull_policy=f.enum("pullPolicy", PULL_POLICIES, "IfNotPresent"),
    )
    f.done()
    return out


def _kafka(f: Fields) -> KafkaSpec:
    out = KafkaSpec(
        bootstrap_servers=f.required_string("bootstrapServers"),
        topic=f.string("topic", "interactions"),
        format=f.enum("format", FORMATS, "auto"),
        min_weight=f.in_domain("minWeight", "min_weight", None),
        dlq_topic=f.optional_string("dlqTopic"),
        items_topic=f.optional_string("itemsTopic"),
        notify_topic=f.text("notifyTopic"),
        security_protocol=f.enum("securityProtocol", SECURITY_PROTOCOLS, "PLAINTEXT"),
        sasl_mechanism=f.enum("saslMechanism", SASL_MECHANISMS, "SCRAM-SHA-512"),
        credentials_secret=_secret_name(f, "credentialsSecret"),
    )
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
    out = ModelSpec(
        factors=f.in_domain("factors", "factors", 64),
        regularization=f.in_domain("regularization", "regularization", 0.05),
        iterations=f.in_domain("iterations", "iterations", 15),
        alpha=f.in_domain("alpha", "alpha", 1.0),
        feedback_weights=_feedback_weights(f, "feedbackWeights"),
    )
    f.done()
    return out


def _feedback_weights(f: Fields, key: str) -> tuple[tuple[str, float], ...] | None:
    raw = f.raw(key)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidSpec(f.at(key), "must be a map of feedback type to weight")
    try:
        return tuple(check_table(raw).items())
    except FeedbackError as e:
        raise InvalidSpec(f.at(key), str(e)) from None


def _training(f: Fields) -> TrainingSpec:
    out = TrainingSpec(
        window_size=f.in_domain("windowSize", "window_size", 1_000_000),
        retrain_every=f.in_domain("retrainEvery", "retrain_every", 10_000),
        retrain_interval_seconds=f.integer("retrainIntervalSeconds", 60, minimum=1,
                                           maximum=1_000_000_000),
        decay_half_life_seconds=f.in_domain("decayHalfLifeSeconds", "decay_half_life", None),
        gpu=f.boolean("gpu", False),
        resources=_resources(f, "resources", TRAINER_RESOURCES),
    )
    f.done()
    return out


def _snapshots(f: Fields) -> SnapshotsSpec:
    bucket = f.required_string("bucket")
    if not _BUCKET.match(bucket):
        raise InvalidSpec(f.at("bucket"), f"must be a valid S3 bucket name (got {bucket!r})")
    prefix = f.optional_string("prefix")
    out = SnapshotsSpec(
        bucket=bucket,
        credentials_secret=_required_secret_name(f, "credentialsSecret"),
        prefix=(prefix.strip("/") or None) if prefix is not None else None,
        endpoint=f.optional_string("endpoint"),
        region=f.optional_string("region"),
        keep=f.in_domain("keep", "keep", 5),
        erasure_key_secret=_secret_name(f, "erasureKeySecret"),
    )
    f.done()
    return out


def _serving(f: Fields) -> ServingSpec:
    out = ServingSpec(
        replicas=f.integer("replicas", 2, minimum=0),
        workers=f.in_domain("workers", "workers", 2),
        threads=f.in_domain("threads", "threads", 4),
        reload_interval_seconds=f.integer("reloadIntervalSeconds", 5, minimum=1, maximum=3600),
        ingest_token_secret=_secret_name(f, "ingestTokenSecret"),
        allowed_origins=_origins(f, "allowedOrigins"),
        autoscaling=_autoscaling(f.obj("autoscaling")),
        resources=_resources(f, "resources", SERVING_RESOURCES),
        ingress=_ingress(f.obj("ingress")),
    )
    if out.ingress.allow_anonymous_writes and out.ingest_token_secret is not None:
        raise InvalidSpec(
            f"{f.at('ingress')}.allowAnonymousWrites",
            f"cannot be true while ingestTokenSecret is set ({out.ingest_token_secret!r}): "
            "unset one of them",
        )
    f.done()
    return out


def _autoscaling(f: Fields) -> AutoscalingSpec:
    out = AutoscalingSpec(
        enabled=f.boolean("enabled", False),
        min_replicas=f.integer("minReplicas", 2, minimum=1),
        max_replicas=f.integer("maxReplicas", 10, minimum=1),
        target_cpu_utilization_percentage=f.integer(
            "targetCPUUtilizationPercentage", 70, minimum=1, maximum=100
        ),
    )
    if out.max_replicas < out.min_replicas:
        raise InvalidSpec(
            f.at("maxReplicas"), f"must be >= minReplicas ({out.max_replicas} < {out.min_replicas})"
        )
    f.done()
    return out


def _ingress(f: Fields) -> IngressSpec:
    path = f.string("path", "/")
    if not path.startswith("/"):
        raise InvalidSpec(f.at("path"), f"must start with '/' (got {path!r})")
    out = IngressSpec(
        enabled=f.boolean("enabled", False),
        host=f.optional_string("host"),
        class_name=f.optional_string("className"),
        path=path,
        tls_secret=_secret_name(f, "tlsSecret"),
        allow_anonymous_writes=f.boolean("allowAnonymousWrites", False),
    )
    if out.host is not None and (len(out.host) > 253 or not _HOST.match(out.host)):
        raise InvalidSpec(f.at("host"), f"must be a lowercase DNS name (got {out.host!r})")
    if out.tls_secret is not None and out.host is None:
        raise InvalidSpec(f.at("host"), "is required when tlsSecret is set")
    f.done()
    return out


def _resources(f: Fields, key: str, default: Resources) -> Resources:
    res = f.obj(key)
    if res.is_empty():
        return default
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


def _origins(f: Fields, key: str) -> tuple[str, ...] | None:
    """A list of web origins (``core/origins.py``), normalised; the bad entry is named."""
    raw = f.raw(key)
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise InvalidSpec(f.at(key), f"must be a list of origins, got {type(raw).__name__}")
    out: list[str] = []
    for k, entry in enumerate(raw):
        if not isinstance(entry, str):
            raise InvalidSpec(f"{f.at(key)}[{k}]", "must be a string like https://host[:port]")
        try:
            origin = normalise_origin(entry)
        except ValueError as e:
            raise InvalidSpec(f"{f.at(key)}[{k}]", str(e)) from None
        if origin not in out:
            out.append(origin)
    return tuple(out)


def _secret_name(f: Fields, key: str) -> str | None:
    name = f.optional_string(key)
    if name is not None and (len(name) > 253 or not _DNS_1123_SUBDOMAIN.match(name)):
        raise InvalidSpec(f.at(key), f"must be a valid Secret name (got {name!r})")
    return name


def _required_secret_name(f: Fields, key: str) -> str:
    f.required_string(key)
    name = _secret_name(f, key)
    assert name is not None  # required_string raised otherwise
    return name
