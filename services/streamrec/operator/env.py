"""The env-var contract of ``docs/configuration.md``, filled from a RecommenderService spec
by the settings table's rows (``streamrec.settings``).

Plain settings go into one ConfigMap that both containers load with ``envFrom``; credentials
never do: they reach the containers only as ``secretKeyRef`` entries naming the user's Secrets,
so no secret value ever passes through the CR, the ConfigMap or the operator's memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from streamrec.operator.spec import RecommenderSpec
from streamrec.operator.writeauth import token_secret
from streamrec.settings import SETTINGS, Setting

SERVING_PORT = 8000
#: Where serving pods find the placements ConfigMap's file (``streamrec serve`` watches it;
#: the trainer does not take the setting and ignores the variable).
PLACEMENTS_DIR = "/etc/streamrec/placements"
PLACEMENTS_FILE = "placements.json"
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


def spec_value(spec: RecommenderSpec, row: Setting) -> Any:
    """The parsed value of ``row`` in ``spec`` (``spec.<section>.<attr>``)."""
    obj: Any = spec
    for part in filter(None, row.cr_section.split(".")):  # "" : a field of spec itself
        obj = getattr(obj, part)
    return getattr(obj, row.attr)


def group_service_name(name: str, group: int) -> str:
    """The Service of serving group ``group`` (port 80): where the other groups forward its
    users' requests, and the backend of its Ingress path."""
    return f"{name}-group-{group}"


def config_data(name: str, spec: RecommenderSpec) -> dict[str, str]:
    """The ConfigMap's data: every non-secret ``STREAMREC_*`` variable, as strings.

    Every row of the settings table with both a CR path and an env var is passed on as its
    kind writes it (unset ones are left out); the rest the operator decides itself."""
    data = {}
    for row in SETTINGS:
        if row.cr is None or row.env_name is None or not row.cr_env:
            continue
        value = spec_value(spec, row)
        if value is not None and value != ():  # unset, or an empty list: the services' default
            data[row.env_name] = row.kinds[1].env(value)
    data.update({
        "STREAMREC_GROUP": f"{name}-trainer",
        "STREAMREC_STORE": store_url(name, spec),
        "STREAMREC_METRICS_PORT": str(TRAINER_METRICS_PORT),
        "STREAMREC_BIND": f"0.0.0.0:{SERVING_PORT}",
        "STREAMREC_PLACEMENTS": f"{PLACEMENTS_DIR}/{PLACEMENTS_FILE}",
    })
    if spec.serving.groups > 1:  # each group's Service, in group order (core/groups.py)
        data["STREAMREC_GROUP_URLS"] = ",".join(
            f"http://{group_service_name(name, g)}" for g in range(spec.serving.groups))
    if spec.kafka.uses_sasl:  # the CR's default mechanism means nothing without SASL
        data["STREAMREC_KAFKA_SASL_MECHANISM"] = spec.kafka.sasl_mechanism
    if spec.snapshots.region is not None:
        data["AWS_REGION"] = spec.snapshots.region
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
