"""Pure status: what a RecommenderService reports, computed from its children's observed state.

``status`` holds ``observedGeneration``, ``phase``, ``conditions``, ``servingReplicas``,
``servingGroups``, ``snapshotVersion`` and ``ingestTokenSecret``. Conditions follow the
Kubernetes convention (``type``, ``status`` "True" or "False", ``reason``, ``message``,
``lastTransitionTime``); a
condition keeps its transition time while its status stays the same, so recomputing an unchanged
state gives an identical status and the operator can skip the patch.

Phases: ``Failed`` (the spec is invalid), ``Degraded`` (a referenced Secret or key is missing),
``Progressing`` (a Deployment is not ready yet) and ``Ready``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from streamrec.core.snapshot.trainingstatus import TrainingStatus
from streamrec.operator.env import SecretRef

CONDITION_TYPES = (
    "Ready",
    "SpecValid",
    "SecretsFound",
    "TrainerReady",
    "ServingReady",
    "SnapshotPublished",
    "Training",
)


@dataclass(frozen=True)
class Condition:
    type: str
    ok: bool
    reason: str
    message: str


@dataclass(frozen=True)
class SnapshotRead:
    """Outcome of reading ``LATEST``: a version, none published yet, or an error; and the
    trainer's fit report (``TRAINING``) when there is one."""

    version: str | None = None
    error: str | None = None
    training: TrainingStatus | None = None


def training_condition(report: TrainingStatus) -> Condition:
    """``Training`` from the trainer's fit report: False while fits fail, with the reason.

    ``Ready`` does not depend on it: serving goes on with the last good model, and this
    condition is what says that the model has stopped improving.
    """
    if not report.ok:
        reason = "".join(part.capitalize() for part in (report.reason or "error").split("_"))
        return Condition("Training", False, f"FitFailing{reason}"[:80],
                         f"{report.failures} fit(s) in a row failed: {report.message or ''}"
                         f"; serving the last snapshot {report.version or '(none)'}")
    message = f"last fit published snapshot {report.version}"
    if report.recovered_from:
        return Condition("Training", True, "RecoveredAtSafeConfidence",
                         f"{message} after a first attempt failed: {report.recovered_from}")
    return Condition("Training", True, "Fitting", message)


def secret_problems(
    refs: Sequence[SecretRef], secrets: Mapping[str, Mapping[str, Any] | None], namespace: str
) -> list[str]:
    """One message per missing Secret or key; ``secrets`` maps name to its data (None: absent)."""
    problems: list[str] = []
    for ref in refs:
        data = secrets.get(ref.name)
        if data is None:
            problems.append(
                f"Secret {ref.name!r} ({ref.field_path}) not found in namespace {namespace!r}"
            )
            continue
        missing = [key for key in ref.keys if key not in data]
        if missing:
            problems.append(
                f"Secret {ref.name!r} ({ref.field_path}) has no key "
                + ", ".join(repr(key) for key in missing)
            )
    return problems


def deployment_condition(kind: str, deployment: Mapping[str, Any] | None) -> Condition:
    """``<kind>Ready`` from a live Deployment: every desired replica updated and ready."""
    ctype = f"{kind}Ready"
    if deployment is None:
        return Condition(ctype, False, "NotFound", "the Deployment does not exist yet")
    generation = deployment.get("metadata", {}).get("generation", 0)
    desired = deployment.get("spec", {}).get("replicas", 1)
    st = deployment.get("status") or {}
    for cond in st.get("conditions") or []:
        if cond.get("type") == "Progressing" and cond.get("reason") == "ProgressDeadlineExceeded":
            return Condition(ctype, False, "ProgressDeadlineExceeded", cond.get("message", ""))
    if st.get("observedGeneration", 0) < generation:
        return Condition(ctype, False, "RolloutPending", f"generation {generation} not yet seen")
    ready, updated = st.get("readyReplicas", 0), st.get("updatedReplicas", 0)
    message = f"{ready}/{desired} replicas ready, {updated}/{desired} updated"
    if ready < desired or updated < desired or st.get("replicas", 0) > updated:
        return Condition(ctype, False, "RollingOut", message)
    return Condition(ctype, True, "Available", message)


def groups_condition(groups: Sequence[Mapping[str, Any] | None]) -> Condition:
    """``ServingReady`` over the serving groups' Deployments (``core/groups.py``): true when
    every group's is; else the first group that is not, named, with the others' counts."""
    each = [deployment_condition("Serving", d) for d in groups]
    message = "; ".join(f"group {g}: {c.message}" for g, c in enumerate(each))
    waiting = [(g, c) for g, c in enumerate(each) if not c.ok]
    if not waiting:
        return Condition("ServingReady", True, "Available", message)
    return Condition("ServingReady", False, waiting[0][1].reason, message)


def compute_status(
    *,
    observed_generation: int | None,
    trainer: Mapping[str, Any] | None,
    serving: Mapping[str, Any] | None,
    secret_issues: Sequence[str],
    snapshot: SnapshotRead,
    previous: Mapping[str, Any],
    now: str,
    ingest_token_secret: str | None = None,
    serving_groups: Sequence[Mapping[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The full status of a valid spec from the observed children.

    ``serving_groups``: with more than one serving group, each group's Deployment in group
    order (``serving`` is then ignored): serving is ready when every group is, and
    ``servingReplicas`` is their sum.

    ``ingest_token_secret``: the Secret whose key ``token`` guards serving's write routes (the
    user's or the generated one, ``streamrec.operator.writeauth``); None when writes are open.

    ``observed_generation`` is None when the caller has not just applied the spec (the status
    timer): the key is then left out, so the timer never moves it.
    """
    trainer_cond = deployment_condition("Trainer", trainer)
    if serving_groups:
        serving_cond = groups_condition(serving_groups)
        replicas = sum(((d or {}).get("status") or {}).get("readyReplicas", 0)
                       for d in serving_groups)
    else:
        serving_cond = deployment_condition("Serving", serving)
        replicas = ((serving or {}).get("status") or {}).get("readyReplicas", 0)
    if secret_issues:
        secrets_cond = Condition("SecretsFound", False, "SecretNotFound", "; ".join(secret_issues))
    else:
        secrets_cond = Condition("SecretsFound", True, "Found", "all referenced Secrets exist")
    if snapshot.error is not None:
        snap_cond = Condition("SnapshotPublished", False, "StoreUnreadable", snapshot.error)
        version = previous.get("snapshotVersion")  # keep the last known version
    elif snapshot.version is None:
        snap_cond = Condition("SnapshotPublished", False, "NoSnapshot", "LATEST not written yet")
        version = None
    else:
        snap_cond = Condition("SnapshotPublished", True, "Published", snapshot.version)
        version = snapshot.version

    if secret_issues:
        phase, ready = "Degraded", Condition("Ready", False, "SecretNotFound", secrets_cond.message)
    elif trainer_cond.ok and serving_cond.ok:
        phase, ready = "Ready", Condition("Ready", True, "Available", "trainer and serving ready")
    else:
        waiting = [c for c in (trainer_cond, serving_cond) if not c.ok]
        detail = "; ".join(f"{c.type}: {c.message}" for c in waiting)
        phase, ready = "Progressing", Condition("Ready", False, waiting[0].reason, detail)

    valid = Condition("SpecValid", True, "Valid", "the spec is valid")
    conditions = [ready, valid, secrets_cond, trainer_cond, serving_cond, snap_cond]
    if snapshot.training is not None:
        conditions.append(training_condition(snapshot.training))
    status = {
        "phase": phase,
        "conditions": merge_conditions(previous.get("conditions") or [], conditions, now),
        "servingReplicas": replicas,
        "servingGroups": len(serving_groups) if serving_groups else 1,
        "snapshotVersion": version,
        "ingestTokenSecret": ingest_token_secret,
    }
    if observed_generation is not None:
        status["observedGeneration"] = observed_generation
    return status


def invalid_status(
    *, generation: int | None, reason: str, message: str, previous: Mapping[str, Any], now: str
) -> dict[str, Any]:
    """Status for a spec the operator refuses; other conditions keep their last value."""
    conditions = [
        Condition("Ready", False, reason, message),
        Condition("SpecValid", False, reason, message),
    ]
    return {
        "observedGeneration": generation,
        "phase": "Failed",
        "conditions": merge_conditions(previous.get("conditions") or [], conditions, now),
    }


def merge_conditions(
    previous: Sequence[Mapping[str, Any]], updates: Sequence[Condition], now: str
) -> list[dict[str, Any]]:
    """Previous conditions with ``updates`` applied, in :data:`CONDITION_TYPES` order."""
    by_type = {c["type"]: dict(c) for c in previous if "type" in c}
    for cond in updates:
        status = "True" if cond.ok else "False"
        old = by_type.get(cond.type)
        kept = old.get("lastTransitionTime") if old and old.get("status") == status else None
        since = kept or now
        by_type[cond.type] = {
            "type": cond.type,
            "status": status,
            "reason": cond.reason,
            "message": cond.message,
            "lastTransitionTime": since,
        }
    order = {t: i for i, t in enumerate(CONDITION_TYPES)}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], len(order)), c["type"]))


def status_changed(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """True if patching ``new`` would change ``current`` (a missing key equals None)."""
    return any(current.get(key) != value for key, value in new.items())
