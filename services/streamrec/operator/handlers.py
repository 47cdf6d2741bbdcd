"""kopf handlers for RecommenderService: parse, build, adopt, apply, and report status.

Thin on purpose: the decisions live in ``spec`` (what is valid), ``builders`` (what to run),
``diff`` (whether to write) and ``status`` (what to report). One ``reconcile`` handler serves
create, update and resume; as it only writes children whose desired fields differ from the live
ones, resuming after a restart writes nothing. A task of the operator (``refresher``) refreshes
the status from the children, the referenced Secrets and the store's ``LATEST``. Deletion needs
no handler and no finalizer: every child carries an owner reference, so the garbage collector
removes it; and nothing here makes kopf put a finalizer on a resource (no kopf timer, daemon or
deletion handler), so a resource stays deletable when the operator is gone.

Loaded by ``streamrec operator`` and by ``kopf run <path to this file>`` (the tests), so it
imports the package absolutely.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import datetime
import json
import logging
import math
import os
from collections.abc import Mapping
from typing import Any, cast

import kopf
from kubernetes import client
from urllib3.exceptions import HTTPError

from streamrec.operator.builders import (
    SERVING_KINDS,
    build_children,
    build_token_secret,
    child_names,
    hpa_owned_fields,
    selector_labels,
    serving_groups,
    serving_name,
    stale_serving,
    unwanted_children,
)
from streamrec.operator.diff import with_applied_hash
from streamrec.operator.env import S3_ACCESS_KEY_ID_KEY, S3_SECRET_ACCESS_KEY_KEY, all_secret_refs
from streamrec.operator.fields import InvalidSpec
from streamrec.operator.kube import Kube
from streamrec.operator.refresher import Key, refresh_forever
from streamrec.operator.snapshots import read_latest
from streamrec.operator.spec import (
    GROUP,
    KIND,
    PLURAL,
    VERSION,
    RecommenderSpec,
    parse_spec,
    validate_name,
)
from streamrec.operator.status import (
    SnapshotRead,
    compute_status,
    deployment_condition,
    invalid_status,
    secret_problems,
    status_changed,
)
from streamrec.operator.writeauth import generates_token, new_token, token_secret_name
from streamrec.settings import BY_NAME

ANNOTATION_PREFIX = "operator.streamrec.io"
API_VERSION = f"{GROUP}/{VERSION}"
RETRY_DELAY_SECONDS = 10
#: Seconds between looks at the new serving Deployments while old ones wait (``_leftovers``).
LEFTOVER_RETRY_SECONDS = 5
# Client libraries whose DEBUG output carries credentials: botocore logs the S3 request
# headers (the Authorization header names the access key), the kubernetes client logs response
# bodies (a Secret's data). They stay at WARNING even under --verbose.
QUIET_LOGGERS = ("botocore", "boto3", "s3transfer", "urllib3", "kubernetes")


def _status_interval() -> float:
    row = BY_NAME["operator_status_interval"]
    env_name = row.env_name
    assert env_name is not None
    raw = os.environ.get(env_name, "")
    if not raw:
        return float(row.default)
    try:
        value = row.kind.parse(raw)
    except ValueError:
        value = math.nan
    problem = row.kind.problem(value)
    if problem is not None:
        raise ValueError(f"{env_name}: {problem} (seconds), got {raw!r}")
    return float(value)


STATUS_INTERVAL_SECONDS = _status_interval()


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # kopf's own readers: the pod's service account, else $KUBECONFIG as it is at login time
    # (kopf's default goes through the kubernetes client, which reads $KUBECONFIG at import).
    return kopf.login_with_service_account(**kwargs) or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Progress and the diff base go to annotations, keeping status.kopf out of our status.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix=ANNOTATION_PREFIX
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    # No handler here needs a finalizer (module docstring); kopf removes this one from
    # resources that still carry it from an older operator.
    settings.persistence.finalizer = f"{ANNOTATION_PREFIX}/finalizer"
    settings.posting.level = logging.WARNING  # Events only for what a user must act on.
    for logger_name in QUIET_LOGGERS:
        logging.getLogger(logger_name).setLevel(logging.WARNING)
    memo["kube"] = Kube.from_environment()


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile(
    spec: kopf.Spec,
    name: str,
    namespace: str | None,
    body: kopf.Body,
    meta: kopf.Meta,
    status: kopf.Status,
    patch: kopf.Patch,
    memo: Any,
    logger: logging.Logger | logging.LoggerAdapter[Any],
    **_: Any,
) -> None:
    assert namespace is not None  # the CRD is namespaced
    kube: Kube = memo["kube"]
    parsed = _parse_or_fail(spec, name, meta.get("generation"), status, patch)
    children = build_children(name, namespace, parsed)
    kopf.adopt(children, owner=body)
    counts = {"created": 0, "patched": 0, "unchanged": 0, "deleted": 0}
    try:
        # First, so that the serving pods never start without the Secret they read.
        counts["created"] += _ensure_token(kube, name, namespace, parsed, body, logger)
        for child in children:
            outcome = kube.apply(with_applied_hash(child), hpa_owned_fields(child, parsed))
            counts[outcome] += 1
            if outcome != "unchanged":
                logger.info("%s %s %s", outcome, child["kind"], child["metadata"]["name"])
        leftovers, waiting = _leftovers(kube, name, namespace, parsed, children)
        for api_version, kind, child_name in [*unwanted_children(name, parsed), *leftovers]:
            if kube.delete_owned(api_version, kind, namespace, child_name, meta["uid"]):
                counts["deleted"] += 1
                logger.info("deleted %s %s", kind, child_name)
    except client.ApiException as exc:
        if exc.status in (400, 422):  # a value the CRD schema let through but a child refuses
            message = f"a child was rejected by the API server: {_api_message(exc)}"
            rejected = invalid_status(
                generation=meta.get("generation"),
                reason="Rejected",
                message=message,
                previous=status,
                now=_now(),
            )
            _set_status(status, patch, rejected)
            raise kopf.PermanentError(message) from exc
        raise _temporary("applying the children", exc) from exc
    except HTTPError as exc:
        raise _temporary("applying the children", exc) from exc
    logger.info("children reconciled: %s", ", ".join(f"{n} {k}" for k, n in counts.items()))
    observed = _observe(kube, name, namespace, parsed, meta.get("generation"), status)
    _set_status(status, patch, observed)
    if waiting:  # kopf applies the status patch and calls again after the delay
        raise kopf.TemporaryError(waiting, delay=LEFTOVER_RETRY_SECONDS)


def _leftovers(
    kube: Kube, name: str, namespace: str, spec: RecommenderSpec, children: list[dict[str, Any]]
) -> tuple[list[tuple[str, str, str]], str]:
    """The serving children that ``children`` no longer holds (``stale_serving``: listed by
    the instance's serving labels), and why they wait, if they do: a changed group count
    keeps the old Deployments, Services and HPAs serving until every new serving Deployment
    is Available, so that no user is left without a pod (the groups' forwarding included)."""
    live = {(api, kind): kube.names(api, kind, namespace, selector_labels(name, "serving"))
            for api, kind in SERVING_KINDS}
    stale = stale_serving(children, live)
    if not any(kind == "Deployment" for _, kind, _ in stale):
        return stale, ""
    wanted = [serving_name(name, g) for g in serving_groups(spec)]
    pending = [d for d in wanted if not deployment_condition(
        "Serving", kube.get("apps/v1", "Deployment", namespace, d)).ok]
    if not pending:
        return stale, ""
    return [], (f"keeping {', '.join(n for _, _, n in stale)} until {', '.join(pending)} "
                f"{'is' if len(pending) == 1 else 'are'} Available")


@kopf.index(GROUP, VERSION, PLURAL)
def recommenderservices(name: str, namespace: str | None, **_: Any) -> dict[Key, bool]:
    """The served resources, by (namespace, name): what the status refresh walks."""
    assert namespace is not None  # the CRD is namespaced
    return {(namespace, name): True}


@kopf.on.startup()
async def start_status_refresh(
    memo: Any, logger: logging.Logger | logging.LoggerAdapter[Any], **kwargs: Any
) -> None:
    # kopf passes every index to every handler, by the index function's name; it is empty
    # now and kopf keeps it current from the watch stream.
    index: kopf.Index[Key, bool] = kwargs["recommenderservices"]
    memo["refresher"] = asyncio.get_running_loop().create_task(refresh_forever(
        lambda: list(index.keys()),
        lambda namespace, name: refresh_status(memo["kube"], namespace, name, logger),
        STATUS_INTERVAL_SECONDS,
        logger,
    ))


@kopf.on.cleanup()
async def stop_status_refresh(memo: Any, **_: Any) -> None:
    task = memo.get("refresher")
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def refresh_status(
    kube: Kube,
    namespace: str,
    name: str,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> None:
    """Observe one resource's children, Secrets and store again and patch its status if that
    changes it; first re-create the generated write-token Secret if it went missing. Nothing if
    the resource is gone or its spec is invalid (reconcile has put the reason in the status).
    Raises ``kopf.TemporaryError`` when a read or the Secret's creation fails."""
    body = kube.get(API_VERSION, KIND, namespace, name)
    if body is None:
        return
    try:
        validate_name(name)
        parsed = parse_spec(body.get("spec") or {})
    except InvalidSpec:
        return  # reconcile has already put the reason in the status
    try:
        # A deleted generated token Secret comes back here, not only at the next spec change.
        _ensure_token(kube, name, namespace, parsed, kopf.Body(cast(kopf.RawBody, body)), logger)
    except (client.ApiException, HTTPError) as exc:
        raise _temporary("creating the write-token Secret", exc) from exc
    status = body.get("status") or {}
    new = _observe(kube, name, namespace, parsed, None, status)
    if status_changed(status, new):
        kube.patch_status(API_VERSION, KIND, namespace, name, new)


def _ensure_token(
    kube: Kube,
    name: str,
    namespace: str,
    spec: RecommenderSpec,
    body: kopf.Body,
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> int:
    """Create the generated write-token Secret if the spec needs it and it is missing (never
    rewrite one: that would change the token under running clients); 1 if created, else 0."""
    if not generates_token(spec):
        return 0
    secret = build_token_secret(name, namespace, new_token())
    kopf.adopt(secret, owner=body)
    if not kube.create_if_absent(secret):
        return 0
    logger.info("created Secret %s (the write token)", secret["metadata"]["name"])
    return 1


def _parse_or_fail(
    spec: Mapping[str, Any],
    name: str,
    generation: int | None,
    status: Mapping[str, Any],
    patch: kopf.Patch,
) -> RecommenderSpec:
    try:
        validate_name(name)
        return parse_spec(spec)
    except InvalidSpec as exc:
        invalid = invalid_status(
            generation=generation,
            reason="InvalidSpec",
            message=str(exc),
            previous=status,
            now=_now(),
        )
        _set_status(status, patch, invalid)
        raise kopf.PermanentError(str(exc)) from exc


def _observe(
    kube: Kube,
    name: str,
    namespace: str,
    spec: RecommenderSpec,
    observed_generation: int | None,
    status: Mapping[str, Any],
) -> dict[str, Any]:
    """The status the children, Secrets and store give now (``status``: the current one)."""
    names = child_names(name)
    try:
        trainer = kube.get("apps/v1", "Deployment", namespace, names["trainer"])
        groups = [kube.get("apps/v1", "Deployment", namespace, serving_name(name, g))
                  for g in serving_groups(spec)]
        refs = all_secret_refs(name, spec)
        secrets = {ref.name: _secret_data(kube, namespace, ref.name) for ref in refs}
    except (client.ApiException, HTTPError) as exc:
        raise _temporary("reading the children", exc) from exc
    issues = secret_problems(refs, secrets, namespace)
    return compute_status(
        observed_generation=observed_generation,
        trainer=trainer,
        serving=groups[0],
        serving_groups=groups if spec.serving.groups > 1 else None,
        secret_issues=issues,
        snapshot=_read_snapshot(name, spec, secrets.get(spec.snapshots.credentials_secret)),
        ingest_token_secret=token_secret_name(name, spec),
        previous=status,
        now=_now(),
    )


def _read_snapshot(
    name: str, spec: RecommenderSpec, credentials: Mapping[str, str] | None
) -> SnapshotRead:
    needed = (S3_ACCESS_KEY_ID_KEY, S3_SECRET_ACCESS_KEY_KEY)
    if credentials is None or not set(needed) <= set(credentials):
        return SnapshotRead(error="the snapshot store credentials are unavailable")
    decoded: dict[str, str] = {}
    for key in needed:
        try:
            decoded[key] = base64.b64decode(credentials[key], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            # Name the Secret and key, never the value.
            secret = spec.snapshots.credentials_secret
            return SnapshotRead(error=f"Secret {secret!r} key {key!r} is not valid UTF-8 text")
    return read_latest(name, spec, decoded[S3_ACCESS_KEY_ID_KEY], decoded[S3_SECRET_ACCESS_KEY_KEY])


def _secret_data(kube: Kube, namespace: str, name: str) -> dict[str, str] | None:
    secret = kube.get("v1", "Secret", namespace, name)
    return None if secret is None else dict(secret.get("data") or {})


def _set_status(status: Mapping[str, Any], patch: kopf.Patch, new: Mapping[str, Any]) -> None:
    if status_changed(status, new):
        patch.status.update(new)


def _temporary(doing: str, exc: Exception) -> kopf.TemporaryError:
    if isinstance(exc, client.ApiException):
        detail = f"{exc.status} {exc.reason}: {_api_message(exc)}"
    else:
        detail = str(exc)
    return kopf.TemporaryError(f"{doing} failed, will retry: {detail}", delay=RETRY_DELAY_SECONDS)


def _api_message(exc: client.ApiException) -> str:
    try:
        return str(json.loads(exc.body or "{}").get("message") or exc.reason)
    except ValueError:
        return str(exc.body or exc.reason)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
