"""The env-var contract of ``docs/configuration.md``, filled from a RecommenderService spec.

Plain settings go into one ConfigMap that both containers load with ``envFrom``; credentials
never do: they reach the containers only as ``secretKeyRef`` entries naming the user's Secrets,
so no secret value ever passes through the CR, the ConfigMap or the operator's memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamrec.core.events.feedback import format_table
from streamrec.operator.scoring import scoring_env
from streamrec.operator.spec import RecommenderSpec
from streamrec.operator.writeauth import token_secret

SERVING_PORT = 8000
TRAINER_METRICS_PORT = 9100

# Keys the referenced Secrets must hold (documented in docs/operator.md).
KAFKA_USERNAME_KEY = "username"
KAFKA_PASSWORD_KEY = "password"
S3_ACCESS_KEY_ID_KEY = "AWS_ACCESS_KEY_ID"
S3_SECRET_ACCESS_KEY_KEY = "AWS_SECRET_ACCESS_KEY"
INGEST_TOKEN_KEY = "token"
ERASURE_KEY_KEY = "erasureKey"


@dataclass(frozen=True)
class SecretRef:
    """A Secret the spec points at, the keys the containers read from it, and which field."""

    name: str
    keys: tuple[str, ...]
    field_path: str


def store_url(name: str, spec: RecommenderSpec) -> str:
    """``s3://bucket/prefix``; the prefix defaults to the resource name."""
    return f"s3://{spec.snapshots.bucket}/{spec.snapshots.prefix or name}"


def config_data(name: str, spec: RecommenderSpec) -> dict[str, str]:
    """The ConfigMap's data: every non-secret ``STREAMREC_*`` variable, as strings."""
    k, m, t, s, v = spec.kafka, spec.model, spec.training, spec.snapshots, spec.serving
    data = {
        "STREAMREC_BOOTSTRAP_SERVERS": k.bootstrap_servers,
        "STREAMREC_TOPIC": k.topic,
        "STREAMREC_GROUP": f"{name}-trainer",
        "STREAMREC_FORMAT": k.format,
        "STREAMREC_KAFKA_SECURITY_PROTOCOL": k.security_protocol,
        "STREAMREC_WINDOW_SIZE": str(t.window_size),
        "STREAMREC_RETRAIN_EVERY": str(t.retrain_every),
        "STREAMREC_RETRAIN_INTERVAL": str(t.retrain_interval_seconds),
        "STREAMREC_FACTORS": str(m.factors),
        "STREAMREC_REGULARIZATION": repr(m.regularization),
        "STREAMREC_ITERATIONS": str(m.iterations),
        "STREAMREC_ALPHA": repr(m.alpha),
        "STREAMREC_USE_GPU": "true" if t.gpu else "false",
        "STREAMREC_STORE": store_url(name, spec),
        "STREAMREC_KEEP": str(s.keep),
        "STREAMREC_METRICS_PORT": str(TRAINER_METRICS_PORT),
        "STREAMREC_BIND": f"0.0.0.0:{SERVING_PORT}",
        "STREAMREC_WORKERS": str(v.workers),
        "STREAMREC_THREADS": str(v.threads),
        "STREAMREC_RELOAD_INTERVAL": str(v.reload_interval_seconds),
    }
    optional = {
        "STREAMREC_MIN_WEIGHT": None if k.min_weight is None else repr(k.min_weight),
        "STREAMREC_FEEDBACK_WEIGHTS": None if m.feedback_weights is None
        else format_table(dict(m.feedback_weights)),
        "STREAMREC_DLQ_TOPIC": k.dlq_topic,
        "STREAMREC_ITEMS_TOPIC": k.items_topic,
        "STREAMREC_NOTIFY_TOPIC": k.notify_topic,
        "STREAMREC_KAFKA_SASL_MECHANISM": k.sasl_mechanism if k.uses_sasl else None,
        "STREAMREC_DECAY_HALF_LIFE": (
            None if t.decay_half_life_seconds is None else repr(t.decay_half_life_seconds)
        ),
        "STREAMREC_S3_ENDPOINT": s.endpoint,
        "STREAMREC_ALLOWED_ORIGINS": ",".join(v.allowed_origins or ()) or None,
        "AWS_REGION": s.region,
    }
    data.update({key: value for key, value in optional.items() if value is not None})
    data.update(scoring_env(spec.scoring))
    return dict(sorted(data.items()))


def secret_refs(name: str, spec: RecommenderSpec, component: str) -> list[SecretRef]:
    """The Secrets (and keys) one component's container reads; ``component`` is trainer/serving.
    ``name`` is the RecommenderService's: it names the generated write-token Secret."""
    refs = [
        SecretRef(
            spec.snapshots.credentials_secret,
            (S3_ACCESS_KEY_ID_KEY, S3_SECRET_ACCESS_KEY_KEY),
            "spec.snapshots.credentialsSecret",
        )
    ]
    if spec.kafka.credentials_secret is not None:
        refs.append(
            SecretRef(
                spec.kafka.credentials_secret,
                (KAFKA_USERNAME_KEY, KAFKA_PASSWORD_KEY),
                "spec.kafka.credentialsSecret",
            )
        )
    if spec.snapshots.erasure_key_secret is not None:  # both: trainer and serving hash ids
        refs.append(SecretRef(spec.snapshots.erasure_key_secret, (ERASURE_KEY_KEY,),
                              "spec.snapshots.erasureKeySecret"))
    token = token_secret(name, spec)
    if component == "serving" and token is not None:
        refs.append(SecretRef(token[0], (INGEST_TOKEN_KEY,), token[1]))
    return refs


def all_secret_refs(name: str, spec: RecommenderSpec) -> list[SecretRef]:
    """Every Secret either component reads (the serving set is a superset of the trainer's)."""
    return secret_refs(name, spec, "serving")


_ENV_NAMES = {
    KAFKA_USERNAME_KEY: "STREAMREC_KAFKA_USERNAME",
    KAFKA_PASSWORD_KEY: "STREAMREC_KAFKA_PASSWORD",
    S3_ACCESS_KEY_ID_KEY: "AWS_ACCESS_KEY_ID",
    S3_SECRET_ACCESS_KEY_KEY: "AWS_SECRET_ACCESS_KEY",
    INGEST_TOKEN_KEY: "STREAMREC_INGEST_TOKEN",
    ERASURE_KEY_KEY: "STREAMREC_ERASURE_KEY",
}


def secret_env(name: str, spec: RecommenderSpec, component: str) -> list[dict[str, Any]]:
    """Container ``env`` entries, each a ``secretKeyRef`` into a referenced Secret."""
    return [
        {
            "name": _ENV_NAMES[key],
            "valueFrom": {"secretKeyRef": {"name": ref.name, "key": key}},
        }
        for ref in secret_refs(name, spec, component)
        for key in ref.keys
    ]
