"""The RecommenderService spec is parsed once into frozen types, with errors naming the field."""

from __future__ import annotations

import copy
import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamrec.operator.fields import InvalidSpec
from streamrec.operator.quantity import parse_quantity, same_quantity
from streamrec.operator.spec import (
    SERVING_RESOURCES,
    TRAINER_RESOURCES,
    parse_spec,
    validate_name,
)

ROOT = Path(__file__).resolve().parents[2]


def minimal() -> dict[str, Any]:
    return {
        "image": {"repository": "streamrec", "tag": "0.1.0"},
        "kafka": {"bootstrapServers": "kafka:9092"},
        "snapshots": {"bucket": "streamrec", "credentialsSecret": "s3-creds"},
    }


def with_field(path: str, value: Any) -> dict[str, Any]:
    """The minimal spec with ``value`` set at a dotted path below ``spec``."""
    spec = minimal()
    node = spec
    *parents, leaf = path.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return spec


def test_minimal_spec_gets_every_default() -> None:
    spec = parse_spec(minimal())
    assert spec.image.pull_policy == "IfNotPresent"
    assert spec.image.reference == "streamrec:0.1.0"
    assert (spec.kafka.topic, spec.kafka.format, spec.kafka.security_protocol) == (
        "interactions",
        "auto",
        "PLAINTEXT",
    )
    assert spec.kafka.credentials_secret is None and spec.kafka.min_weight is None
    assert (spec.model.factors, spec.model.regularization) == (64, 0.05)
    assert (spec.model.iterations, spec.model.alpha) == (15, 1.0)
    assert spec.training.window_size == 1_000_000
    assert spec.training.retrain_every == 10_000
    assert spec.training.retrain_interval == 60
    assert spec.training.use_gpu is False and spec.training.resources == TRAINER_RESOURCES
    assert spec.snapshots.keep == 5 and spec.snapshots.prefix is None
    assert (spec.serving.replicas, spec.serving.workers, spec.serving.threads) == (2, 2, 4)
    assert spec.serving.autoscaling.enabled is False
    assert (spec.serving.autoscaling.min_replicas, spec.serving.autoscaling.max_replicas) == (2, 10)
    assert spec.serving.autoscaling.target_cpu_utilization_percentage == 70
    assert spec.serving.resources == SERVING_RESOURCES
    assert spec.serving.ingress.enabled is False and spec.serving.ingress.path == "/"
    assert spec.serving.ingress.allow_anonymous_writes is False


def test_example_recommender_cr_parses_with_its_values() -> None:
    cr = yaml.safe_load((ROOT / "k8s" / "recommender.yaml").read_text())
    spec = parse_spec(cr["spec"])
    assert spec.serving.autoscaling.enabled and spec.serving.autoscaling.max_replicas == 5
    assert spec.serving.ingress.class_name == "traefik"
    assert spec.serving.ingress.host == "recs.example.test"
    assert spec.serving.ingress.allow_anonymous_writes is False  # writes need the token
    assert spec.snapshots.s3_endpoint == "http://minio.streamrec.svc:9000"


def test_parsed_spec_is_frozen() -> None:
    spec = parse_spec(minimal())
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.model.factors = 3  # type: ignore[misc]


def test_parsing_does_not_modify_the_input() -> None:
    raw = with_field("model.factors", 8)
    before = copy.deepcopy(raw)
    parse_spec(raw)
    assert raw == before


@pytest.mark.parametrize(
    ("raw", "field", "fragment"),
    [
        (with_field("model.factors", 0), "spec.model.factors", "integer in [1, 1024]"),
        (with_field("model.factors", 5000), "spec.model.factors", "integer in [1, 1024]"),
        (with_field("model.factors", "64"), "spec.model.factors", "integer"),
        (with_field("model.factors", True), "spec.model.factors", "integer"),
        (with_field("model.iterations", 0), "spec.model.iterations", "integer in [1, 1000]"),
        (with_field("model.alpha", -1), "spec.model.alpha", "number in [1e-6, 1e6]"),
        (with_field("model.alpha", 1e30), "spec.model.alpha", "number in [1e-6, 1e6]"),
        (with_field("model.regularization", 0), "spec.model.regularization", "[1e-6, 1e6]"),
        (with_field("kafka.minWeight", 1e30), "spec.kafka.minWeight", "number in (0, 1e6]"),
        (with_field("training.decayHalfLifeSeconds", 0.5), "spec.training.decayHalfLifeSeconds",
         "[1, 1e10]"),
        (with_field("model.factor", 8), "spec.model.factor", "unknown field"),
        (with_field("kafka.format", "xml"), "spec.kafka.format", "auto, text, json"),
        (with_field("kafka.bootstrapServers", ""), "spec.kafka.bootstrapServers", "non-empty"),
        (with_field("kafka.bootstrapServers", None), "spec.kafka.bootstrapServers", "required"),
        (with_field("kafka.notifyTopic", 3), "spec.kafka.notifyTopic", "string"),
        (with_field("image.pullPolicy", "Sometimes"), "spec.image.pullPolicy", "IfNotPresent"),
        (with_field("image", None), "spec.image", "required"),
        (with_field("image.tag", None), "spec.image.tag", "required"),
        (
            with_field("snapshots.credentialsSecret", None),
            "spec.snapshots.credentialsSecret",
            "required",
        ),
        (
            with_field("snapshots.credentialsSecret", "Bad_Name"),
            "spec.snapshots.credentialsSecret",
            "Secret name",
        ),
        (with_field("snapshots.bucket", "ab"), "spec.snapshots.bucket", "S3 bucket"),
        (with_field("snapshots.keep", 0), "spec.snapshots.keep", "[1, 1000]"),
        (with_field("training.windowSize", -5), "spec.training.windowSize", "[1, 1e8]"),
        (with_field("training.gpu", "yes"), "spec.training.gpu", "true or false"),
        (with_field("serving.replicas", -1), "spec.serving.replicas", ">= 0"),
        (with_field("serving", []), "spec.serving", "must be an object"),
        (
            with_field("serving.autoscaling", {"minReplicas": 5, "maxReplicas": 3}),
            "spec.serving.autoscaling.maxReplicas",
            "must be >= minReplicas",
        ),
        (
            with_field("serving.autoscaling.targetCPUUtilizationPercentage", 150),
            "spec.serving.autoscaling.targetCPUUtilizationPercentage",
            "integer in [1, 100]",
        ),
        (with_field("serving.ingress.path", "api"), "spec.serving.ingress.path", "start with '/'"),
        (with_field("serving.ingress.tlsSecret", "tls"), "spec.serving.ingress.host", "tlsSecret"),
        (
            with_field("serving.ingress.allowAnonymousWrites", "yes"),
            "spec.serving.ingress.allowAnonymousWrites",
            "true or false",
        ),
        (
            with_field("serving", {"ingestTokenSecret": "tok",
                                   "ingress": {"enabled": True, "allowAnonymousWrites": True}}),
            "spec.serving.ingress.allowAnonymousWrites",
            "cannot be true while ingestTokenSecret is set",
        ),
        (
            with_field("serving.ingress.host", "Bad_Host.example"),
            "spec.serving.ingress.host",
            "lowercase DNS name",
        ),
        (
            with_field("kafka.securityProtocol", "SASL_SSL"),
            "spec.kafka.credentialsSecret",
            "required when securityProtocol is SASL_SSL",
        ),
        (
            with_field("kafka.credentialsSecret", "kafka-user"),
            "spec.kafka.credentialsSecret",
            "only used with securityProtocol SASL",
        ),
        (
            with_field("serving.resources", {"requests": {"cpu": "1", "memory": "1Gi"}}),
            "spec.serving.resources.limits",
            "required",
        ),
        (
            with_field(
                "serving.resources",
                {"requests": {"cpu": "1"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            ),
            "spec.serving.resources.requests.memory",
            "required",
        ),
        (
            with_field(
                "training.resources",
                {
                    "requests": {"cpu": "2", "memory": "1Gi"},
                    "limits": {"cpu": "1500m", "memory": "1Gi"},
                },
            ),
            "spec.training.resources.limits.cpu",
            "must be >= the request (1500m < 2)",
        ),
        (
            with_field(
                "training.resources",
                {
                    "requests": {"cpu": "lots", "memory": "1Gi"},
                    "limits": {"cpu": 2, "memory": "1Gi"},
                },
            ),
            "spec.training.resources.requests.cpu",
            "Kubernetes quantity",
        ),
    ],
)
def test_invalid_field_is_rejected_with_its_path(
    raw: dict[str, Any], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidSpec) as err:
        parse_spec(raw)
    assert err.value.field_path == field
    assert str(err.value).startswith(f"{field}: ")
    assert fragment in err.value.message


def test_spec_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(InvalidSpec, match=r"^spec: must be an object"):
        parse_spec([])  # type: ignore[arg-type]


def test_sasl_with_credentials_secret_is_accepted() -> None:
    raw = with_field("kafka.securityProtocol", "SASL_SSL")
    raw["kafka"]["credentialsSecret"] = "kafka-user"
    spec = parse_spec(raw)
    assert spec.kafka.uses_sasl and spec.kafka.credentials_secret == "kafka-user"
    assert spec.kafka.sasl_mechanism == "SCRAM-SHA-512"


def test_integer_quantities_and_extra_resources_are_kept() -> None:
    resources = {
        "requests": {"cpu": 1, "memory": "2Gi"},
        "limits": {"cpu": 2, "memory": "2Gi", "nvidia.com/gpu": 1},
    }
    spec = parse_spec(with_field("training.resources", resources))
    assert spec.training.resources.to_dict() == {
        "requests": {"cpu": "1", "memory": "2Gi"},
        "limits": {"cpu": "2", "memory": "2Gi", "nvidia.com/gpu": "1"},
    }


def test_snapshot_prefix_slashes_are_stripped() -> None:
    assert parse_spec(with_field("snapshots.prefix", "/team/recs/")).snapshots.prefix == "team/recs"


def test_empty_notify_topic_is_kept_because_it_disables_notification() -> None:
    assert parse_spec(with_field("kafka.notifyTopic", "")).kafka.notify_topic == ""


def test_kopf_style_mapping_views_parse_like_dicts() -> None:
    from types import MappingProxyType

    assert parse_spec(MappingProxyType(minimal())) == parse_spec(minimal())


@pytest.mark.parametrize("name", ["recommender", "a", "r2-d2", "x" * 50])
def test_valid_names_are_accepted(name: str) -> None:
    validate_name(name)


@pytest.mark.parametrize("name", ["2fast", "Upper", "dots.not.allowed", "x" * 51, "trailing-"])
def test_names_that_cannot_name_children_are_rejected(name: str) -> None:
    with pytest.raises(InvalidSpec, match=r"^metadata\.name: must be a DNS-1035 label"):
        validate_name(name)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", Decimal("0.5")),
        ("2", Decimal(2)),
        (3, Decimal(3)),
        ("1Gi", Decimal(2**30)),
        ("512Mi", Decimal(2**29)),
        ("1e3", Decimal(1000)),
        ("1E", Decimal("1e18")),
        ("1.5k", Decimal(1500)),
        ("100n", Decimal("1e-7")),
    ],
)
def test_quantities_parse_to_exact_values(text: object, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1.2.3", "5 Gi", "1Gb", True, None, 1.5])
def test_non_quantities_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match="Kubernetes quantity"):
        parse_quantity(text)


def test_same_quantity_compares_values_not_spelling() -> None:
    assert same_quantity("0.5", "500m") and same_quantity("1024Mi", "1Gi")
    assert not same_quantity("1", "1Gi") and not same_quantity("x", "x")


def test_allowed_origins_are_normalised_and_reach_the_serving_env() -> None:
    from streamrec.operator.env import config_data

    spec = parse_spec(with_field("serving.allowedOrigins", [
        "https://Shop.example:443", "http://127.0.0.1:3000/", "https://shop.example"]))
    assert spec.serving.allowed_origins == ("https://shop.example", "http://127.0.0.1:3000")
    env = config_data("rec", spec)
    assert env["STREAMREC_ALLOWED_ORIGINS"] == "https://shop.example,http://127.0.0.1:3000"
    assert "STREAMREC_ALLOWED_ORIGINS" not in config_data("rec", parse_spec(minimal()))


@pytest.mark.parametrize(("value", "field"), [
    ("https://a.example", "spec.serving.allowedOrigins"),
    (["https://a.example/path"], "spec.serving.allowedOrigins[0]"),
    (["https://a.example", "ftp://b.example"], "spec.serving.allowedOrigins[1]"),
    (["null"], "spec.serving.allowedOrigins[0]"),
    ([7], "spec.serving.allowedOrigins[0]"),
])
def test_a_bad_allowed_origin_is_refused_naming_its_entry(value: Any, field: str) -> None:
    with pytest.raises(InvalidSpec) as err:
        parse_spec(with_field("serving.allowedOrigins", value))
    assert err.value.field_path == field


@pytest.mark.parametrize("crd", ["k8s/crd.yaml",
                                 "helm/streamrec/crds/recommenderservices.streamrec.io.yaml"])
def test_the_crd_pattern_for_allowed_origins_agrees_with_the_parser(crd: str) -> None:
    import re

    from streamrec.core.origins import normalise_origin

    doc = yaml.safe_load((ROOT / crd).read_text())
    serving = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["serving"]["properties"]
    pattern = re.compile(serving["allowedOrigins"]["items"]["pattern"])
    for good in ("https://a.example", "http://127.0.0.1:3000", "HTTPS://A.example/"):
        assert pattern.search(good) and normalise_origin(good)
    for bad in ("https://a.example/x", "a.example", "ftp://a", "null", "https://u@a.example"):
        assert not pattern.search(bad), bad
        with pytest.raises(ValueError):
            normalise_origin(bad)
