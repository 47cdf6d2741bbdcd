"""Writes through an Ingress need a bearer token unless the CR opts out: which Secret serving
reads it from, the generated Secret's manifest, and what the status reports."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from streamrec.operator.builders import (
    build_children,
    build_serving_deployment,
    build_token_secret,
    build_trainer_deployment,
    unwanted_children,
)
from streamrec.operator.env import all_secret_refs
from streamrec.operator.spec import RecommenderSpec, parse_spec
from streamrec.operator.status import SnapshotRead, compute_status, secret_problems
from streamrec.operator.writeauth import (
    TOKEN_BYTES,
    generated_secret_name,
    generates_token,
    new_token,
    token_secret,
    token_secret_name,
)

NAME, NS = "recs", "shop"
TOKEN_SECRET = ("v1", "Secret", "recs-ingest-token")


def spec(serving: dict[str, Any] | None = None) -> RecommenderSpec:
    return parse_spec({
        "image": {"repository": "streamrec", "tag": "1"},
        "kafka": {"bootstrapServers": "kafka:9092"},
        "snapshots": {"bucket": "recs-bucket", "credentialsSecret": "s3-creds"},
        "serving": serving or {},
    })


INGRESS = {"ingress": {"enabled": True, "host": "recs.example.test"}}
ANONYMOUS = {"ingress": {"enabled": True, "allowAnonymousWrites": True}}
OWN = {"ingestTokenSecret": "my-token", "ingress": {"enabled": True}}


def token_env(s: RecommenderSpec, build: Any = build_serving_deployment) -> Any:
    (container,) = build(NAME, NS, s)["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"]}
    return env.get("STREAMREC_INGEST_TOKEN")


def test_an_ingress_without_a_token_secret_gets_a_generated_one_by_default() -> None:
    s = spec(INGRESS)
    assert s.serving.ingress.allow_anonymous_writes is False
    assert generates_token(s)
    assert token_secret(NAME, s) == ("recs-ingest-token", "status.ingestTokenSecret (generated)")
    assert token_env(s) == {"name": "recs-ingest-token", "key": "token"}
    assert token_env(s, build_trainer_deployment) is None  # the trainer never serves writes
    assert TOKEN_SECRET not in unwanted_children(NAME, s)


def test_the_users_own_token_secret_is_used_and_nothing_is_generated() -> None:
    s = spec(OWN)
    assert not generates_token(s)
    assert token_secret(NAME, s) == ("my-token", "spec.serving.ingestTokenSecret")
    assert token_env(s) == {"name": "my-token", "key": "token"}
    assert TOKEN_SECRET in unwanted_children(NAME, s)  # a generated one from before goes


@pytest.mark.parametrize("serving", [ANONYMOUS, {}], ids=["opted-out", "no-ingress"])
def test_anonymous_writes_or_no_ingress_leave_writes_open(serving: dict[str, Any]) -> None:
    s = spec(serving)
    assert not generates_token(s) and token_secret(NAME, s) is None
    assert token_env(s) is None
    assert TOKEN_SECRET in unwanted_children(NAME, s)


def test_the_generated_secret_is_not_a_declarative_child() -> None:
    # It holds a random token: the handler creates it once (create_if_absent), never patches it.
    kinds = {c["kind"] for c in build_children(NAME, NS, spec(INGRESS))}
    assert "Secret" not in kinds


def test_the_generated_secret_holds_the_token_under_key_token_with_the_standard_labels() -> None:
    secret = build_token_secret(NAME, NS, "s3cr3t")
    assert secret["metadata"]["name"] == generated_secret_name(NAME) == "recs-ingest-token"
    assert secret["metadata"]["namespace"] == NS
    assert secret["metadata"]["labels"]["app.kubernetes.io/instance"] == NAME
    assert secret["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "streamrec-operator"
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["token"]) == b"s3cr3t"


def test_new_tokens_are_long_random_and_header_safe() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    for t in tokens:
        assert len(t) >= TOKEN_BYTES * 4 // 3  # 32 bytes of entropy, base64url
        assert t.isascii() and all(c.isalnum() or c in "-_" for c in t)


def test_a_missing_generated_secret_is_reported_against_the_status_field() -> None:
    s = spec(INGRESS)
    creds = {"AWS_ACCESS_KEY_ID": "eA==", "AWS_SECRET_ACCESS_KEY": "eQ=="}
    issues = secret_problems(all_secret_refs(NAME, s), {"s3-creds": creds}, NS)
    assert issues == ["Secret 'recs-ingest-token' (status.ingestTokenSecret (generated)) "
                      "not found in namespace 'shop'"]


@pytest.mark.parametrize(("serving", "reported"),
                         [(INGRESS, "recs-ingest-token"), (OWN, "my-token"), (ANONYMOUS, None)])
def test_the_status_names_the_token_secret_or_none_when_writes_are_open(
    serving: dict[str, Any], reported: str | None,
) -> None:
    s = spec(serving)
    status = compute_status(observed_generation=1, trainer=None, serving=None, secret_issues=[],
                            snapshot=SnapshotRead(), previous={}, now="2026-01-01T00:00:00Z",
                            ingest_token_secret=token_secret_name(NAME, s))
    assert status["ingestTokenSecret"] == reported
